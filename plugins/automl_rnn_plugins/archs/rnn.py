"""``rnn``: the Elman recurrent network (Elman, 1990), stacked; its nonlinearity is searched.

``tanh`` keeps torch's default initialisation. ``relu`` starts from the identity recurrent
matrix and zero biases (the IRNN of Le, Jaitly & Hinton, 2015), the initialisation under which
a ReLU RNN can carry information over long spans instead of exploding or vanishing at once.
Variable-length batches are packed, so padding never changes a valid step's output.
"""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution

from automl_rnn import hookimpl
from automl_rnn.types import Architecture, Params, SearchSpace

NONLINEARITIES = ("tanh", "relu")


def rnn_space() -> SearchSpace:
    """The family's own parameter: the nonlinearity of the recurrence."""
    return {"nonlinearity": CategoricalDistribution(list(NONLINEARITIES))}


def build_rnn(input_size: int, params: Params):
    """An ``nn.RNN`` backbone (B, T, D) -> (B, T, hidden_size); IRNN initialisation for relu."""
    import torch
    from torch import nn

    from automl_rnn_plugins.archs._packed import PackedRecurrent

    nonlinearity = str(params.get("nonlinearity", "tanh"))
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"rnn: nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    num_layers = int(params["num_layers"])
    rnn = nn.RNN(
        input_size=input_size,
        hidden_size=int(params["hidden_size"]),
        num_layers=num_layers,
        nonlinearity=nonlinearity,
        dropout=float(params.get("dropout", 0.0)) if num_layers > 1 else 0.0,
        batch_first=True,
    )
    if nonlinearity == "relu":
        with torch.no_grad():
            for name, weight in rnn.named_parameters():
                if name.startswith("weight_hh"):
                    weight.copy_(torch.eye(weight.shape[0]))
                elif name.startswith("bias"):
                    weight.zero_()
    return PackedRecurrent(rnn)


@hookimpl
def automl_rnn_register_architectures(register) -> None:
    """Register ``rnn`` (causal)."""
    register(Architecture("rnn", "Elman RNN (tanh, or relu with identity init), stacked",
                          causal=True, build=build_rnn, space=rnn_space))
