"""A study: storage, sampler and pruner from config; run until the trial budget is reached.

A trial whose process died (killed, out of memory, machine lost) stops sending heartbeats;
once its last heartbeat is older than ``2 * search.heartbeat_interval`` seconds, the next
process that looks at the study marks it FAIL and queues its parameters again
(``RetryHeartbeatStaleTrialCallback``, at most ``HEARTBEAT_RETRIES`` times). Such a retried
failure does not count towards ``search.n_trials``: its retry takes its place.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from automl_rnn.config import RunConfig
from automl_rnn.engine.claim import ClaimLock
from automl_rnn.storage_url import is_in_memory, sqlite_path

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
EPOCHS_ATTR = "epochs"
"""Trial user attribute: epochs the trial trained (set by the objective)."""
RETRY_HISTORY_ATTR = "retry_history"
"""Trial system attribute set by Optuna's retry callback: numbers of the stale trials it replaces."""
HEARTBEAT_RETRIES = 1
"""How often a trial whose process died is retried; a trial that kills its worker twice stays FAIL."""
SQLITE_TIMEOUT = 60
"""Seconds an SQLite connection waits for a lock held by another worker before giving up."""
SCHEMA_LOCK = "<schema>"
"""The ``ClaimLock`` name under which a process creates or upgrades the storage's tables."""
WORKER_ATTR = "worker"
"""Trial user attribute: ``host:pid`` of the process that ran the trial."""
WAIT_POLL = 0.5
"""Seconds between looks at the study while the rest of the budget is running elsewhere."""


SAMPLER_CLASSES: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    # CMA-ES and the Gaussian process model continuous and integer parameters jointly; the
    # categorical ones (family, optimizer, schedule) are drawn by their independent sampler.
    "cmaes": lambda **options: optuna.samplers.CmaEsSampler(warn_independent_sampling=False, **options),
    "gp": lambda **options: optuna.samplers.GPSampler(warn_independent_sampling=False, **options),
    "nsga2": optuna.samplers.NSGAIISampler,
}


