"""``ssm``: a stack of diagonal state-space layers (S4D, Gu et al., 2022), trained as convolutions.

Each of the ``num_layers`` blocks is post-norm and residual (the S4 default):
``x <- LayerNorm(x + Dropout(GLU(W GELU(SSM(x)))))``, after an input projection D -> H
(``hidden_size``); the last block's LayerNorm is the output norm. The SSM runs H independent
channels; each channel has ``state_size`` complex modes with the diagonal recurrence

    s_t = exp(dt * A) s_{t-1} + (exp(dt * A) - 1) / A * u_t,    y_t = 2 Re(C . s_t) + D u_t,

(zero-order-hold discretisation). Stability is built into the parameterisation:
``Re(A) = -exp(a) < 0`` so ``|exp(dt A)| < 1`` whatever the weights, and the step size
``dt = exp(log_dt)`` is initialised log-uniformly in ``[dt_min, dt_max]``, the searched
timescale range: a mode forgets over about ``1 / (dt * |Re A|)`` steps, so small ``dt_min``
gives long memory (S4D-Lin initialisation, ``A_n = -1/2 + i pi n``).

Training never loops over time. The sequence is cut into chunks of L = 64 steps (L = sqrt(T)
beyond T = 4096): inside a chunk the layer's impulse response ``K_l = 2 Re(sum_n C_n B_n
lambda_n^l)`` is applied as one L x L causal Toeplitz matmul per channel; each chunk's inputs are
summed into its end state (N complex values per channel, one matmul), the states are carried to
the later chunks by a short FFT convolution over the chunk index (length 2T/L), and each chunk
reads the state before it (one matmul). The cost is linear in T for T <= 4096; the kernel and
the small operators are built in real arithmetic (cos/sin of the mode angles; complex numbers
only in the short chunk-level FFT) and there are no (H, N, T) intermediates. ``step`` runs the
same recurrence one step at a time for inference and gives the same outputs (tests check it).
The computation is causal, and padded steps are zeroed at the input, so padding at the end never
changes a valid step.
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
        state_size=int(params.get("state_size", 16)),
        dt_min=float(params.get("dt_min", 1e-3)),
        dt_max=float(params.get("dt_max", 1e-1)),
        dropout=float(params.get("dropout", 0.0)),
    )


@hookimpl
def automl_rnn_register_architectures(register) -> None:
    """Register ``ssm`` (causal)."""
    register(Architecture("ssm", "stack of diagonal state-space layers (S4D), chunked convolution in training",
                          causal=True, build=build_ssm, space=ssm_space))
