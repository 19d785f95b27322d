"""``hierarchical``: a two-timescale RNN (in the spirit of Schmidhuber's history compressor and
El Hihi & Bengio, 1995).

The sequence is cut into chunks of ``chunk_size`` steps. A lower GRU (``hidden_size``,
``num_layers``) runs inside each chunk, restarting at every chunk boundary; its state at the
chunk's last step is the chunk's summary. An upper GRU (``upper_size``) runs over the chunk
summaries, one step per chunk. Every step of chunk k receives the upper state after chunk
k-1 (zeros in the first chunk), and the backbone's output at that step is
``[lower state, upper state]``, so ``output_size = hidden_size + upper_size``.

It is causal: a step never sees the summary of its own chunk or of a later one, only the
lower state of its own chunk up to itself. Both levels run as whole-sequence GRU calls (the
lower one over all chunks at once as a batch), with no Python loop over steps or chunks.
"""

from __future__ import annotations

from optuna.distributions import IntDistribution

from automl_rnn import hookimpl
from automl_rnn.types import Architecture, Params, SearchSpace


def hierarchical_space() -> SearchSpace:
    """The family's own parameters: chunk length and the size of the upper level."""
    return {
        "chunk_size": IntDistribution(4, 64, log=True),
        "upper_size": IntDistribution(16, 256, log=True),
    }


def build_hierarchical(input_size: int, params: Params):
    """A ``HierarchicalRNN`` backbone; the lower level is ``hidden_size`` wide."""
    from automl_rnn_plugins.archs._hierarchical import HierarchicalRNN

    return HierarchicalRNN(
        input_size,
        hidden_size=int(params["hidden_size"]),
        upper_size=int(params.get("upper_size", 32)),
        chunk_size=int(params.get("chunk_size", 8)),
        num_layers=int(params["num_layers"]),
        dropout=float(params.get("dropout", 0.0)),
    )


@hookimpl
def automl_rnn_register_architectures(register) -> None:
    """Register ``hierarchical`` (causal)."""
    register(Architecture("hierarchical", "two-timescale RNN: GRU within chunks, GRU over chunk summaries",
                          causal=True, build=build_hierarchical, space=hierarchical_space))
