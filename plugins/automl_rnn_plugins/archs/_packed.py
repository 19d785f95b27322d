"""A Backbone around torch's cuDNN-style recurrent layers, packing padded batches."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class PackedRecurrent(nn.Module):
    """Wraps a batch-first ``nn.LSTM``/``nn.GRU``/``nn.RNN`` as a (B, T, D) -> (B, T, H) backbone."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn
        self.output_size = rnn.hidden_size * (2 if rnn.bidirectional else 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            return self.rnn(x)[0]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        return out
