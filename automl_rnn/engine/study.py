"""A study: storage, sampler and pruner from config; run until the trial budget is reached."""

from __future__ import annotations

from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from automl_rnn.config import RunConfig

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def make_sampler(run: RunConfig) -> optuna.samplers.BaseSampler:
    """TPE (multivariate, grouped) or random sampling, seeded by ``seed``."""
    options = {k: v for k, v in run.sampler.items() if k != "name"}
    if run.sampler["name"] == "tpe":
        return optuna.samplers.TPESampler(seed=run.seed, **options)
    return optuna.samplers.RandomSampler(seed=run.seed)


def make_pruner(run: RunConfig) -> optuna.pruners.BasePruner:
    """Median, Hyperband over epochs, or no pruning."""
    options = {k: v for k, v in run.pruner.items() if k != "name"}
    name = run.pruner["name"]
    if name == "median":
        return optuna.pruners.MedianPruner(**options)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(max_resource=run.search.max_epochs, **options)
    return optuna.pruners.NopPruner()


def open_study(run: RunConfig) -> optuna.Study:
    """Create the study, or load it when the same name already exists in the storage (resume)."""
    return optuna.create_study(
        study_name=run.study_name,
        storage=run.storage,
        sampler=make_sampler(run),
        pruner=make_pruner(run),
        direction=run.task.direction,
        load_if_exists=True,
    )


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that ended (complete, pruned or failed); they count towards ``n_trials``."""
    return study.get_trials(deepcopy=False, states=FINISHED_STATES)


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    run: RunConfig,
    on_trial_end: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> None:
    """Run trials until the study holds ``search.n_trials`` finished ones (or the timeout).

    Known-good configurations in ``search.enqueue`` are tried first, once per study.
    Exceptions inside a trial fail that trial only.
    """
    if not study.trials:
        for params in run.search.enqueue:
            study.enqueue_trial(dict(params), skip_if_exists=True)
    remaining = run.search.n_trials - len(finished_trials(study))
    if remaining <= 0:
        return
    callbacks = [optuna.study.MaxTrialsCallback(run.search.n_trials, states=FINISHED_STATES)]
    if on_trial_end is not None:
        callbacks.append(on_trial_end)
    study.optimize(objective, n_trials=remaining, timeout=run.search.timeout,
                   catch=(Exception,), callbacks=callbacks)
