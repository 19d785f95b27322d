"""An ensemble of trained models of one configuration: the mean of their outputs."""

from __future__ import annotations

import torch
from torch import nn


class EnsembleModel(nn.Module):
    """``forward(x, lengths)`` returns the mean of the members' outputs.

    Every member is a whole task model (preprocessing, backbone and head), so members may
    differ in anything but their output's meaning. For forecasts the mean is the usual
    ensemble forecast; for classifiers it is the mean of the logits, whose argmax is the
    ensemble's vote weighted by each member's confidence.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([member(x, lengths) for member in self.members]).mean(dim=0)
