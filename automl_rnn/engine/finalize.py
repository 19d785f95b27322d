"""After the search: evaluate the chosen model once on the test split, log and register it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import lightning.pytorch as L
import mlflow
import numpy as np
import optuna
import torch
from torch.utils.data import DataLoader

from automl_rnn.config import RunConfig
from automl_rnn.data import collate, concatenate
from automl_rnn.engine.choice import choose_best, ranked_by_validation
from automl_rnn.engine.ensemble import EnsembleModel
from automl_rnn.engine.module import SequenceModule
from automl_rnn.engine.objective import (
    BEST_EPOCH_ATTR, EVAL_BATCH, PARAMS_ATTR, RUN_ID_ATTR, Candidate, build_candidate, loaders,
    seeded_candidate, train_candidate,
)
from automl_rnn.engine.study import EPOCHS_ATTR
from automl_rnn.engine.trainer import StopAfterEpochs, TrainerRecipe, fit
from automl_rnn.plugins import Registry
from automl_rnn.tracking.mlflow import StudyTracker, beats, champion_score
from automl_rnn.tracking.pyfunc import SequencePredictor, runtime_requirements, signature_for
from automl_rnn.types import TaskData


@dataclass(frozen=True)
class Published:
    """The outcome of the final step: the test score and where the model went."""

    trial_number: int
    test_metrics: dict[str, float]
    test_score: float
    refit_epochs: int | None
    reevaluation: dict[int, list[float]]
    model_uri: str
    registered_version: str | None
    champion_moved: bool
    previous_champion_score: float | None
    ensemble_trials: tuple[int, ...] = ()
    """The trial of each model the published ensemble averages (empty: one model)."""


def evaluate_on_test(module, data, run: RunConfig) -> dict[str, float]:
    """The task's metrics and loss on the test split (the only place the test split is read)."""
    trainer = L.Trainer(accelerator=run.trainer.accelerator, devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    loader = DataLoader(data.test, batch_size=EVAL_BATCH, collate_fn=collate)
    (results,) = trainer.test(module, loader, verbose=False)
    return {k: float(v) for k, v in results.items()}


def member_seed(run: RunConfig, trial: optuna.trial.FrozenTrial, k: int) -> int:
    """The seed of the ``k``-th training of ``trial``'s configuration (``k=0``: the trial's own)."""
    return run.seed + trial.number + 10_000 * k


def refit_on_train_and_val(run: RunConfig, registry: Registry, trial: optuna.trial.FrozenTrial, k: int = 0):
    """Retrain ``trial``'s configuration on train + val with its ``k``-th seed, for as many
    epochs as early stopping chose in the search (up to its best epoch); return (module,
    data, epochs).

    The preprocessing stays fitted on train (``TaskData`` is prepared as in the search) and
    the test split plays no part. The validation loader still runs, only so that a
    reduce-on-plateau schedule has the metric it watches, as it had in the search.
    """
    params = trial.user_attrs[PARAMS_ATTR]
    epochs = int(trial.user_attrs.get(BEST_EPOCH_ATTR, trial.user_attrs.get(EPOCHS_ATTR, 1) - 1)) + 1
    seed = member_seed(run, trial, k)
    module, data = seeded_candidate(run, registry, params, seed)
    recipe = TrainerRecipe(run.trainer, max_epochs=run.search.max_epochs, gradient_clip_val=params.get("grad_clip"),
                           monitor=module.monitor, mode=module.monitor_mode, patience=0,
                           callbacks=[StopAfterEpochs(epochs)])
    merged = dataclasses.replace(data, train=concatenate(data.train, data.val))
    train_loader, val_loader = loaders(merged, int(params.get("batch_size", 32)), seed, run.trainer.num_workers,
                                       run.epoch_size)
    fit(recipe, module, train_loader, val_loader)
    return module, data, epochs


def reevaluate_top(run: RunConfig, registry: Registry, study: optuna.Study, tracker: StudyTracker):
    """Retrain the ``search.reevaluate_top_k`` best trials with more seeds; the best mean wins.

    Each trial's own run counts as its first seed (``k=0``); ``reevaluate_seeds - 1`` more
    runs train with the seeds ``k=1, 2, ...`` of ``member_seed``. Each trial's MLflow run gets
    the mean (``reevaluated_mean_<metric>``), and the winner is the trial with the best mean.
    Returns the winning trial, its retrained candidates by seed index ``k``, and the
    validation values per re-evaluated trial number.
    """
    maximize = run.task.direction == "maximize"
    outcomes, values_by_trial = [], {}
    for trial in ranked_by_validation(study)[:run.search.reevaluate_top_k]:
        params = trial.user_attrs[PARAMS_ATTR]
        reruns = {k: train_candidate(run, registry, params, member_seed(run, trial, k))
                  for k in range(1, run.search.reevaluate_seeds)}
        values = [trial.values[0]] + [c.best_value if c.best_value is not None else math.nan for c in reruns.values()]
        tracker.log_study_metrics({f"reevaluated_mean_{run.task.metric}": float(np.mean(values)),
                                   "reevaluated_seeds": len(values)}, trial.user_attrs[RUN_ID_ATTR])
        values_by_trial[trial.number] = values
        usable = {k: c for k, c in reruns.items() if c.best_value is not None and math.isfinite(c.best_value)}
        outcomes.append((float(np.mean(values)), trial, usable))
    usable_outcomes = [o for o in outcomes if math.isfinite(o[0]) and o[2]]
    if not usable_outcomes:
        return choose_best(study), {}, values_by_trial
    _, trial, reruns = (max if maximize else min)(usable_outcomes, key=lambda o: o[0])
    return trial, reruns, values_by_trial


def ensemble_members(run: RunConfig, study: optuna.Study,
                     best: optuna.trial.FrozenTrial) -> list[tuple[optuna.trial.FrozenTrial, int]]:
    """The (trial, seed index) of each model that ``search.ensemble=K`` averages, chosen first.

    ``ensemble_members=seeds``: the chosen trial with the seed indices 0..K-1.
    ``ensemble_members=trials``: the chosen trial and the next K-1 trials in validation
    order, each with its own seed (index 0), so members differ in their hyper-parameters.
    """
    size = run.search.ensemble
    if run.search.ensemble_members == "seeds":
        return [(best, k) for k in range(size)]
    others = [t for t in ranked_by_validation(study) if t.number != best.number]
    return [(best, 0)] + [(t, 0) for t in others[:size - 1]]


def final_model(run: RunConfig, registry: Registry, members: list[tuple[optuna.trial.FrozenTrial, int]],
                tracker: StudyTracker, reruns: dict[int, Candidate]) -> tuple[SequenceModule, TaskData, int | None]:
    """The model that is tested and published, its data and its refit epochs (None: no refit).

    One model, or the mean of the models of ``members`` (``ensemble_members``; the chosen
    trial first).
    Each model is, in this order of preference: refitted on train + val when ``run.refit``;
    a re-evaluation run of the chosen trial with that seed (``reruns``); the chosen trial's
    own stored weights (``k=0``); else trained now with its trial's seed of index ``k``.
    Without an ensemble, re-evaluation publishes its retrained run with the best validation
    value.
    """
    best = members[0][0]
    if run.refit:
        fitted = [refit_on_train_and_val(run, registry, trial, k) for trial, k in members]
        modules, (_, data, epochs) = [m for m, _, _ in fitted], fitted[0]
        return ensemble_of(modules, data), data, epochs
    if len(members) == 1 and reruns:
        maximize = run.task.direction == "maximize"
        chosen = (max if maximize else min)(reruns.values(), key=lambda c: c.best_value)
        return chosen.module, chosen.data, None
    modules, data = [], None
    for trial, k in members:
        if trial.number == best.number and k in reruns:
            module, data = reruns[k].module, reruns[k].data
        elif trial.number == best.number and k == 0:
            module, data = build_candidate(run, registry, trial.user_attrs[PARAMS_ATTR])
            module.load_state_dict(tracker.load_weights(trial.user_attrs[RUN_ID_ATTR]))
        else:
            candidate = train_candidate(run, registry, trial.user_attrs[PARAMS_ATTR], member_seed(run, trial, k))
            module, data = candidate.module, candidate.data
        modules.append(module)
    return ensemble_of(modules, data), data, None


def ensemble_of(modules: list[SequenceModule], data: TaskData) -> SequenceModule:
    """``modules[0]`` alone, or a module whose model is the ``EnsembleModel`` of all their models."""
    if len(modules) == 1:
        return modules[0]
    first = modules[0]
    return SequenceModule(EnsembleModel([m.model for m in modules]), data.loss, data.metrics, first.optim,
                          first.monitor, first.monitor_mode)


def publish_best(run: RunConfig, registry: Registry, study: optuna.Study, tracker: StudyTracker) -> Published:
    """Test the chosen model (see ``final_model``), log it as a pyfunc model, register it.

    The chosen trial is ``choice.choose_best``: the best on the task's metric, from the Pareto
    front when the study has several objectives (``search.reevaluate_top_k`` re-evaluates the
    best of the front).

    The alias (``tracking.alias``) moves to the new version only when its test score beats
    the current champion's.
    """
    reruns, reevaluation = {}, {}
    if run.search.reevaluate_top_k:
        best, reruns, reevaluation = reevaluate_top(run, registry, study, tracker)
    else:
        best = choose_best(study)
    params = best.user_attrs[PARAMS_ATTR]
    run_id = best.user_attrs[RUN_ID_ATTR]
    chosen = ensemble_members(run, study, best)
    members = [t.number for t, _ in chosen]
    module, data, refit_epochs = final_model(run, registry, chosen, tracker, reruns)
    module.eval()
    test_metrics = evaluate_on_test(module, data, run)
    score = test_metrics[f"test_{run.task.metric}"]
    tracker.log_study_metrics(test_metrics, run_id)
    tracker.log_study_metrics({**test_metrics, f"chosen_val_{run.task.metric}": best.values[0],
                               "best_trial": best.number, "refit_epochs": refit_epochs or 0,
                               "ensemble_size": len(members)})

    example = input_example(data)
    with torch.no_grad():
        output_shape = tuple(module.model(torch.as_tensor(example, dtype=torch.float32).reshape(
            len(example), example.shape[1], -1), None).shape[1:])
    with mlflow.start_run(run_id=tracker.parent_run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SequencePredictor(module.model, data.decode),
            signature=signature_for(data.input_size, output_shape, data.decode is not None),
            input_example=example,
            pip_requirements=runtime_requirements(),
            metadata={"task": run.task.name, "trial": best.number, "params": params,
                      "ensemble_size": len(members), "ensemble_trials": members},
        )
    version, moved, previous = None, False, None
    model_uri = info.model_uri
    if run.tracking.register:
        client = tracker.client
        registered = mlflow.register_model(info.model_uri, run.model_name)
        version = registered.version
        tags = {"test_score": repr(score), "direction": run.task.direction, "metric": run.task.metric,
                "study": run.study_name, "trial": str(best.number), "run_id": tracker.parent_run_id}
        for key, value in tags.items():
            client.set_model_version_tag(run.model_name, version, key, value)
        current = champion_score(client, run.model_name, run.tracking.alias)
        previous = current[0] if current else None
        if current is None or (math.isfinite(score) and beats(score, current[0], run.task.direction)):
            client.set_registered_model_alias(run.model_name, run.tracking.alias, version)
            moved = True
        model_uri = f"models:/{run.model_name}@{run.tracking.alias}" if moved else f"models:/{run.model_name}/{version}"
    return Published(best.number, test_metrics, score, refit_epochs, reevaluation, model_uri, version, moved, previous,
                     tuple(members) if len(members) > 1 else ())


def input_example(data) -> np.ndarray:
    """Two raw validation sequences as a user would pass them: (2, T) univariate, else (2, T, D)."""
    first, second = data.val[0][0], data.val[min(1, len(data.val) - 1)][0]
    steps = min(len(first), len(second))
    example = np.stack([first[-steps:], second[-steps:]]).astype(np.float64)
    return example[..., 0] if data.input_size == 1 else example
