"""The torch modules of the ``ssm`` family (see ``ssm.py``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from automl_rnn.nn import valid_mask


def _powers(dt_a: torch.Tensor, exponents: torch.Tensor) -> torch.Tensor:
    """exp(dt_a * l) for every l in ``exponents``: (H, N) x (L,) -> complex (H, N, L)."""
    scaled = dt_a[..., None] * exponents.to(dt_a.real.dtype)
    return torch.polar(torch.exp(scaled.real), scaled.imag)


class DiagonalSSM(nn.Module):
    """H independent channels, each a diagonal complex recurrence of ``state_size`` modes."""

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

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dt * A, B-bar, C) as complex (H, N) tensors of the ZOH discretisation."""
        a = torch.complex(-torch.exp(self.log_neg_real), self.imag)
        dt_a = a * torch.exp(self.log_dt)[:, None]
        b_bar = (torch.exp(dt_a) - 1) / a
        return dt_a, b_bar, torch.view_as_complex(self.c)

    def kernel(self, steps: int) -> torch.Tensor:
        """The (H, T) impulse response 2 Re(sum_n C_n B_n lambda_n^l), l = 0..T-1.

        lambda^l is formed as lambda^(L q) * lambda^r with l = L q + r and L about sqrt(T),
        so only H x N x 2 sqrt(T) powers are exponentiated (in polar form, which is much
        cheaper than a complex exp on CPU) and the sum over modes is one batched matmul.
        """
        dt_a, b_bar, c = self.discrete()
        block = max(1, math.isqrt(steps))
        blocks = -(-steps // block)
        within = _powers(dt_a, torch.arange(block, device=dt_a.device))  # (H, N, L)
        across = _powers(dt_a, block * torch.arange(blocks, device=dt_a.device))  # (H, N, Q)
        k = ((c * b_bar)[..., None] * across).transpose(1, 2) @ within  # (H, Q, L)
        return 2 * k.real.reshape(k.shape[0], -1)[:, :steps]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (B, T, H) -> y (B, T, H) by causal FFT convolution with the kernel."""
        steps = u.shape[1]
        k = self.kernel(steps)
        n = 2 * steps
        y = torch.fft.irfft(torch.fft.rfft(u.transpose(1, 2), n=n) * torch.fft.rfft(k, n=n), n=n)[..., :steps]
        return y.transpose(1, 2) + u * self.d

    def initial_state(self, batch: int, device: torch.device) -> torch.Tensor:
        """Zero complex state (B, H, N)."""
        return torch.zeros(batch, *self.c.shape[:2], dtype=torch.complex64, device=device)

    def step(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the recurrence: u (B, H) -> y (B, H) and the new state."""
        dt_a, b_bar, c = self.discrete()
        state = torch.exp(dt_a) * state + b_bar * u[..., None]
        return 2 * (state * c).sum(-1).real + u * self.d, state


class SSMBlock(nn.Module):
    """Pre-norm residual block: x + Dropout(GLU(Linear(GELU(SSM(LayerNorm(x))))))."""

    def __init__(self, channels: int, state_size: int, dt_min: float, dt_max: float, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.ssm = DiagonalSSM(channels, state_size, dt_min, dt_max)
        self.mix = nn.Linear(channels, 2 * channels)
        self.dropout = nn.Dropout(dropout)

    def _after(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(F.glu(self.mix(F.gelu(y)), dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H) -> (B, T, H), the whole sequence at once."""
        return self._after(x, self.ssm(self.norm(x)))

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H) -> (B, H), one step."""
        y, state = self.ssm.step(self.norm(x), state)
        return self._after(x, y), state


class SSMBackbone(nn.Module):
    """Input projection, ``num_layers`` SSM blocks, final LayerNorm; (B, T, D) -> (B, T, H)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, state_size: int = 32,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = nn.Linear(input_size, hidden_size)
        self.blocks = nn.ModuleList(SSMBlock(hidden_size, state_size, dt_min, dt_max, dropout)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden_size)
        self.output_size = hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Whole-sequence (convolution) mode; padded steps are zeroed, the rest is causal."""
        valid = valid_mask(lengths, x.shape[1], x.device)
        if valid is not None:
            x = x * valid[..., None].to(x.dtype)
        h = self.encoder(x)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

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
        return self.norm(h), new_states
