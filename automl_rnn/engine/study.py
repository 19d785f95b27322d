"""A study: storage, sampler and pruner from config; run until the trial budget is reached."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from automl_rnn.config import RunConfig

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
EPOCHS_ATTR = "epochs"
"""Trial user attribute: epochs the trial trained (set by the objective)."""


SAMPLER_CLASSES: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    # CMA-ES and the Gaussian process model continuous and integer parameters jointly; the
    # categorical ones (family, optimizer, schedule) are drawn by their independent sampler.
    "cmaes": lambda **options: optuna.samplers.CmaEsSampler(warn_independent_sampling=False, **options),
    "gp": lambda **options: optuna.samplers.GPSampler(warn_independent_sampling=False, **options),
}


def make_sampler(run: RunConfig) -> optuna.samplers.BaseSampler:
    """The ``sampler`` config group's sampler (tpe, random, cmaes, gp), seeded by ``seed``."""
    options = {k: v for k, v in run.sampler.items() if k != "name"}
    return SAMPLER_CLASSES[run.sampler["name"]](seed=run.seed, **options)


def make_pruner(run: RunConfig) -> optuna.pruners.BasePruner:
    """The ``pruner`` config group's pruner; epochs are its steps (resources)."""
    options = {k: v for k, v in run.pruner.items() if k != "name"}
    name = run.pruner["name"]
    if name == "median":
        return optuna.pruners.MedianPruner(**options)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(**options)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**options)
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


@dataclass(frozen=True)
class EpochAccount:
    """Epochs a study trained, and about how many pruning saved.

    Attributes:
        trained: epochs trained by all finished trials.
        saved: estimated epochs saved by pruning: for each pruned trial, the mean length of
            the complete trials minus the epochs it ran (0 when no trial completed).
    """

    trained: int
    saved: int


def epoch_account(trials: list[FrozenTrial]) -> EpochAccount:
    """Count the epochs of ``trials`` (from their ``epochs`` attribute) and estimate what pruning saved."""
    def epochs(trial: FrozenTrial) -> int:
        return int(trial.user_attrs.get(EPOCHS_ATTR, 0))

    complete = [epochs(t) for t in trials if t.state == TrialState.COMPLETE]
    pruned = [epochs(t) for t in trials if t.state == TrialState.PRUNED]
    typical = sum(complete) / len(complete) if complete else 0.0
    saved = sum(max(0.0, typical - n) for n in pruned)
    return EpochAccount(trained=sum(epochs(t) for t in trials), saved=round(saved))


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
