"""The torch module of the ``hierarchical`` family (see ``hierarchical.py``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class HierarchicalRNN(nn.Module):
    """Lower GRU inside chunks, upper GRU over chunk summaries; (B, T, D) -> (B, T, H + U).

    The output at a step of chunk k is its lower state concatenated with the upper state
    after chunk k-1, so nothing from its own chunk's summary (or later) reaches it.
    """

    def __init__(self, input_size: int, hidden_size: int, upper_size: int, chunk_size: int,
                 num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f"hierarchical: chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.lower = nn.GRU(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.upper = nn.GRU(hidden_size, upper_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.output_size = hidden_size + upper_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Causal, so padding at the end never reaches a valid step; ``lengths`` is not needed."""
        batch, steps, features = x.shape
        c = self.chunk_size
        n_chunks = -(-steps // c)
        x = F.pad(x, (0, 0, 0, n_chunks * c - steps))
        lower, _ = self.lower(x.reshape(batch * n_chunks, c, features))  # restarts every chunk
        summaries = self.dropout(lower[:, -1].reshape(batch, n_chunks, -1))
        upper, _ = self.upper(summaries)  # (B, K, U): state after chunk k
        previous = F.pad(upper, (0, 0, 1, 0))[:, :n_chunks]  # state after chunk k-1
        fed_back = previous.repeat_interleave(c, dim=1)
        out = torch.cat([lower.reshape(batch, n_chunks * c, -1), fed_back], dim=-1)
        return out[:, :steps]
