"""``dnc``: the Differentiable Neural Computer (Graves et al., 2016, Nature 538), in plain torch.

An LSTM controller (``hidden_size``, ``num_layers`` stacked cells) reads the input and the
previous step's R read vectors and emits an interface vector that drives an external memory
of N slots x W words:

- content addressing: cosine similarity between a key and every slot, sharpened by a
  strength ``1 + softplus(.)``, then softmax over slots (for the write head and each read head);
- dynamic allocation: usage rises with writes and falls with the free gates of the read
  heads; the allocation weighting favours the least-used slots (sorted usage, exclusive
  cumulative product);
- writing: a write gate and an allocation gate mix allocation and content weightings; the
  slots written are erased (erase vector) and added to (write vector);
- temporal links: an N x N link matrix records the order of writes (with the precedence
  weighting), so each read head can move forward or backward in write order;
- reading: R read heads, each mixing backward, content and forward weightings with its own
  read modes.

The output at step t is ``[controller state, R read vectors]``, so
``output_size = hidden_size + R * W``. It is causal (a loop over time), so padding at the end
never changes a valid step. N (``memory_slots``), W (``word_size``) and R (``read_heads``)
are searched.

Numerical stability: cosine similarities divide by ``|a||b| + 1e-6``, strengths are at least
one and finite, usage is kept in [0, 1], allocation follows the paper's ``eps + (1 - eps) u``
guard, and every weighting is a softmax or a convex mixture, so memory values stay bounded by
the write vectors (tanh-free but linear in bounded weights).

Memory footprint. The state carried from step to step, per sequence, is
``4 * (2*N*W + N*N + (R + 3)*N + R*W) + 8*hidden_size*num_layers`` bytes in float32 (memory
and its unit-norm slots, link matrix, usage + precedence + write weighting + R read
weightings, read vectors, controller). The N x N link matrix dominates once N > W. Training keeps the activations of
every step for backpropagation, and there the link update saves about five N x N float32
tensors per step: about ``20 * N*N`` bytes per sequence and step, plus the N x W and
controller terms. Measured peak (hidden 64, W=16, R=1; ``docs/benchmarks.md``): 20 KB per
sequence and step at N=16, 81 KB at N=64, 317 KB at N=128; so one sequence of T=1000 steps
needs about 80 MB at N=64 and 320 MB at N=128, which is why N is capped at 128 in the space.
"""

from __future__ import annotations

from optuna.distributions import IntDistribution

from automl_rnn import hookimpl
from automl_rnn.types import Architecture, Params, SearchSpace


def dnc_space() -> SearchSpace:
    """The family's own parameters: memory slots N, word size W, read heads R."""
    return {
        "memory_slots": IntDistribution(8, 128, log=True),
        "word_size": IntDistribution(8, 64, log=True),
        "read_heads": IntDistribution(1, 4),
    }


def state_bytes(memory_slots: int, word_size: int, read_heads: int, hidden_size: int = 0,
                num_layers: int = 1) -> int:
    """Bytes of recurrent state carried per sequence (float32), as stated in the docstring."""
    n, w, r = memory_slots, word_size, read_heads
    return 4 * (2 * n * w + n * n + (r + 3) * n + r * w) + 8 * hidden_size * num_layers


def build_dnc(input_size: int, params: Params):
    """A ``DNC`` backbone (B, T, D) -> (B, T, hidden_size + R * W)."""
    from automl_rnn_plugins.archs._dnc import DNC

    return DNC(
        input_size,
        hidden_size=int(params["hidden_size"]),
        num_layers=int(params["num_layers"]),
        memory_slots=int(params.get("memory_slots", 16)),
        word_size=int(params.get("word_size", 16)),
        read_heads=int(params.get("read_heads", 1)),
        dropout=float(params.get("dropout", 0.0)),
    )


@hookimpl
def automl_rnn_register_architectures(register) -> None:
    """Register ``dnc`` (causal)."""
    register(Architecture("dnc", "Differentiable Neural Computer: LSTM controller + N x W memory, R read heads",
                          causal=True, build=build_dnc, space=dnc_space))