def sampler_from(name: str, options: Mapping[str, Any], seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` (tpe, random, cmaes, gp, nsga2) with its ``options``, seeded by ``seed``."""
    return SAMPLER_CLASSES[name](seed=seed, **options)


def make_sampler(run: RunConfig, offset: int = 0) -> optuna.samplers.BaseSampler:
    """The ``sampler`` config group's sampler, seeded by ``seed + offset``."""
    return sampler_from(run.sampler["name"], {k: v for k, v in run.sampler.items() if k != "name"},
                        run.seed + offset)


def pruner_from(name: str, options: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The pruner ``name`` (none, median, percentile, successive_halving, hyperband) with its ``options``."""
    if name == "median":
        return optuna.pruners.MedianPruner(**options)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(**options)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**options)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(**options)
    return optuna.pruners.NopPruner()


def make_pruner(run: RunConfig) -> optuna.pruners.BasePruner:
    """The ``pruner`` config group's pruner; epochs are its steps (resources). None for a
    multi-objective study (``RunConfig.pruner_name``)."""
    options = {k: v for k, v in run.pruner.items() if k != "name"}
    if run.pruner_name == "hyperband":
        options["max_resource"] = run.search.max_epochs
    return pruner_from(run.pruner_name, options)


class RetryStaleTrial(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Queue a dead worker's trial again, and close its MLflow run as FAILED with the reason."""

    def __init__(self, tracking_uri: str, max_retry: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(max_retry=max_retry)
        self.tracking_uri = tracking_uri

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__call__(study, trial)
        from automl_rnn.engine.objective import RUN_ID_ATTR

        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if not run_id:
            return
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=self.tracking_uri)
        try:
            client.set_tag(run_id, "state", "FAIL")
            client.set_tag(run_id, "reason", "its worker process stopped sending heartbeats (killed or "
                                             "crashed); the trial was queued again")
            client.set_terminated(run_id, status="FAILED")
        except MlflowException:  # the run was deleted: nothing to close
            pass


def make_storage(run: RunConfig) -> optuna.storages.RDBStorage:
    """The storage of ``run.storage`` (a database URL), with heartbeats unless it is in memory.

    A running trial records a heartbeat every ``search.heartbeat_interval`` seconds; see the
    module docstring for what happens when they stop. An in-memory SQLite study has no
    heartbeat: it cannot outlive its process anyway. SQLite connections wait up to
    ``SQLITE_TIMEOUT`` seconds for each other, so several workers can share one file.
    """
    if is_in_memory(run.storage):
        return optuna.storages.RDBStorage(run.storage)
    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if sqlite_path(run.storage) else None
    schema = ClaimLock(run.storage, SCHEMA_LOCK)  # processes starting together create the tables once
    schema.acquire()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return optuna.storages.RDBStorage(
                run.storage, engine_kwargs=engine_kwargs, heartbeat_interval=run.search.heartbeat_interval,
                heartbeat_stale_trial_callback=RetryStaleTrial(run.tracking.uri, HEARTBEAT_RETRIES),
            )
    finally:
        schema.close()


def open_study(run: RunConfig) -> optuna.Study:
    """Create the study, or load it when the same name already exists in the storage (resume)."""
    return optuna.create_study(
        study_name=run.study_name,
        storage=make_storage(run),
        sampler=make_sampler(run),
        pruner=make_pruner(run),
        directions=run.directions,
        load_if_exists=True,
    )


def counted(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials of ``trials`` that count towards ``n_trials``: complete, pruned or failed,
    except a dead worker's trial that was queued again (its retry counts instead)."""
    retried = {n for t in trials for n in t.system_attrs.get(RETRY_HISTORY_ATTR, ())}
    return [t for t in trials if t.state in FINISHED_STATES and t.number not in retried]


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials that count towards ``n_trials`` (see ``counted``)."""
    return counted(study.get_trials(deepcopy=False))


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark the trials of dead workers FAIL and queue them again (``optuna.storages.fail_stale_trials``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


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
    note: Callable[[str], None] | None = None,
) -> None:
    """Run trials until the study holds ``search.n_trials`` counted ones (or the timeout).

    Any number of processes may run this on one study at once: each claims its next trial
    under the study's ``ClaimLock`` only while finished plus running trials leave room, so
    the budget is met exactly. When the rest of the budget is running in other processes
    this one waits for it, and retries any of those trials whose process dies.
    Known-good configurations in ``search.enqueue`` are queued first, once per study.
    Exceptions inside a trial fail that trial only. ``note`` receives a line to show the user.
    """
    lock = ClaimLock(run.storage, run.study_name)
    deadline = None if run.search.timeout is None else time.monotonic() + run.search.timeout
    callbacks = [on_trial_end] if on_trial_end is not None else []
    seeded = waiting_noted = False

    def claimed(trial: optuna.Trial) -> float:
        lock.release()  # the trial exists and is RUNNING: the next claim may count it
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        return objective(trial)

    try:
        while deadline is None or time.monotonic() < deadline:
            lock.acquire()
            fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            if not trials:
                for params in run.search.enqueue:
                    study.enqueue_trial(dict(params), skip_if_exists=True)
            done = len(counted(trials))
            running = [t.number for t in trials if t.state == TrialState.RUNNING]
            if done >= run.search.n_trials:
                return
            if done + len(running) >= run.search.n_trials:
                lock.release()
                if note is not None and not waiting_noted:
                    note(f"waiting for running trial(s) {', '.join(map(str, running))}; a trial whose process "
                         f"died is retried about {2 * run.search.heartbeat_interval} s after its last heartbeat")
                    waiting_noted = True
                time.sleep(WAIT_POLL)
                continue
            if not seeded:
                # Processes sharing a study must not draw the same parameters: each seeds its sampler
                # with the number of trials it found at its first claim, unique under the lock (and
                # just ``seed`` for a fresh study run by one process, which stays reproducible).
                study.sampler = make_sampler(run, offset=len(trials))
                seeded = True
            study.optimize(claimed, n_trials=1, catch=(Exception,), callbacks=callbacks)
            lock.release()
    finally:
        lock.close()
