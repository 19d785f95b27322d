"""``mamba``: a stack of selective state-space blocks (Mamba; Gu & Dao, 2023) from ``mambapy``.

``mambapy`` (pure PyTorch, parallel scan in training) is an optional dependency, imported
only when a model is built; without it, building fails with an install hint
(``pip install "automl-rnn[mamba]"``) and every other family keeps working.

The backbone projects the input to ``hidden_size`` (d_model), runs ``num_layers`` of
mambapy's residual Mamba blocks with dropout between them, and ends with an RMSNorm. Its own
search space is the SSM state size per channel (``d_state``) and the inner expansion
factor. Mamba blocks are causal (causal depthwise convolution + selective scan), so padding
at the end never changes a valid step.
"""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution, IntDistribution

from automl_rnn import hookimpl
from automl_rnn.types import Architecture, Params, SearchSpace

INSTALL_HINT = (
    "The 'mamba' architecture family needs the optional package 'mambapy', which is not "
    "installed in this environment. Install it with: pip install \"automl-rnn[mamba]\" "
    "(or pip install mambapy), then run again; or leave 'mamba' out of search.archs to "
    "search the other families, which do not need it."
)


class MissingDependencyError(ImportError):
    """An optional dependency of a plugin is not installed; the message says how to install it."""


def mamba_space() -> SearchSpace:
    """The family's own parameters: state size per channel and expansion factor."""
    return {
        "d_state": IntDistribution(4, 32, log=True),
        "expand": CategoricalDistribution([1, 2]),
    }


def import_mambapy():
    """``mambapy.mamba`` or a ``MissingDependencyError`` carrying the install hint."""
    try:
        from mambapy import mamba as mamba_module
    except ImportError as error:
        raise MissingDependencyError(INSTALL_HINT) from error
    return mamba_module


def build_mamba(input_size: int, params: Params):
    """A ``MambaBackbone`` (B, T, D) -> (B, T, hidden_size); fails with an install hint without mambapy."""
    mamba_module = import_mambapy()
    from automl_rnn_plugins.archs._mamba import MambaBackbone

    return MambaBackbone(
        mamba_module,
        input_size,
        hidden_size=int(params["hidden_size"]),
        num_layers=int(params["num_layers"]),
        d_state=int(params.get("d_state", 16)),
        expand=int(params.get("expand", 2)),
        dropout=float(params.get("dropout", 0.0)),
    )


@hookimpl
def automl_rnn_register_architectures(register) -> None:
    """Register ``mamba`` (causal); mambapy is only needed when a model is built."""
    register(Architecture("mamba", "selective state-space blocks (Mamba) from mambapy [extra: mamba]",
                          causal=True, build=build_mamba, space=mamba_space))
