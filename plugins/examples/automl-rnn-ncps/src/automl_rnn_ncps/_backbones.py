"""Stacked ncps layers as automl-rnn backbones: (B, T, D) -> (B, T, hidden_size)."""

from __future__ import annotations

from typing import Callable

import torch
from ncps.torch import CfC, LTC
from torch import nn

from automl_rnn.types import Params


class NcpStack(nn.Module):
    """ncps layers run one after the other, with dropout between them in training.

    ncps layers read the sequence step by step from the start, so the padding at the end of
    a shorter sequence never reaches its valid steps: ``lengths`` needs no handling.
    """

    def __init__(self, layers: list[nn.Module], output_size: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.output_size = output_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) -> (B, T, output_size); ncps layers return (outputs, state)."""
        for index, layer in enumerate(self.layers):
            if index:
                x = self.dropout(x)
            x = layer(x)[0]
        return x


def _stack(input_size: int, params: Params, layer: Callable[[int, int], nn.Module]) -> NcpStack:
    """``num_layers`` layers made by ``layer(inputs, units)``."""
    units, depth = int(params["hidden_size"]), int(params["num_layers"])
    layers = [layer(input_size if i == 0 else units, units) for i in range(depth)]
    return NcpStack(layers, units, float(params["dropout"]))


def cfc_stack(input_size: int, params: Params) -> NcpStack:
    """Stacked ``ncps.torch.CfC`` layers (see ``families.cfc_space`` for their parameters)."""
    return _stack(input_size, params, lambda inputs, units: CfC(
        inputs, units, mode=str(params["mode"]), backbone_units=int(params["backbone_units"]),
        backbone_layers=int(params["backbone_layers"]), batch_first=True, return_sequences=True))


def ltc_stack(input_size: int, params: Params) -> NcpStack:
    """Stacked ``ncps.torch.LTC`` layers (see ``families.ltc_space`` for their parameter)."""
    return _stack(input_size, params, lambda inputs, units: LTC(
        inputs, units, ode_unfolds=int(params["ode_unfolds"]), batch_first=True,
        return_sequences=True))
