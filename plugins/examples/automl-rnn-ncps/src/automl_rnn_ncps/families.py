"""The ``cfc`` and ``ltc`` families: continuous-time recurrent networks from ``ncps``.

Both are causal (they read the sequence step by step), so forecasting tasks can use them.
"""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution, IntDistribution

from automl_rnn import hookimpl
from automl_rnn.types import Architecture, Backbone, Params, SearchSpace


def cfc_space() -> SearchSpace:
    """CfC's own parameters: the solution's form and the size of its gating backbone MLP."""
    return {
        "mode": CategoricalDistribution(["default", "pure", "no_gate"]),
        "backbone_units": IntDistribution(16, 128, log=True),
        "backbone_layers": IntDistribution(1, 2),
    }


def ltc_space() -> SearchSpace:
    """LTC's own parameter: ODE solver steps per input step (more: finer and slower)."""
    return {"ode_unfolds": IntDistribution(2, 6)}


def build_cfc(input_size: int, params: Params) -> Backbone:
    """A stack of ``num_layers`` CfC layers of ``hidden_size`` units."""
    from automl_rnn_ncps._backbones import cfc_stack

    return cfc_stack(input_size, params)


def build_ltc(input_size: int, params: Params) -> Backbone:
    """A stack of ``num_layers`` LTC layers of ``hidden_size`` units."""
    from automl_rnn_ncps._backbones import ltc_stack

    return ltc_stack(input_size, params)


@hookimpl
def automl_rnn_register_architectures(register) -> None:
    """Register ``cfc`` and ``ltc``."""
    register(Architecture("cfc", "closed-form continuous-time network (ncps CfC)", causal=True,
                          build=build_cfc, space=cfc_space))
    register(Architecture("ltc", "liquid time-constant network (ncps LTC), ODE-unrolled",
                          causal=True, build=build_ltc, space=ltc_space))
