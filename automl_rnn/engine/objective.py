"""One trial: build the candidate from its parameters, train it, report, record.

``train_candidate`` is the whole training of one configuration; ``Objective`` adds Optuna
and MLflow around it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import lightning.pytorch as L
import optuna
import torch
from torch.utils.data import DataLoader, RandomSampler

from automl_rnn.config import RunConfig
from automl_rnn.data import collate
from automl_rnn.engine.choice import VAL_LOSS_ATTR, best_first_value
from automl_rnn.engine.failures import REASON_ATTR, BackboneContractError, end_trial
from automl_rnn.engine.module import SequenceModule
from automl_rnn.engine.objectives import OBJECTIVE_ATTRS, objective_values
from automl_rnn.nn import count_parameters
from automl_rnn.engine.study import EPOCHS_ATTR
from automl_rnn.engine.trainer import BestWeights, EpochHistory, OptunaPruning, TimeLimit, TrainerRecipe, fit
from automl_rnn.plugins import Registry
from automl_rnn.space import ARCH_PARAM, SearchSpace, family_params, task_params
from automl_rnn.tracking.mlflow import StudyTracker
from automl_rnn.types import Architecture, TaskData

EVAL_BATCH = 256
PARAMS_ATTR = "params"
RUN_ID_ATTR = "mlflow_run_id"
BEST_EPOCH_ATTR = "best_epoch"
N_PARAMS_ATTR = OBJECTIVE_ATTRS["params"]


def monitor_of(run: RunConfig) -> tuple[str, str]:
    """The logged validation metric that ranks trials, and its Lightning mode."""
    return f"val_{run.task.metric}", "max" if run.task.direction == "maximize" else "min"


def check_backbone(arch: Architecture, owner: str, backbone: Any, input_size: int) -> None:
    """Fail early, naming the plugin, when a backbone breaks the (B, T, D) -> (B, T, H) contract."""
    hidden = getattr(backbone, "output_size", None)
    if not isinstance(hidden, int) or hidden <= 0:
        raise BackboneContractError(
            f"architecture {arch.name!r} (plugin {owner!r}) built a backbone without a positive "
            f"integer output_size (got {hidden!r})"
        )
    probe = torch.zeros(2, 5, input_size)
    with torch.no_grad():
        out = backbone(probe, torch.tensor([5, 3]))
    if tuple(out.shape) != (2, 5, hidden):
        raise BackboneContractError(
            f"architecture {arch.name!r} (plugin {owner!r}) returned shape {tuple(out.shape)} for an "
            f"input of shape (2, 5, {input_size}); a backbone must return (B, T, output_size) = (2, 5, {hidden})"
        )


def loaders(data: TaskData, batch_size: int, seed: int, num_workers: int,
            epoch_size: int = 0) -> tuple[DataLoader, DataLoader]:
    """Train (shuffled, seeded) and validation loaders.

    A training epoch draws ``max(epoch_size, len(data.train))`` sequences: reshuffled passes
    over the training split, the last one partial (see ``Task.epoch_size``).
    """
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(data.train, num_samples=max(epoch_size, len(data.train)), generator=generator)
    train = DataLoader(data.train, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                       generator=generator, num_workers=num_workers)
    val = DataLoader(data.val, batch_size=EVAL_BATCH, collate_fn=collate, num_workers=num_workers)
    return train, val


@dataclass
class Candidate:
    """A trained configuration: its module (best weights restored), data and learning curve."""

    module: SequenceModule
    data: TaskData
    history: list[dict[str, float]] = field(default_factory=list)
    best_value: float | None = None
    best_val_loss: float | None = None
    best_epoch: int | None = None
    pruned_at: int | None = None
    time_limited: bool = False
    seconds: float = 0.0


def build_candidate(run: RunConfig, registry: Registry, params: Mapping[str, Any]) -> tuple[SequenceModule, TaskData]:
    """Prepare the task's data and build the untrained module that ``params`` describe."""
    arch = registry.architectures[params[ARCH_PARAM]]
    data = run.task.prepare(run.task_options, task_params(params))
    backbone = arch.build(data.backbone_input_size, family_params(params))
    check_backbone(arch, registry.architecture_owner.get(arch.name, "?"), backbone, data.backbone_input_size)
    monitor, mode = monitor_of(run)
    module = SequenceModule(data.build_model(backbone), data.loss, data.metrics, params, monitor, mode)
    return module, data


def seeded_candidate(run: RunConfig, registry: Registry, params: Mapping[str, Any],
                     seed: int) -> tuple[SequenceModule, TaskData]:
    """``build_candidate`` after setting the torch threads of ``trainer.num_threads`` and every seed."""
    if run.trainer.num_threads:
        torch.set_num_threads(run.trainer.num_threads)
    L.seed_everything(seed, workers=True, verbose=False)
    return build_candidate(run, registry, params)


