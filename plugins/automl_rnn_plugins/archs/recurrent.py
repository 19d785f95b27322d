"""Gated recurrent families: ``lstm``, ``gru`` and their bidirectional forms ``bilstm``, ``bigru``.

Variable-length batches are packed, so padding never changes a valid step's output (and
the backward direction of a bidirectional model starts at each sequence's own last step).
"""

from __future__ import annotations

from automl_rnn import hookimpl
from automl_rnn.types import Architecture, Params


def build_recurrent(cell: str, bidirectional: bool):
    """A ``build(input_size, params)`` function for an ``nn.LSTM`` or ``nn.GRU`` backbone."""

    def build(input_size: int, params: Params):
        from torch import nn

        from automl_rnn_plugins.archs._packed import PackedRecurrent

        num_layers = int(params["num_layers"])
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        rnn = rnn_class(
            input_size=input_size,
            hidden_size=int(params["hidden_size"]),
            num_layers=num_layers,
            # torch applies this dropout between stacked layers only.
            dropout=float(params.get("dropout", 0.0)) if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
        )
        return PackedRecurrent(rnn)

    return build


@hookimpl
def automl_rnn_register_architectures(register) -> None:
    """Register lstm, gru (causal) and bilstm, bigru (not causal)."""
    register(Architecture("lstm", "LSTM (Hochreiter & Schmidhuber, 1997), stacked",
                          causal=True, build=build_recurrent("lstm", False)))
    register(Architecture("gru", "GRU (Cho et al., 2014), stacked",
                          causal=True, build=build_recurrent("gru", False)))
    register(Architecture("bilstm", "bidirectional LSTM: output = [forward, backward]",
                          causal=False, build=build_recurrent("lstm", True)))
    register(Architecture("bigru", "bidirectional GRU: output = [forward, backward]",
                          causal=False, build=build_recurrent("gru", True)))
