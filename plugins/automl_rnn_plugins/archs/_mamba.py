"""The torch module of the ``mamba`` family (see ``mamba.py``)."""

from __future__ import annotations

import torch
from torch import nn

from automl_rnn.nn import valid_mask


class MambaBackbone(nn.Module):
    """Input projection, mambapy residual blocks with dropout between, RMSNorm; (B, T, D) -> (B, T, H)."""

    def __init__(self, mamba_module, input_size: int, hidden_size: int, num_layers: int = 1,
                 d_state: int = 16, expand: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        config = mamba_module.MambaConfig(d_model=hidden_size, n_layers=num_layers, d_state=d_state,
                                          expand_factor=expand, pscan=True, use_cuda=False)
        self.encoder = nn.Linear(input_size, hidden_size)
        self.blocks = nn.ModuleList(mamba_module.ResidualBlock(config) for _ in range(num_layers))
        self.norm = mamba_module.RMSNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.output_size = hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Causal, so padding at the end never reaches a valid step; padded steps are zeroed anyway."""
        valid = valid_mask(lengths, x.shape[1], x.device)
        if valid is not None:
            x = x * valid[..., None].to(x.dtype)
        h = self.encoder(x)
        for i, block in enumerate(self.blocks):
            h = block(self.dropout(h) if i else h)
        return self.norm(h)
