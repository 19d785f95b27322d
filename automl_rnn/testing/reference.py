"""A small causal GRU family the task checks train with, so they depend on no other plugin."""

from __future__ import annotations

from typing import Any, Mapping

from automl_rnn.types import Architecture, Backbone


def build_reference(input_size: int, params: Mapping[str, Any]) -> Backbone:
    """A one-direction GRU backbone; padding only follows the valid steps, so it is harmless."""
    from torch import nn

    class ReferenceGRU(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.output_size = int(params["hidden_size"])
            self.rnn = nn.GRU(input_size, self.output_size,
                              num_layers=int(params["num_layers"]), batch_first=True)

        def forward(self, x, lengths=None):
            """(B, T, D) -> (B, T, H); causal, so padding at the end never reaches a valid step."""
            return self.rnn(x)[0]

    return ReferenceGRU()


REFERENCE_ARCH = Architecture(
    name="kit_gru", description="contract kit's reference GRU", causal=True, build=build_reference
)
