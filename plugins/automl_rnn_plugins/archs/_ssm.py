"""The torch modules of the ``ssm`` family (see ``ssm.py``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from automl_rnn.nn import valid_mask

CHUNK = 32
"""Steps per chunk of the training-time scan; see ``scan``."""

GROUP = 32
"""Chunks per group when chunk end states are carried across the sequence; see ``_chunk_starts``."""


def _powers(re: torch.Tensor, im: torch.Tensor, exponents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of exp((re + i im) * k) for every k: (N,) x (K,) -> 2 x (N, K)."""
    magnitude = torch.exp(re[:, None] * exponents)
    angle = im[:, None] * exponents
    return magnitude * torch.cos(angle), magnitude * torch.sin(angle)


def _toeplitz(p: torch.Tensor, n: int, shift: int) -> torch.Tensor:
    """(N, n, n) upper-triangular Toeplitz matrices: ``T[m, l] = p[:, l - m - shift]`` where
    ``l - m >= shift``, else 0 (a strided view of the zero-padded ``p``, then one copy)."""
    padded = F.pad(p[:, :n - shift], (n - 1 + shift, 0))
    return padded.unfold(1, n, 1).flip(1)


def _complex_block(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """The real (2n, 2n) form of a complex (n, n) matrix acting on rows [Re | Im]."""
    return torch.cat([torch.cat([re, im], -1), torch.cat([-im, re], -1)], -2)


class Modes(nn.Module):
    """``N`` complex diagonal modes ``lambda_n = exp(dt_n A_n)``, shared by all channels of a layer.

    Stable by construction: ``Re(A) = -exp(a) < 0``, so ``|lambda| < 1`` whatever the weights;
    ``dt_n = exp(log_dt_n)`` starts log-uniform in ``[dt_min, dt_max]`` (the searched timescale
    range) and ``A_n = -1/2 + i pi n`` (S4D-Lin).
    """

    def __init__(self, modes: int, dt_min: float, dt_max: float) -> None:
        super().__init__()
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"ssm: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.log_dt = nn.Parameter(torch.rand(modes) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.log_neg_real = nn.Parameter(torch.full((modes,), math.log(0.5)))
        self.imag = nn.Parameter(math.pi * torch.arange(modes).float())

    def discrete(self) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """(dt A, B-bar) of the zero-order-hold discretisation as (real, imaginary) pairs of (N,):
        ``lambda = exp(dt A)`` and ``B-bar = (lambda - 1) / A``."""
        dt = torch.exp(self.log_dt)
        a_re, a_im = -torch.exp(self.log_neg_real), self.imag
        dt_a = (a_re * dt, a_im * dt)
        magnitude = torch.exp(dt_a[0])
        e_re, e_im = magnitude * torch.cos(dt_a[1]) - 1, magnitude * torch.sin(dt_a[1])
        norm = a_re ** 2 + a_im ** 2
        return dt_a, ((e_re * a_re + e_im * a_im) / norm, (e_im * a_re - e_re * a_im) / norm)

    def step(self, drive: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One step ``s <- lambda s + B-bar u`` for real drive u (B, N) and complex state (B, N)."""
        dt_a, b_bar = (torch.complex(*pair) for pair in self.discrete())
        return torch.exp(dt_a) * state + b_bar * drive


def _chunk_starts(ends: torch.Tensor, log_jump: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The state before each chunk, from every chunk's own end state: ends e (N, B, C, 2) as
    [real, imaginary] -> ``before[c] = sum_{c' < c} J^(c - 1 - c') e[c']``, (N, B, C, 2), where
    ``J = exp(log_jump)`` (N,) complex carries a state across one chunk.

    Up to ``GROUP`` chunks this is one (2C x 2C) Toeplitz matmul. Beyond, the chunks are cut
    into groups of ``GROUP``: inside a group one Toeplitz matmul, and the state before each
    group comes from the group totals by the same function, one level up (``J^GROUP``), so the
    cost stays linear in C.
    """
    count, batch, chunks, _ = ends.shape
    if chunks <= GROUP:
        p_re, p_im = _powers(*log_jump, torch.arange(chunks, dtype=ends.dtype, device=ends.device))
        across = _complex_block(_toeplitz(p_re, chunks, 1), _toeplitz(p_im, chunks, 1))  # (N, 2C, 2C)
        flat = ends.transpose(2, 3).reshape(count, batch, 2 * chunks)
        return torch.bmm(flat, across).view(count, batch, 2, chunks).transpose(2, 3)
    groups = -(-chunks // GROUP)
    padded = F.pad(ends, (0, 0, 0, groups * GROUP - chunks))
    x = padded.view(count, batch * groups, GROUP, 2).transpose(2, 3).reshape(count, batch * groups, 2 * GROUP)
    p_re, p_im = _powers(*log_jump, torch.arange(GROUP, dtype=ends.dtype, device=ends.device))
    # each group's total: sum_m J^(GROUP - 1 - m) e[m], (N, BG, 2)
    totals = torch.bmm(x, _complex_block(p_re.flip(-1)[..., None], p_im.flip(-1)[..., None]))
    starts = _chunk_starts(totals.view(count, batch, groups, 2), (log_jump[0] * GROUP, log_jump[1] * GROUP))
    within = _complex_block(_toeplitz(p_re, GROUP, 1), _toeplitz(p_im, GROUP, 1))  # (N, 2M, 2M)
    carry = _complex_block(p_re[:, None], p_im[:, None])  # (N, 2, 2M): the group's start state -> J^m of it
    before = torch.bmm(torch.cat([x, starts.reshape(count, batch * groups, 2)], 2), torch.cat([within, carry], 1))
    before = before.view(count, batch, groups, 2, GROUP).transpose(3, 4).reshape(count, batch, groups * GROUP, 2)
    return before[:, :, :chunks]


def scan(modes: Modes, drive: torch.Tensor) -> torch.Tensor:
    """All states of ``s_t = lambda s_{t-1} + B-bar u_t`` (s_0 = 0) at once, without a loop over time.

    drive u (N, B, T), real, modes first -> states (N, B, C, 2, L): chunk c, real/imaginary part,
    step l of the chunk (T padded to C chunks of L = ``CHUNK`` steps). Inside a chunk the states
    are one (L x 2L) Toeplitz matmul per mode; the state before each chunk comes from the chunk
    end states (``_chunk_starts``) and is added to the chunk's steps through ``lambda^(l+1)`` in
    the same matmul. Every part costs time linear in T.
    """
    count, batch, steps = drive.shape
    chunk = CHUNK
    chunks = -(-steps // chunk)
    dt_a, b_bar = modes.discrete()
    p_re, p_im = _powers(*dt_a, torch.arange(chunk + 1, dtype=drive.dtype, device=drive.device))
    kernel_re = b_bar[0][:, None] * p_re - b_bar[1][:, None] * p_im  # B-bar lambda^l
    kernel_im = b_bar[0][:, None] * p_im + b_bar[1][:, None] * p_re
    within = torch.cat([_toeplitz(kernel_re, chunk, 0), _toeplitz(kernel_im, chunk, 0)], 2)  # (N, L, 2L)
    carry = _complex_block(p_re[:, None, 1:], p_im[:, None, 1:])  # (N, 2, 2L): state before the chunk -> its steps
    if chunks * chunk != steps:
        drive = F.pad(drive, (0, chunks * chunk - steps))
    x = drive.reshape(count, batch * chunks, chunk)
    ends = torch.bmm(x, within[:, :, chunk - 1::chunk])  # each chunk's own end state, (N, BC, 2)
    before = _chunk_starts(ends.view(count, batch, chunks, 2), (dt_a[0] * chunk, dt_a[1] * chunk))
    states = torch.bmm(torch.cat([x, before.reshape(count, batch * chunks, 2)], 2), torch.cat([within, carry], 1))
    return states.view(count, batch, chunks, 2, chunk)


class _ChannelsFirst(torch.autograd.Function):
    """``W @ x.T + b[:, None]`` for x (M, D): a projection written channels first (K, M), as the
    scan wants it; the weight gradient is taken as ``(x.T @ g.T).T``, the fast orientation."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.addmm(bias[:, None], weight, x.t())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        x, weight = ctx.saved_tensors
        grad_x = (weight.t() @ grad).t() if ctx.needs_input_grad[0] else None
        return grad_x, (x.t() @ grad.t()).t(), grad.sum(1)


class _Readout(torch.autograd.Function):
    """``x + features(states).T @ W.T``: the residual stream x (M, H) plus the readout of the
    scan's states (see ``_features``), in one GEMM, with gradients in the fast layouts."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, states: torch.Tensor, weight: torch.Tensor, steps: int) -> torch.Tensor:
        features = _features(states, steps)
        ctx.save_for_backward(features, weight)
        ctx.shape, ctx.steps = states.shape, steps
        return torch.addmm(x, features.t(), weight.t())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        features, weight = ctx.saved_tensors
        return grad, _states_grad(grad, weight, ctx.shape, ctx.steps), grad.t() @ features.t(), None


class _EncodeAndReadout(torch.autograd.Function):
    """``(x @ W_e.T + b_e) + features(states).T @ W.T``: the first block's residual stream (the
    encoder's output) plus its readout, in one buffer; x (M, D) are the raw inputs (no gradient)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, encoder_weight: torch.Tensor, encoder_bias: torch.Tensor,
                states: torch.Tensor, weight: torch.Tensor, steps: int) -> torch.Tensor:
        features = _features(states, steps)
        ctx.save_for_backward(x, features, weight)
        ctx.shape, ctx.steps = states.shape, steps
        return torch.addmm(encoder_bias, x, encoder_weight.t()).addmm_(features.t(), weight.t())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, features, weight = ctx.saved_tensors
        return (None, (x.t() @ grad).t(), grad.sum(0), _states_grad(grad, weight, ctx.shape, ctx.steps),
                grad.t() @ features.t(), None)


def _features(states: torch.Tensor, steps: int) -> torch.Tensor:
    """The scan's states (N, B, C, 2, L) -> the readout's inputs ``[Re s, Im s]`` (2N, B * T),
    channels first, rows ordered (mode, part), padded steps dropped."""
    modes, batch, chunks, _, chunk = states.shape
    features = states.permute(0, 3, 1, 2, 4).reshape(2 * modes, batch, chunks * chunk)
    return features[..., :steps].reshape(2 * modes, batch * steps)


def _states_grad(grad: torch.Tensor, weight: torch.Tensor, shape: torch.Size, steps: int) -> torch.Tensor:
    """The gradient of the states read out by ``features(states).T @ W.T``, from the readout's
    gradient (B * T, H): ``W.T @ grad.T`` chunk by chunk gives rows of L steps, the layout
    the scan's matmuls want, in one batched GEMM and one cheap permuting copy."""
    modes, batch, chunks, _, chunk = shape
    grad = grad.view(batch, steps, -1)
    if chunks * chunk != steps:
        grad = F.pad(grad, (0, 0, 0, chunks * chunk - steps))
    per_chunk = torch.matmul(weight.t(), grad.reshape(batch * chunks, chunk, -1).transpose(1, 2))  # (BC, 2N, L)
    return per_chunk.view(batch, chunks, modes, 2, chunk).permute(2, 0, 1, 3, 4).contiguous()


class SSMBlock(nn.Module):
    """Post-norm residual block over x (B, T, H):

    ``u, z = W_in x + b`` (N drives and N gate logits), ``s = scan(sigmoid(z) * u)`` (N complex
    modes), ``y = LayerNorm(x + W_out Dropout([Re s, Im s]))``. The input gate decides, from the
    current input, how much of it each mode takes in (so the states can sum products of inputs,
    as the adding problem needs); ``W_out`` reads both parts of every mode.
    """

    def __init__(self, channels: int, state_size: int, dt_min: float, dt_max: float, dropout: float) -> None:
        super().__init__()
        self.state_size = state_size
        self.modes = Modes(state_size, dt_min, dt_max)
        self.inputs = nn.Linear(channels, 2 * state_size)
        self.readout = nn.Parameter(torch.randn(channels, 2 * state_size) / math.sqrt(2 * state_size))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, H) -> (B, T, H), the whole sequence at once."""
        batch, steps, channels = x.shape
        rows = x.reshape(batch * steps, channels)
        states = self.states(_ChannelsFirst.apply(rows, self.inputs.weight, self.inputs.bias), batch, steps)
        return self.norm(_Readout.apply(rows, states, self.readout, steps).view(batch, steps, channels))

    def states(self, drive_and_gate: torch.Tensor, batch: int, steps: int) -> torch.Tensor:
        """``W_in x + b`` (2N, B * T), channels first -> the scan's states (N, B, C, 2, L) of the
        gated drive, after dropout."""
        gated = F.glu(drive_and_gate, dim=0).view(self.state_size, batch, steps)  # drive * sigmoid(gate)
        return self.dropout(scan(self.modes, gated))

    def initial_state(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """Zero complex state (B, N)."""
        return torch.zeros(batch, self.state_size, dtype=torch.complex64, device=device)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H) -> (B, H) and the new state, one step."""
        drive, gate = self.inputs(x).chunk(2, dim=-1)
        state = self.modes.step(torch.sigmoid(gate) * drive, state)
        features = self.dropout(torch.stack([state.real, state.imag], -1).flatten(1))
        return self.norm(x + features @ self.readout.t()), state


class SSMBackbone(nn.Module):
    """Input projection D -> H and ``num_layers`` SSM blocks; (B, T, D) -> (B, T, H)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, state_size: int = 16,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = nn.Linear(input_size, hidden_size)
        self.blocks = nn.ModuleList(SSMBlock(hidden_size, state_size, dt_min, dt_max, dropout)
                                    for _ in range(num_layers))
        self.output_size = hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Whole-sequence mode; padded steps are zeroed at the input, the rest is causal."""
        valid = valid_mask(lengths, x.shape[1], x.device)
        if valid is not None:
            x = x * valid[..., None].to(x.dtype)
        batch, steps, features = x.shape
        rows = x.reshape(batch * steps, features)
        # The first block, written from the D input features: its W_in (W_e x + b_e) + b_in as
        # one small projection, and its residual stream W_e x + b_e in the readout's buffer.
        first, encoder = self.blocks[0], self.encoder
        drive_and_gate = _ChannelsFirst.apply(rows, first.inputs.weight @ encoder.weight,
                                              first.inputs.weight @ encoder.bias + first.inputs.bias)
        stream = _EncodeAndReadout.apply(rows, encoder.weight, encoder.bias,
                                         first.states(drive_and_gate, batch, steps), first.readout, steps)
        h = first.norm(stream.view(batch, steps, -1))
        for block in self.blocks[1:]:
            h = block(h)
        return h

    def initial_state(self, batch: int, device: torch.device | None = None) -> list[torch.Tensor]:
        """Zero states of every layer, for ``step``."""
        return [block.initial_state(batch, device) for block in self.blocks]

    def step(self, x: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Recurrent mode: one step x (B, D) -> (B, H) and the new states."""
        h = self.encoder(x)
        new_states = []
        for block, state in zip(self.blocks, states):
            h, state = block.step(h, state)
            new_states.append(state)
        return h, new_states
