"""``ssm``: a stack of diagonal state-space layers (LRU-style, Orvieto et al., 2023, with the
S4D parameterisation of Gu et al., 2022), trained with a chunked parallel scan.

Each of the ``num_layers`` blocks is post-norm and residual (the S4 default), after an input
projection D -> H (``hidden_size``); the last block's LayerNorm is the output norm:

    u, z = W_in x + b                      N drives and N gate logits (N = ``state_size``)
    s_t = lambda * s_{t-1} + B * (sigmoid(z_t) * u_t)     N complex modes, diagonal
    x <- LayerNorm(x + W_out Dropout([Re s_t, Im s_t]))

The N modes are shared by the H channels (the input and output projections mix them), and
the input gate decides from the current input how much of it each mode takes in, so a mode
can sum products of inputs. Stability is built into the parameterisation: ``lambda_n =
exp(dt_n A_n)`` with ``Re(A_n) = -exp(a_n) < 0``, so ``|lambda| < 1`` whatever the weights; B
is the zero-order-hold ``(lambda - 1) / A``; the step sizes ``dt_n = exp(log_dt_n)`` start
log-uniform in ``[dt_min, dt_max]``, the searched timescale range (a mode forgets over about
``1 / (dt |Re A|)`` steps, so a small ``dt_min`` gives long memory; S4D-Lin initialisation
``A_n = -1/2 + i pi n``).

Training never loops over time. The sequence is cut into chunks of L = 32 steps: inside a
chunk the states are one (L x 2L) Toeplitz matmul per mode (real drive in, real and imaginary
part out); the chunk end states are carried to the later chunks by Toeplitz matmuls over the
chunk index (in groups of 32 chunks, the groups carried the same way one level up) and enter
each chunk's steps through ``lambda^(l+1)`` in the same matmul. Every part costs time linear
in T. The projections are
written channels first, in the GEMM orientations that are fast on CPU. ``step`` runs the same
recurrence one step at a time for inference and gives the same outputs (tests check it). The
computation is causal, and padded steps are zeroed at the input, so padding at the end never
changes a valid step.
"""

from __future__ import annotations

from optuna.distributions import FloatDistribution, IntDistribution

from automl_rnn import hookimpl
from automl_rnn.types import Architecture, Params, SearchSpace


def ssm_space() -> SearchSpace:
    """The family's own parameters: complex modes per layer and the timescale range (dt_min, dt_max)."""
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
    register(Architecture("ssm", "diagonal state-space layers (LRU-style, S4D parameters), chunked parallel scan",
                          causal=True, build=build_ssm, space=ssm_space))
