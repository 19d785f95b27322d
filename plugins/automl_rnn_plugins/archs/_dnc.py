"""The torch module of the ``dnc`` family (see ``dnc.py`` for the model and its footprint)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-6


def content_weighting(memory: torch.Tensor, keys: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """Softmax over slots of strength x cosine(key, slot): memory (B, N, W), keys (B, H, W) -> (B, H, N).

    The cosine is ``k.m / (max(|k|, eps) max(|m|, eps))`` (as ``F.normalize``), with the key's
    norm folded into the strength, so the whole weighting is a handful of operations.
    """
    scale = strengths / keys.norm(dim=-1).clamp_min(_EPS)  # (B, H)
    dots = torch.bmm(keys, memory.transpose(1, 2))  # (B, H, N)
    return F.softmax(dots * scale[..., None] / memory.norm(dim=-1).clamp_min(_EPS)[:, None, :], dim=-1)


def allocation_weighting(usage: torch.Tensor) -> torch.Tensor:
    """(B, N) usage -> (B, N) allocation: free slots first, in order of increasing usage."""
    usage = _EPS + (1 - _EPS) * usage
    sorted_usage, order = usage.sort(dim=-1)
    # exclusive cumulative product, as exp(cumsum(log)): usage >= eps, and cumprod's backward is slow
    exclusive = torch.exp(torch.cumsum(F.pad(sorted_usage[:, :-1].log(), (1, 0)), dim=-1))
    return torch.zeros_like(usage).scatter(1, order, (1 - sorted_usage) * exclusive)


class DNC(nn.Module):
    """Differentiable Neural Computer; (B, T, D) -> (B, T, hidden_size + R * W)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, memory_slots: int = 16,
                 word_size: int = 16, read_heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.n, self.w, self.r = memory_slots, word_size, read_heads
        sizes = [input_size + read_heads * word_size] + [hidden_size] * num_layers
        self.cells = nn.ModuleList(nn.LSTMCell(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(dropout)
        r, w = read_heads, word_size
        # read keys, write key, write vector, strengths (R read + 1 write), gates (erase W,
        # free R, allocation 1, write 1), read modes; grouped so each activation is one call
        self.split = [r * w, w, w, r + 1, w + r + 2, 3 * r]
        self.interface = nn.Linear(hidden_size, sum(self.split))
        self.register_buffer("off_diagonal", 1 - torch.eye(memory_slots), persistent=False)
        self.output_size = hidden_size + r * w

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Empty memory and links, zero weightings, zero controller state."""
        n, w, r = self.n, self.w, self.r

        def zeros(*shape):
            return torch.zeros(batch, *shape, device=device, dtype=dtype)

        hidden = [(zeros(c.hidden_size), zeros(c.hidden_size)) for c in self.cells]
        return {"memory": zeros(n, w), "link": zeros(n, n), "precedence": zeros(n), "usage": zeros(n),
                "write": zeros(n), "read": zeros(r, n), "reads": zeros(r * w), "hidden": hidden}

    def step(self, x: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One time step: x (B, D) and the state -> output (B, output_size) and the new state."""
        batch = x.shape[0]
        w, r = self.w, self.r
        inp = torch.cat([x, state["reads"]], dim=-1)
        hidden = []
        for i, cell in enumerate(self.cells):
            h, c = cell(inp if i == 0 else self.dropout(inp), state["hidden"][i])
            hidden.append((h, c))
            inp = h
        read_keys, write_key, write_vector, strengths, gates, read_modes = torch.split(
            self.interface(h), self.split, dim=-1)
        read_keys = read_keys.view(batch, r, w)
        write_key = write_key.view(batch, 1, w)
        strengths = 1 + F.softplus(strengths)
        read_strengths, write_strength = strengths[:, :r], strengths[:, r:]
        erase, free_gates, allocation_gate, write_gate = torch.split(torch.sigmoid(gates), [w, r, 1, 1], dim=-1)
        read_modes = F.softmax(read_modes.view(batch, r, 3), dim=-1)  # backward, content, forward

        memory, link, precedence, read = state["memory"], state["link"], state["precedence"], state["read"]
        # usage: retained unless freed by a read head after being read
        freed = 1 - free_gates[..., None] * read  # (B, R, N)
        retention = freed[:, 0]
        for head in range(1, r):
            retention = retention * freed[:, head]
        usage = torch.addcmul(state["usage"], state["write"], 1 - state["usage"]) * retention
        # write weighting: allocation or content, gated
        content = content_weighting(memory, write_key, write_strength).squeeze(1)
        write = write_gate * torch.lerp(content, allocation_weighting(usage), allocation_gate)
        written = write[..., None]  # (B, N, 1)
        memory = torch.addcmul(torch.addcmul(memory, written * erase[:, None, :], memory, value=-1),
                               written, write_vector[:, None, :])
        # temporal links: L[i, j] = (1 - w_i - w_j) L[i, j] + w_i p_j, zero diagonal
        link = torch.addcmul(torch.addcmul(link, written + write[:, None, :], link, value=-1),
                             written, precedence[:, None, :]) * self.off_diagonal
        precedence = torch.addcmul(write, 1 - write.sum(-1, keepdim=True), precedence)
        # reading: each head mixes backward, content and forward weightings by its read modes
        directions = torch.stack([torch.bmm(read, link), content_weighting(memory, read_keys, read_strengths),
                                  torch.bmm(read, link.transpose(1, 2))], dim=2)  # (B, R, 3, N)
        read = (read_modes[..., None] * directions).sum(2)
        reads = torch.bmm(read, memory).view(batch, r * w)
        new_state = {"memory": memory, "link": link, "precedence": precedence, "usage": usage,
                     "write": write, "read": read, "reads": reads, "hidden": hidden}
        return torch.cat([h, reads], dim=-1), new_state

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Causal loop over time, so padding at the end never reaches a valid step."""
        state = self.initial_state(x.shape[0], x.device, x.dtype)
        outputs = []
        for t in range(x.shape[1]):
            out, state = self.step(x[:, t], state)
            outputs.append(out)
        return torch.stack(outputs, dim=1)
