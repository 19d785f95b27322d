"""The model of ``csv_forecast``: raw values in, forecasts on the original scale out."""

from __future__ import annotations

import torch
from torch import nn

from automl_rnn.nn import last_valid_step
from automl_rnn.types import Backbone


class LastValueForecaster(nn.Module):
    """(B, T, 1) raw values -> (B, horizon): the last valid value plus a learned correction.

    Inputs are standardised with the training span's mean and spread (buffers, saved with the
    weights, so a logged model takes raw values). The correction head starts at zero: an
    untrained model makes the naive forecast, and training only has to learn the change.
    """

    def __init__(self, backbone: Backbone, horizon: int, mean: float, std: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.output_size, horizon)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Forecast ``horizon`` values after the last valid step of each sequence."""
        h = self.backbone((x - self.mean) / self.std, lengths)
        last = last_valid_step(x, lengths)[:, :1]
        return last + self.std * self.head(last_valid_step(h, lengths))
