"""The torch module of the ``dnc`` family (see ``dnc.py`` for the model and its footprint)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-6


def scaled_keys(keys: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """(B, H, W) keys and (B, H) strengths -> strength x key / max(|key|, eps).

    A content weighting (softmax over slots of strength x cosine(key, slot), the cosine as
    ``F.normalize`` takes it) is then ``softmax(bmm(scaled_keys, unit_slots(memory)))``.
    """
    return keys * (strengths / keys.norm(dim=-1).clamp_min(_EPS))[..., None]


def unit_slots(memory: torch.Tensor) -> torch.Tensor:
    """(B, N, W) memory -> (B, W, N): every slot divided by max(|slot|, eps), transposed for ``bmm``."""
    return (memory / memory.norm(dim=-1, keepdim=True).clamp_min(_EPS)).transpose(1, 2)


def allocation_weighting(usage: torch.Tensor) -> torch.Tensor:
    """(B, N) usage -> (B, N) allocation: free slots first, in order of increasing usage."""
    usage = usage * (1 - _EPS) + _EPS
    sorted_usage, order = usage.sort(dim=-1)
    # exclusive cumulative product, as exp(cumsum(log) - log): usage >= eps, and cumprod's backward is slow
    logs = sorted_usage.log()
    exclusive = torch.exp(torch.cumsum(logs, dim=-1) - logs)
    return torch.zeros_like(usage).scatter(1, order, (1 - sorted_usage) * exclusive)


class DNC(nn.Module):
    """Differentiable Neural Computer; (B, T, D) -> (B, T, hidden_size + R * W)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, memory_slots: int = 16,
                 word_size: int = 16, read_heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.n, self.w, self.r = memory_slots, word_size, read_heads
        self.input_size = input_size
        sizes = [input_size + read_heads * word_size] + [hidden_size] * num_layers
        self.cells = nn.ModuleList(nn.LSTMCell(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(dropout)
        r, w = read_heads, word_size
        # read keys + write key (one block: all keys are scaled together), write vector,
        # strengths (R read + 1 write), gates (erase W, free R, allocation 1, write 1), read
        # modes; grouped so each activation is one call
        self.split = [(r + 1) * w, w, r + 1, w + r + 2, 3 * r]
        self.interface = nn.Linear(hidden_size, sum(self.split))
        self.register_buffer("off_diagonal", 1 - torch.eye(memory_slots), persistent=False)
        self.output_size = hidden_size + r * w

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Empty memory and links, zero weightings, zero controller state.

        ``unit_slots`` (the memory's unit-norm slots, transposed) is derived from the memory,
        kept so a step computes it once for its read and the next step's write.
        """
        n, w, r = self.n, self.w, self.r

        def zeros(*shape):
            return torch.zeros(batch, *shape, device=device, dtype=dtype)

        hidden = [(zeros(c.hidden_size), zeros(c.hidden_size)) for c in self.cells]
        return {"memory": zeros(n, w), "unit_slots": zeros(w, n), "link": zeros(n, n), "precedence": zeros(n),
                "usage": zeros(n), "write": zeros(n), "read": zeros(r, n), "reads": zeros(r * w), "hidden": hidden}

    def _controller_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the recurrent weight (transposed, for ``addmm``) and the summed biases.

        Layer 0's recurrent input is ``[h, reads]``; its external input ``x`` is projected for
        all steps at once in ``forward``.
        """
        weights = []
        for i, cell in enumerate(self.cells):
            if i == 0:
                recurrent = torch.cat([cell.weight_hh, cell.weight_ih[:, self.input_size:]], dim=1)
            else:
                recurrent = torch.cat([cell.weight_ih, cell.weight_hh], dim=1)
            weights.append((recurrent.t(), cell.bias_ih + cell.bias_hh))
        return weights

    def step(self, x: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One time step: x (B, D) and the state -> output (B, output_size) and the new state."""
        weights = self._controller_weights()
        return self._step(F.linear(x, self.cells[0].weight_ih[:, :self.input_size], weights[0][1]), state, weights)

    def _step(self, x_gates: torch.Tensor, state: dict, weights: list) -> tuple[torch.Tensor, dict]:
        """``step`` given layer 0's input term ``x W_ih^T + b`` (B, 4 hidden) and the controller weights."""
        batch = x_gates.shape[0]
        w, r = self.w, self.r
        hidden = []
        for i, ((h, c), (recurrent, bias)) in enumerate(zip(state["hidden"], weights)):
            if i == 0:
                gates = torch.addmm(x_gates, torch.cat([h, state["reads"]], dim=-1), recurrent)
            else:
                gates = torch.addmm(bias, torch.cat([self.dropout(hidden[-1][0]), h], dim=-1), recurrent)
            # LSTM cell, gates in nn.LSTMCell's order (input, forget, cell, output)
            size = h.shape[-1]
            input_gate, forget_gate, _, output_gate = torch.sigmoid(gates).chunk(4, dim=-1)
            c = torch.addcmul(forget_gate * c, input_gate, torch.tanh(gates[:, 2 * size:3 * size]))
            h = output_gate * torch.tanh(c)
            hidden.append((h, c))
        keys, write_vector, strengths, gates, read_modes = torch.split(self.interface(h), self.split, dim=-1)
        # every key (R read, then the write key) times its strength over its norm, so a content
        # weighting is one bmm with the unit-norm slots and a softmax
        read_keys, write_key = scaled_keys(keys.view(batch, r + 1, w), 1 + F.softplus(strengths)).split([r, 1], 1)
        erase, free_gates, allocation_gate, write_gate = torch.split(torch.sigmoid(gates), [w, r, 1, 1], dim=-1)
        read_modes = F.softmax(read_modes.view(batch, r, 3), dim=-1)  # backward, content, forward

        memory, link, precedence, read = state["memory"], state["link"], state["precedence"], state["read"]
        # usage: retained unless freed by a read head after being read
        freed = 1 - free_gates[..., None] * read  # (B, R, N)
        retention = freed[:, 0]
        for head in range(1, r):
            retention = retention * freed[:, head]
        usage = torch.addcmul(state["usage"], state["write"], 1 - state["usage"]) * retention
        # write weighting: allocation or content (on the memory before this write), gated
        content = F.softmax(torch.bmm(write_key, state["unit_slots"]), dim=-1).squeeze(1)
        write = write_gate * torch.lerp(content, allocation_weighting(usage), allocation_gate)
        written = write[..., None]  # (B, N, 1)
        memory = torch.addcmul(torch.addcmul(memory, written * erase[:, None, :], memory, value=-1),
                               written, write_vector[:, None, :])
        # temporal links: L[i, j] = (1 - w_i - w_j) L[i, j] + w_i p_j, zero diagonal
        link = torch.addcmul(torch.addcmul(link, written + write[:, None, :], link, value=-1),
                             written, precedence[:, None, :]) * self.off_diagonal
        precedence = torch.addcmul(write, 1 - write.sum(-1, keepdim=True), precedence)
        # reading: each head mixes backward, content and forward weightings by its read modes
        slots = unit_slots(memory)  # also the next step's write content weighting
        directions = torch.stack([torch.bmm(read, link), F.softmax(torch.bmm(read_keys, slots), dim=-1),
                                  torch.bmm(read, link.transpose(1, 2))], dim=2)  # (B, R, 3, N)
        read = (read_modes[..., None] * directions).sum(2)
        reads = torch.bmm(read, memory).view(batch, r * w)
        new_state = {"memory": memory, "unit_slots": slots, "link": link, "precedence": precedence, "usage": usage,
                     "write": write, "read": read, "reads": reads, "hidden": hidden}
        return torch.cat([h, reads], dim=-1), new_state

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Causal loop over time, so padding at the end never reaches a valid step."""
        state = self.initial_state(x.shape[0], x.device, x.dtype)
        weights = self._controller_weights()
        # layer 0's input term for every step at once (each step's own input only)
        x_gates = F.linear(x, self.cells[0].weight_ih[:, :self.input_size], weights[0][1])
        outputs = []
        for gates in x_gates.unbind(1):
            out, state = self._step(gates, state, weights)
            outputs.append(out)
        return torch.stack(outputs, dim=1)
