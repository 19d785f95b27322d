"""The torch modules of the ``ssm`` family (see ``ssm.py``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from automl_rnn.nn import valid_mask


CHUNK = 64
"""Chunk length of the training-time convolution (steps); see ``DiagonalSSM.forward``."""


def _powers(re: torch.Tensor, im: torch.Tensor, exponents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of exp((re + i im) * k) for every k: (H, N) x (K,) -> 2 x (H, N, K)."""
    magnitude = torch.exp(re[..., None] * exponents)
    angle = im[..., None] * exponents
    return magnitude * torch.cos(angle), magnitude * torch.sin(angle)


def _times(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Complex product of two (real, imaginary) pairs."""
    return a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]


class _Transposed(torch.autograd.Function):
    """``x.permute(dims).contiguous()`` whose gradient is contiguous too, so the batched
    matmuls of the backward pass get BLAS-ready operands instead of a per-matrix fallback."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        ctx.dims = dims
        return x.permute(dims).contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        inverse = tuple(sorted(range(len(ctx.dims)), key=ctx.dims.__getitem__))
        return grad.permute(inverse).contiguous(), None


def _transpose(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Permute and copy, in both directions of autograd (see ``_Transposed``)."""
    return _Transposed.apply(x, dims)


class DiagonalSSM(nn.Module):
    """H independent channels, each a diagonal complex recurrence of ``state_size`` modes.

    The operators are built in real arithmetic (cos/sin of the mode angles); complex tensors
    appear only in the short chunk-level FFT of ``forward`` and in ``step``.
    """

    def __init__(self, channels: int, state_size: int, dt_min: float, dt_max: float) -> None:
        super().__init__()
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"ssm: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.log_neg_real = nn.Parameter(torch.full((channels, state_size), math.log(0.5)))
        self.imag = nn.Parameter(math.pi * torch.arange(state_size).float().repeat(channels, 1))
        self.c = nn.Parameter(torch.randn(channels, state_size, 2) * math.sqrt(0.5 / state_size))
        self.d = nn.Parameter(torch.randn(channels))

    def discrete(self) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """(dt * A, B-bar, C) of the ZOH discretisation, each a (real, imaginary) pair of (H, N)."""
        a_re, a_im = -torch.exp(self.log_neg_real), self.imag
        dt = torch.exp(self.log_dt)[:, None]
        dt_a = (a_re * dt, a_im * dt)
        lam_re, lam_im = _powers(*dt_a, torch.ones(1, device=dt.device))
        e_re, e_im = lam_re[..., 0] - 1, lam_im[..., 0]  # exp(dt A) - 1
        norm = a_re ** 2 + a_im ** 2
        b_bar = ((e_re * a_re + e_im * a_im) / norm, (e_im * a_re - e_re * a_im) / norm)  # (exp(dt A) - 1) / A
        return dt_a, b_bar, (self.c[..., 0], self.c[..., 1])

    def operators(self, chunk: int, chunks: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The small operators of the chunked convolution (L = chunk, C = chunks, N modes).

        - ``within`` (H, L, L): the causal Toeplitz matrix of the kernel K_0..K_{L-1} (plus D on the
          diagonal), K_l = 2 Re(sum_n C_n B_n lambda_n^l);
        - ``to_state`` (H, L, 2N): a chunk's inputs -> its contribution to the state at its end,
          B_n lambda_n^(L-1-m) (real and imaginary part of each mode side by side);
        - ``from_state`` (H, 2N, L): the state before a chunk -> the outputs inside it,
          2 Re(C_n lambda_n^(l+1) s_n);
        - ``across`` (H, N, 2C) complex: the spectrum (length-2C FFT) of the chunk-level kernel
          0, 1, lambda^L, lambda^2L, ..., which carries end-of-chunk contributions to later chunks.
        """
        dt_a, b_bar, c = self.discrete()
        steps = torch.arange(chunk + 1, dtype=dt_a[0].dtype, device=dt_a[0].device)
        powers = _powers(*dt_a, steps)  # lambda^0 .. lambda^L, (H, N, L + 1)
        cb = _times(c, b_bar)
        kernel = 2 * (cb[0][..., None] * powers[0][..., :chunk] - cb[1][..., None] * powers[1][..., :chunk]).sum(1)
        kernel = torch.cat([kernel[:, :1] + self.d[:, None], kernel[:, 1:]], dim=1)  # (H, L)
        lag = steps[None, :chunk] - steps[:chunk, None]  # [m, l] = l - m
        within = kernel[:, lag.clamp(min=0).long()] * (lag >= 0)
        back = (powers[0][..., :chunk].flip(-1), powers[1][..., :chunk].flip(-1))  # lambda^(L-1-m)
        to_state = torch.stack(_times((b_bar[0][..., None], b_bar[1][..., None]), back), dim=-1)  # (H, N, L, 2)
        out = _times((c[0][..., None], c[1][..., None]), (powers[0][..., 1:], powers[1][..., 1:]))
        from_state = 2 * torch.stack([out[0], -out[1]], dim=2)  # (H, N, 2, L)
        exponents = torch.arange(chunks - 1, dtype=steps.dtype, device=steps.device)
        decay = F.pad(torch.complex(*_powers(dt_a[0] * chunk, dt_a[1] * chunk, exponents)), (1, 0))
        across = torch.fft.fft(decay, n=2 * chunks)
        return within, to_state.permute(0, 2, 1, 3).flatten(2), from_state.flatten(1, 2), across

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (H, B, T) -> y (H, B, T), channels first: the causal convolution, in chunks of L steps.

        Within a chunk, one (L x L) Toeplitz matmul per channel. Across chunks, each chunk's
        inputs are summed into its end state (N complex values per channel), the states are
        carried to later chunks by a short FFT convolution over the chunk index, and each chunk
        reads the state before it. No loop over time; cost O(T (L + N) + T N log(T / L) / L).
        """
        channels, batch, steps = u.shape
        chunk = max(min(CHUNK, steps), math.isqrt(steps - 1) + 1)
        chunks = -(-steps // chunk)
        modes = self.c.shape[1]
        within, to_state, from_state, across = self.operators(chunk, chunks)
        x = F.pad(u, (0, chunks * chunk - steps)).reshape(channels, batch * chunks, chunk)
        ends = torch.view_as_complex((x @ to_state).view(channels, batch, chunks, modes, 2))
        carried = torch.fft.ifft(torch.fft.fft(ends, n=2 * chunks, dim=2) * across.transpose(1, 2)[:, None], dim=2)
        state = torch.view_as_real(carried[:, :, :chunks]).reshape(channels, batch * chunks, 2 * modes)
        y = (state @ from_state).baddbmm_(x, within)
        return y.view(channels, batch, chunks * chunk)[..., :steps]

    def initial_state(self, batch: int, device: torch.device) -> torch.Tensor:
        """Zero complex state (B, H, N)."""
        return torch.zeros(batch, *self.c.shape[:2], dtype=torch.complex64, device=device)

    def step(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the recurrence: u (B, H) -> y (B, H) and the new state."""
        dt_a, b_bar, c = (torch.complex(*pair) for pair in self.discrete())
        state = torch.exp(dt_a) * state + b_bar * u[..., None]
        return 2 * (state * c).sum(-1).real + u * self.d, state


class _LinearFromChannels(torch.autograd.Function):
    """``x.permute(1, 2, 0) @ W.T + b`` for channels-first x (H, B, T) -> (B, T, O), whose input
    gradient comes back channels first and contiguous (one matmul each way, no transposed copy)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        channels, batch, steps = x.shape
        return torch.addmm(bias, x.reshape(channels, -1).t(), weight.t()).view(batch, steps, -1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, weight = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        grad_x = (weight.t() @ flat.t()).view(x.shape)
        return grad_x, flat.t() @ x.reshape(x.shape[0], -1).t(), flat.sum(0)


class SSMBlock(nn.Module):
    """Post-norm residual block, channels first in, channels last out:
    x (H, B, T) -> LayerNorm(x + Dropout(GLU(Linear(GELU(SSM(x)))))) (B, T, H)."""

    def __init__(self, channels: int, state_size: int, dt_min: float, dt_max: float, dropout: float) -> None:
        super().__init__()
        self.ssm = DiagonalSSM(channels, state_size, dt_min, dt_max)
        self.mix = nn.Linear(channels, 2 * channels)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(H, B, T) -> (B, T, H), the whole sequence at once."""
        mixed = _LinearFromChannels.apply(F.gelu(self.ssm(x)), self.mix.weight, self.mix.bias)
        return self.norm(self.dropout(F.glu(mixed, dim=-1)) + x.permute(1, 2, 0))  # contiguous, as (B, T, H)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H) -> (B, H), one step."""
        y, state = self.ssm.step(x, state)
        return self.norm(x + self.dropout(F.glu(self.mix(F.gelu(y)), dim=-1))), state


class SSMBackbone(nn.Module):
    """Input projection and ``num_layers`` SSM blocks; (B, T, D) -> (B, T, H)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, state_size: int = 16,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = nn.Linear(input_size, hidden_size)
        self.blocks = nn.ModuleList(SSMBlock(hidden_size, state_size, dt_min, dt_max, dropout)
                                    for _ in range(num_layers))
        self.output_size = hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Whole-sequence (convolution) mode; padded steps are zeroed, the rest is causal."""
        valid = valid_mask(lengths, x.shape[1], x.device)
        if valid is not None:
            x = x * valid[..., None].to(x.dtype)
        batch, steps, features = x.shape
        # the projection written channels first (H, B, T): the layout the SSM's matmuls want
        h = torch.addmm(self.encoder.bias[:, None], self.encoder.weight, x.reshape(-1, features).t())
        h = h.view(-1, batch, steps)
        for i, block in enumerate(self.blocks):
            out = block(h)
            if i + 1 < len(self.blocks):
                h = _transpose(out, (2, 0, 1))
        return out

    def initial_state(self, batch: int, device: torch.device | None = None) -> list[torch.Tensor]:
        """Zero states of every layer, for ``step``."""
        return [block.ssm.initial_state(batch, device) for block in self.blocks]

    def step(self, x: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Recurrent mode: one step x (B, D) -> (B, H) and the new states."""
        h = self.encoder(x)
        new_states = []
        for block, state in zip(self.blocks, states):
            h, state = block.step(h, state)
            new_states.append(state)
        return h, new_states
