"""The torch module of the ``attention`` family (see ``attention.py``)."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn


class AttentiveGRU(nn.Module):
    """GRU states + causal self-attention over them; (B, T, D) -> (B, T, hidden_size)."""

    def __init__(self, input_size: int, hidden_size: int, attention_size: int, score: str = "dot",
                 num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.score = score
        self.query = nn.Linear(hidden_size, attention_size, bias=score == "additive")
        self.key = nn.Linear(hidden_size, attention_size, bias=False)
        self.value = nn.Linear(hidden_size, attention_size, bias=False)
        self.energy = nn.Linear(attention_size, 1, bias=False) if score == "additive" else None
        self.out = nn.Linear(attention_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = dropout
        self.output_size = hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Causal, so padding at the end never reaches a valid step; ``lengths`` is not needed."""
        h, _ = self.rnn(x)
        q, k, v = self.query(h), self.key(h), self.value(h)
        p = self.dropout if self.training else 0.0
        if self.score == "dot":
            context = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            steps = h.shape[1]
            scores = self.energy(torch.tanh(q[:, :, None] + k[:, None])).squeeze(-1)  # (B, T, T)
            future = torch.ones(steps, steps, dtype=torch.bool, device=h.device).triu(1)
            weights = F.dropout(scores.masked_fill(future, float("-inf")).softmax(-1), p, self.training)
            context = weights @ v
        return self.norm(h + self.out(context))
