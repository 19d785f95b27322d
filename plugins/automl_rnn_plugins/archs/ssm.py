"""``ssm``: a stack of diagonal state-space layers (S4D, Gu et al., 2022), trained as convolutions.

Each of the ``num_layers`` blocks is pre-norm and residual:
``x <- x + Dropout(GLU(W GELU(SSM(LayerNorm(x)))))``, after an input projection D -> H
(``hidden_size``) and before a final LayerNorm. The SSM runs H independent channels; each
channel has ``state_size`` complex modes with the diagonal recurrence

    s_t = exp(dt * A) s_{t-1} + (exp(dt * A) - 1) / A * u_t,    y_t = 2 Re(C . s_t) + D u_t,

(zero-order-hold discretisation). Stability is built into the parameterisation:
``Re(A) = -exp(a) < 0`` so ``|exp(dt A)| < 1`` whatever the weights, and the step size
``dt = exp(log_dt)`` is initialised log-uniformly in ``[dt_min, dt_max]``, the searched
timescale range: a mode forgets over about ``1 / (dt * |Re A|)`` steps, so small ``dt_min``
gives long memory (S4D-Lin initialisation, ``A_n = -1/2 + i pi n``).

Training never loops over time: the layer's impulse response ``K_l = 2 Re(sum_n C_n B_n
lambda_n^l)`` is computed for the whole length at once and applied as a causal convolution
through the FFT (O(T log T)). ``step`` runs the same recurrence one step at a time for
inference and gives the same outputs (tests check it). The convolution is causal, and padded
steps are zeroed at the input, so padding at the end never changes a valid step.
"""

from __future__ import annotations

from optuna.distributions import FloatDistribution, IntDistribution

from automl_rnn import hookimpl
from automl_rnn.types import Architecture, Params, SearchSpace


def ssm_space() -> SearchSpace:
    """The family's own parameters: modes per channel and the timescale range (dt_min, dt_max)."""
    return {
        "state_size": IntDistribution(4, 64, log=True),
        "dt_min": FloatDistribution(1e-4, 1e-2, log=True),
        "dt_max": FloatDistribution(1e-2, 1.0, log=True),
    }


def build_ssm(input_size: int, params: Params):
    """An ``SSMBackbone`` (B, T, D) -> (B, T, hidden_size); depth is ``num_layers``."""
    from automl_rnn_plugins.archs._ssm import SSMBackbone

    return SSMBackbone(
        input_size,
        hidden_size=int(params["hidden_size"]),
        num_layers=int(params["num_layers"]),
        state_size=int(params.get("state_size", 32)),
        dt_min=float(params.get("dt_min", 1e-3)),
        dt_max=float(params.get("dt_max", 1e-1)),
        dropout=float(params.get("dropout", 0.0)),
    )


@hookimpl
def automl_rnn_register_architectures(register) -> None:
    """Register ``ssm`` (causal)."""
    register(Architecture("ssm", "stack of diagonal state-space layers (S4D), FFT convolution in training",
                          causal=True, build=build_ssm, space=ssm_space))
