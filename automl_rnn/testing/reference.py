"""A small causal GRU family the task checks train with, so they depend on no other plugin."""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from automl_rnn.types import Architecture, Backbone


class ReferenceGRU(nn.Module):
    """A one-direction GRU backbone; padding only follows the valid steps, so it is harmless."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.output_size = hidden_size
        self.rnn = nn.GRU(input_size, hidden_size, num_layers=num_layers, batch_first=True)

    def forward(self, x, lengths=None):
        """(B, T, D) -> (B, T, H); causal, so padding at the end never reaches a valid step."""
        return self.rnn(x)[0]


def build_reference(input_size: int, params: Mapping[str, Any]) -> Backbone:
    """The kit's ``ReferenceGRU`` with the trial's ``hidden_size`` and ``num_layers``."""
    return ReferenceGRU(input_size, int(params["hidden_size"]), int(params["num_layers"]))


REFERENCE_ARCH = Architecture(
    name="kit_gru", description="contract kit's reference GRU", causal=True, build=build_reference
)
