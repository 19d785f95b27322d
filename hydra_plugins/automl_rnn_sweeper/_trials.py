"""The trial of each running job, for ``report`` and ``current_trial``.

The sweeper registers each trial under its job's number before launching a batch, and the
task function finds it through ``HydraConfig`` (``hydra.job.num``). This works when the
launcher runs jobs in the sweeper's process, as Hydra's basic launcher does.
"""

from __future__ import annotations

import optuna

SWEEPER_TARGET = "hydra_plugins.automl_rnn_sweeper.sweeper.AutomlRnnSweeper"
ACTIVE: dict[int, optuna.Trial] = {}
"""Job number -> the trial it runs, for the batch being launched."""


def current_trial() -> optuna.Trial | None:
    """The running job's trial; None when the job is not part of an ``automl_rnn`` sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN or hydra.sweeper.get("_target_") != SWEEPER_TARGET:
        return None
    trial = ACTIVE.get(hydra.job.num)
    if trial is None:
        raise RuntimeError(
            f"job {hydra.job.num} of the automl_rnn sweep has no trial in this process: the launcher "
            f"runs jobs in other processes, where report() cannot reach the study. Use Hydra's basic "
            f"launcher (the default) for sweeps that prune, or do not call report()."
        )
    return trial


def report(value: float, step: int) -> None:
    """``trial.report`` then ``optuna.TrialPruned`` if the pruner stops the trial (see the package doc)."""
    trial = current_trial()
    if trial is None:
        return
    trial.report(float(value), step)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned at step {step}")
