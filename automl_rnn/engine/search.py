"""The whole search of one validated run: study + trials + final evaluation + records."""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import optuna

from automl_rnn import __version__
from automl_rnn.config import RunConfig, flat_fixed
from automl_rnn.display import StudyProgress, console, key_value_table, pareto_table, state_counts, trials_table
from automl_rnn.engine import rank_pool
from automl_rnn.engine.choice import check_objectives, choose_best
from automl_rnn.engine.finalize import Published, publish_best
from automl_rnn.engine.objective import Objective
from automl_rnn.engine.study import EpochAccount, epoch_account, finished_trials, open_study, run_trials
from automl_rnn.engine.workers import run_workers
from automl_rnn.plugins import Registry
from automl_rnn.space import COMMON_PARAMS, SearchSpace, distribution_from_spec
from automl_rnn.tracking.mlflow import StudyTracker


@dataclass(frozen=True)
class SearchResult:
    """What a finished search produced."""

    study_name: str
    n_finished: int
    states: dict[str, int]
    best_value: float | None
    published: Published | None
    seconds: float
    epochs: EpochAccount
    interrupted: bool = False
    pareto_front: tuple[int, ...] = ()
    """Trial numbers of the Pareto front of a multi-objective study (empty for one objective)."""


def build_space(run: RunConfig, registry: Registry) -> SearchSpace:
    """The study's search space from the validated config."""
    common = {k: distribution_from_spec(k, v) for k, v in run.search.space.items() if k in COMMON_PARAMS}
    family_overrides = {k: v for k, v in run.search.space.items() if k not in COMMON_PARAMS}
    archs = {name: registry.architectures[name] for name in run.search.archs}
    return SearchSpace(common, archs, run.task, family_overrides, flat_fixed(run.search))


def quiet_libraries() -> None:
    """Keep the terminal for the progress view: Lightning's and Optuna's per-trial chatter off."""
    # Failed and pruned trials are reported by the progress view, with their stored reason.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning", "mlflow.pyfunc",
                 "mlflow.models.model"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    # Lightning 2.6 on torch 2.13 warns of its own use of a deprecated torch API at every fit
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


def run_search(run: RunConfig, registry: Registry, config: Mapping[str, Any]) -> SearchResult:
    """Run (or resume) the study, then evaluate, log and register the best model.

    Args:
        run: the validated run.
        registry: the plugins.
        config: the composed config as a plain dict, logged with the study's parent run.
    """
    quiet_libraries()
    started = time.perf_counter()
    study = open_study(run)
    check_objectives(study, run.objectives, run.directions)
    resumed = len(study.trials) > 0
    tracker = StudyTracker(run.tracking.uri, run.experiment_name, run.study_name)
    tracker.start_study(config, {"task": run.task.name, "storage": run.storage,
                                 "sampler": run.sampler["name"], "pruner": run.pruner_name,
                                 "objectives": ",".join(run.objectives),
                                 "automl_rnn.version": __version__})
    if run.pruner_name != run.pruner["name"]:
        console.print(f"[dim]pruner={run.pruner['name']} is not used: Optuna cannot prune a multi-objective "
                      f"study, so every trial trains until early stopping or search.max_epochs.[/]",
                      highlight=False)
    if resumed:
        console.print(f"Resuming study [bold]{run.study_name}[/]: {len(finished_trials(study))} "
                      f"of {run.search.n_trials} trials already finished.")
    objective = Objective(run, registry, build_space(run, registry), tracker)
    interrupted = False
    try:
        with StudyProgress(study, run.search.n_trials, run.task.metric) as progress:
            if run.search.n_workers > 1:
                run_workers(run, config, study, tracker.parent_run_id, progress)
            else:
                run_trials(study, objective, run, on_trial_end=progress, note=progress.note)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]Interrupted.[/] Finished trials are kept; re-run the same command to resume.")
    trials = study.get_trials(deepcopy=False)
    states = state_counts(trials)
    published = None
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if completed:
        console.print(trials_table(trials, run.task.metric, run.task.direction))
    try:
        if completed and not interrupted:
            published = publish_best(run, registry, study, tracker)
    finally:
        rank_pool.shutdown()  # the ddp ranks, if this run started them
    front: tuple[int, ...] = ()
    if completed and run.multi_objective:
        front = log_pareto_front(run, study, tracker, published.trial_number if published else None)
    seconds = time.perf_counter() - started
    epochs = epoch_account(trials)
    tracker.log_study_metrics({"n_" + k.lower(): v for k, v in states.items()}
                              | {"wall_seconds": seconds, "epochs_trained": epochs.trained,
                                 "epochs_saved_by_pruning": epochs.saved})
    tracker.end_study("KILLED" if interrupted else "FINISHED")
    result = SearchResult(run.study_name, len(finished_trials(study)), states,
                          choose_best(study).values[0] if completed else None, published, seconds, epochs,
                          interrupted, front)
    show_result(run, result)
    return result