def train_candidate(
    run: RunConfig,
    registry: Registry,
    params: Mapping[str, Any],
    seed: int,
    trial: optuna.Trial | None = None,
) -> Candidate:
    """Train one configuration with early stopping; report to ``trial`` for pruning if given."""
    started = time.perf_counter()
    module, data = seeded_candidate(run, registry, params, seed)
    n_params = count_parameters(module)
    if trial is not None:
        trial.set_user_attr(N_PARAMS_ATTR, n_params)
    if run.search.max_params is not None and n_params > run.search.max_params:
        raise optuna.TrialPruned(f"the model has {n_params:,} trainable parameters, over "
                                 f"search.max_params={run.search.max_params:,}; not trained")
    monitor, mode = monitor_of(run)
    history, best = EpochHistory(), BestWeights(monitor, mode)
    callbacks: list = [history, best]
    # Optuna cannot prune (or take reports from) multi-objective studies
    pruning = OptunaPruning(trial, monitor, run.storage) if trial is not None and not run.multi_objective else None
    if pruning is not None:
        callbacks.append(pruning)
    time_limit = TimeLimit(run.search.trial_timeout) if run.search.trial_timeout else None
    if time_limit is not None:
        callbacks.append(time_limit)
    recipe = TrainerRecipe(run.trainer, max_epochs=run.search.max_epochs, gradient_clip_val=params.get("grad_clip"),
                           monitor=monitor, mode=mode, patience=run.search.patience, callbacks=callbacks)
    train_loader, val_loader = loaders(data, int(params.get("batch_size", 32)), seed, run.trainer.num_workers,
                                       run.epoch_size)
    fit(recipe, module, train_loader, val_loader)
    best.restore(module)
    return Candidate(
        module=module, data=data, history=history.epochs, best_value=best.best,
        best_val_loss=best.best_tie_breaker, best_epoch=best.best_epoch, pruned_at=pruning.pruned_at if pruning else None,
        time_limited=bool(time_limit and time_limit.reached),
        seconds=time.perf_counter() - started,
    )


class Objective:
    """The Optuna objective: sample, train, report, record in MLflow.

    Returns the best validation value of the trial; with several ``search.objectives``, the
    tuple of their values (``objectives.objective_values``). The best weights are stored with the
    trial's MLflow run when the trial is at least as good as the study's best so far, so
    the final evaluation can reload them without retraining.
    """

    def __init__(self, run: RunConfig, registry: Registry, space: SearchSpace, tracker: StudyTracker) -> None:
        self.run, self.registry, self.space, self.tracker = run, registry, space, tracker

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        params = self.space.sample(trial)
        trial.set_user_attr(PARAMS_ATTR, params)
        run_id = self.tracker.start_trial(trial.number, params)
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        candidate: Candidate | None = None
        try:
            candidate = train_candidate(self.run, self.registry, params, self.run.seed + trial.number, trial)
            trial.set_user_attr(EPOCHS_ATTR, len(candidate.history))
            if candidate.pruned_at is not None:
                raise optuna.TrialPruned(f"pruned at epoch {candidate.pruned_at}")
            if candidate.time_limited:
                trial.set_user_attr(REASON_ATTR, f"search.trial_timeout={self.run.search.trial_timeout:g} s "
                                                 f"reached after {len(candidate.history)} epoch(s)")
                if candidate.best_value is None:
                    raise optuna.TrialPruned(trial.user_attrs[REASON_ATTR] + " before any validation")
            if candidate.best_value is None:
                raise RuntimeError("training produced no validation metric")
            values = objective_values(self.run, candidate.module, candidate.data, candidate.best_value, trial,
                                      EVAL_BATCH)
        except BaseException as error:
            ending = end_trial(trial, error)
            state = "PRUNED" if isinstance(ending, optuna.TrialPruned) else "FAIL"
            self.tracker.end_trial(run_id, state=state, history=candidate.history if candidate else [],
                                   reason=trial.user_attrs.get("reason"))
            if ending is error:
                raise
            raise ending from error
        trial.set_user_attr(VAL_LOSS_ATTR, candidate.best_val_loss)
        trial.set_user_attr(BEST_EPOCH_ATTR, candidate.best_epoch or 0)
        if self._may_be_chosen(trial.study, candidate.best_value):
            self.tracker.log_weights(run_id, candidate.module.state_dict())
        monitor, _ = monitor_of(self.run)
        self.tracker.end_trial(
            run_id, state="COMPLETE", history=candidate.history,
            summary={f"best_{monitor}": candidate.best_value, "best_epoch": candidate.best_epoch or 0,
                     "train_seconds": candidate.seconds,
                     **{OBJECTIVE_ATTRS[n]: v for n, v in zip(self.run.objectives[1:], values[1:])}},
        )
        return values if self.run.multi_objective else values[0]

    def _may_be_chosen(self, study: optuna.Study, value: float) -> bool:
        """True when the trial is at least as good on the task's metric as the best so far
        (ties go to val loss); in a multi-objective study the chosen trial is the Pareto trial
        best on that metric, so the same test holds."""
        best = best_first_value(study)
        if best is None:  # no completed trial yet
            return True
        return value >= best if self.run.task.direction == "maximize" else value <= best
