"""How a trial can go wrong, and how each way ends the trial without ending the study.

A non-finite loss or running out of memory prunes the trial (the configuration is bad, not
the code); any other exception fails it. Either way the reason is stored on the trial as
the user attribute ``reason``, and the study goes on.
"""

from __future__ import annotations

import optuna

REASON_ATTR = "reason"


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class BackboneContractError(RuntimeError):
    """An architecture plugin built a backbone that breaks the (B, T, D) -> (B, T, H) contract."""


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's out-of-memory errors on any device."""
    return "out of memory" in str(error).lower() or type(error).__name__ == "OutOfMemoryError"


def describe(error: BaseException) -> str:
    """One line naming the error type and message."""
    return f"{type(error).__name__}: {error}".strip()


def end_trial(trial: optuna.Trial, error: BaseException) -> BaseException:
    """Record why ``trial`` stopped and return the exception that ends it in the study.

    Returns ``optuna.TrialPruned`` for a bad configuration (non-finite loss, out of memory)
    and the original error otherwise (the study is run with ``catch=(Exception,)``, so the
    trial is marked FAIL and the study continues).
    """
    if isinstance(error, optuna.TrialPruned):
        trial.set_user_attr(REASON_ATTR, str(error) or "pruned")
        return error
    reason = describe(error)
    trial.set_user_attr(REASON_ATTR, reason)
    if isinstance(error, NonFiniteLossError) or is_out_of_memory(error):
        return optuna.TrialPruned(reason)
    return error