def log_pareto_front(run: RunConfig, study: optuna.Study, tracker: StudyTracker,
                     published: int | None) -> tuple[int, ...]:
    """Print the Pareto front (``study.best_trials``) and log it on the study's parent run;
    return its trial numbers."""
    front = sorted(study.best_trials, key=lambda t: t.number)
    table = pareto_table(front, run.objectives, run.task.direction, chosen=published)
    console.print(table)
    tracker.log_pareto_front([
        {"trial": t.number, "values": dict(zip(run.objectives, t.values)), "params": t.user_attrs.get("params", t.params),
         "mlflow_run_id": t.user_attrs.get("mlflow_run_id"), "published": t.number == published}
        for t in front
    ])
    return tuple(t.number for t in front)


def show_result(run: RunConfig, result: SearchResult) -> None:
    """The closing summary: counts, the chosen trial's test score and the model URI."""
    rows: dict[str, Any] = {
        "study": result.study_name,
        "trials": ", ".join(f"{n} {s.lower()}" for s, n in sorted(result.states.items())),
        "wall time": f"{result.seconds:.1f} s",
        "epochs": f"{result.epochs.trained} trained; pruning saved about {result.epochs.saved}",
    }
    if result.published is not None:
        p = result.published
        rows[f"best val {run.task.metric}"] = result.best_value
        if result.pareto_front:
            rows["Pareto front"] = (f"{len(result.pareto_front)} trials on {', '.join(run.objectives)}; "
                                    f"published: the best on {run.task.metric}")
        rows[f"test {run.task.metric} (trial {p.trial_number})"] = p.test_score
        for number, values in p.reevaluation.items():
            rows[f"trial {number} over {len(values)} seeds"] = (
                f"mean val {run.task.metric} {sum(values) / len(values):.4g} ("
                + ", ".join(f"{v:.4g}" for v in values) + ")" + (" chosen" if number == p.trial_number else ""))
        members = None
        if p.ensemble_trials and run.search.ensemble_members == "seeds":
            members = f"mean of {len(p.ensemble_trials)} models (seeds) of trial {p.trial_number}"
        elif p.ensemble_trials:
            members = f"mean of the models of trials {', '.join(map(str, p.ensemble_trials))}"
        if p.refit_epochs is not None:
            rows["final model"] = f"{members or f'trial {p.trial_number}'} retrained on train+val for {p.refit_epochs} epochs"
        elif members:
            rows["final model"] = members
        rows["model"] = p.model_uri
        if p.registered_version is not None:
            rows["registered"] = (
                f"{run.model_name} v{p.registered_version}"
                + (f", alias @{run.tracking.alias} moved" if p.champion_moved else
                   f", alias @{run.tracking.alias} kept (champion test {run.task.metric} {p.previous_champion_score:.4g})")
            )
    elif not result.interrupted:
        rows["result"] = "no trial completed: see the reasons with automl-rnn best"
    console.print(key_value_table("Search summary", rows))
