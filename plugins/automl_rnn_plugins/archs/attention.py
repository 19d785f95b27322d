"""``attention``: a GRU whose every step also attends, causally, over its own past states.

A stacked GRU (``hidden_size``, ``num_layers``) produces states h_1..h_T. Step t then reads
a context c_t = sum_{s <= t} a_ts v_s with weights a_t = softmax over s <= t of either a
scaled dot product ``q_t . k_s / sqrt(A)`` (``score=dot``; Luong et al., 2015) or an additive
score ``w . tanh(W_q h_t + W_k h_s)`` (``score=additive``; Bahdanau et al., 2015), where q, k,
v are projections of size ``attention_size`` (A). The output is
``LayerNorm(h_t + W_o c_t)``, ``hidden_size`` wide.

Only past and present states are attended to, so the family is causal and usable by every
task (forecasting and language modelling included), and padding at the end never changes a
valid step. Cost: dot-product attention runs through ``scaled_dot_product_attention`` (no
T x T matrix stored on kernels that support it); additive attention materialises a
(B, T, T, A) tensor, so it is meant for sequences up to a few hundred steps.
"""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution, IntDistribution

from automl_rnn import hookimpl
from automl_rnn.types import Architecture, Params, SearchSpace

SCORES = ("dot", "additive")


def attention_space() -> SearchSpace:
    """The family's own parameters: the score function and the attention width."""
    return {
        "score": CategoricalDistribution(list(SCORES)),
        "attention_size": IntDistribution(8, 128, log=True),
    }


def build_attention(input_size: int, params: Params):
    """An ``AttentiveGRU`` backbone (B, T, D) -> (B, T, hidden_size)."""
    from automl_rnn_plugins.archs._attention import AttentiveGRU

    score = str(params.get("score", "dot"))
    if score not in SCORES:
        raise ValueError(f"attention: score must be one of {SCORES}, got {score!r}")
    return AttentiveGRU(
        input_size,
        hidden_size=int(params["hidden_size"]),
        attention_size=int(params.get("attention_size", 32)),
        score=score,
        num_layers=int(params["num_layers"]),
        dropout=float(params.get("dropout", 0.0)),
    )


@hookimpl
def automl_rnn_register_architectures(register) -> None:
    """Register ``attention`` (causal)."""
    register(Architecture("attention", "GRU with causal attention over its own past states (dot or additive)",
                          causal=True, build=build_attention, space=attention_space))
