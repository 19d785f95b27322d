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


class RankProcessError(RuntimeError):
    """A rank of the study's rank pool (``trainer.strategy=ddp``) failed; ``inner`` is its
    ``"Type: message"``, ``error_index`` its rank."""

    def __init__(self, rank: int, inner: str) -> None:
        super().__init__(f"{inner} (in training process {rank})")
        self.inner, self.error_index = inner, rank


def training_process_error(error: BaseException) -> str | None:
    """``"Type: message"`` of the exception that ended a training process (``ddp_spawn``, or a
    rank of the ``ddp`` rank pool), else None.

    torch reports such an exception in the main process as ``ProcessRaisedException``, whose
    message is the process's traceback; its last line names the original exception.
    """
    if isinstance(error, RankProcessError):
        return error.inner
    if type(error).__name__ != "ProcessRaisedException":
        return None
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else None


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's out-of-memory errors on any device, also when a training process raised them."""
    text = training_process_error(error) or f"{type(error).__name__}: {error}"
    return "out of memory" in text.lower() or "OutOfMemoryError" in text.split(":")[0]


def is_non_finite_loss(error: BaseException) -> bool:
    """True for ``NonFiniteLossError``, also when a training process raised it."""
    return isinstance(error, NonFiniteLossError) or (
        NonFiniteLossError.__name__ in (training_process_error(error) or "").split(":")[0])


def describe(error: BaseException) -> str:
    """One line naming the error type and message (the training process's own error under ``ddp_spawn``)."""
    inner = training_process_error(error)
    if inner is not None:
        return f"{inner} (in training process {getattr(error, 'error_index', '?')})"
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
    if is_non_finite_loss(error) or is_out_of_memory(error):
        return optuna.TrialPruned(reason)
    return error
