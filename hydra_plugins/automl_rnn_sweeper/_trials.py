"""The trial of each running job, for ``report`` and ``current_trial``.

The sweeper registers each trial under its job's number before launching a batch, and the
task function finds it through ``HydraConfig`` (``hydra.job.num``): that serves launchers that
run jobs in the sweeper's process, as Hydra's basic launcher does. Every job also gets its
trial's study name and id in ``TRIAL_ENV`` (through ``hydra.job.env_set``), so a job that a
parallel launcher (joblib, submitit, ...) runs in another process reconnects to the trial
through the sweeper's storage, which must then be one that other processes can reach.
"""

from __future__ import annotations

import os

import optuna

SWEEPER_TARGET = "hydra_plugins.automl_rnn_sweeper.sweeper.AutomlRnnSweeper"
TRIAL_ENV = "AUTOML_RNN_SWEEP_TRIAL"
"""``<study name>:<trial id>`` of the job's trial, in the job's environment."""
ACTIVE: dict[int, optuna.Trial] = {}
"""Job number -> the trial it runs, for the batch being launched in this process."""
_RECONNECTED: dict[str, optuna.Trial] = {}
"""``TRIAL_ENV`` value -> the trial, reconnected through the storage in a job's own process."""


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
    return trial if trial is not None else _reconnected(hydra.sweeper, hydra.job.num)


def _reconnected(sweeper, job: int) -> optuna.Trial:
    """The job's trial in a process other than the sweeper's, through the study's storage."""
    from automl_rnn.storage_url import is_in_memory

    reference, storage = os.environ.get(TRIAL_ENV), sweeper.get("storage")
    if reference is None or not storage or is_in_memory(storage):
        raise RuntimeError(
            f"job {job} of the automl_rnn sweep runs in another process than the sweeper (a parallel "
            f"launcher), and report() reaches the study there through hydra.sweeper.storage, which is "
            f"{storage!r}: set a storage that other processes can open, e.g. "
            f"hydra.sweeper.storage=sqlite:///sweep.db, or use Hydra's basic launcher."
        )
    if reference not in _RECONNECTED:
        from hydra_plugins.automl_rnn_sweeper._impl import SweepSettings
        from automl_rnn.engine.study import pruner_from

        settings = SweepSettings.from_config(**{key: sweeper.get(key) for key in (
            "direction", "n_trials", "n_jobs", "sampler", "pruner", "storage", "study_name", "params")})
        study_name, trial_id = reference.rsplit(":", 1)
        study = optuna.load_study(study_name=study_name, storage=storage,
                                  pruner=pruner_from(settings.pruner, settings.pruner_options))
        _RECONNECTED[reference] = optuna.Trial(study, int(trial_id))
    return _RECONNECTED[reference]


def report(value: float, step: int) -> None:
    """``trial.report`` then ``optuna.TrialPruned`` if the pruner stops the trial (see the package doc)."""
    trial = current_trial()
    if trial is None:
        return
    trial.report(float(value), step)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned at step {step}")
