"""The Lightning Trainer of a trial and the callbacks that connect it to the search."""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import lightning.pytorch as L
import optuna
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping

from automl_rnn.config import TrainerConfig


def _metric_value(trainer: L.Trainer, name: str) -> float | None:
    value = trainer.callback_metrics.get(name)
    return None if value is None else float(value)


class EpochHistory(Callback):
    """Collects the epoch-level metrics (train and validation) of a trial, epoch by epoch.

    Each row also holds ``epoch_seconds``: the wall time of the epoch, its training batches
    and its validation pass.
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self._epoch_started = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_started = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        self.epochs.append({"epoch": trainer.current_epoch, **row})

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.epochs and self.epochs[-1]["epoch"] == trainer.current_epoch:
            loss = _metric_value(trainer, "train_loss")
            if loss is not None:
                self.epochs[-1]["train_loss"] = loss
            self.epochs[-1]["epoch_seconds"] = time.perf_counter() - self._epoch_started


class BestWeights(Callback):
    """Keeps a copy of the weights at the best value of ``monitor``, to restore after training.

    Ties on ``monitor`` (common for accuracy on a small validation split) go to the epoch
    with the lower validation loss, the more confident of the equally accurate models.
    """

    def __init__(self, monitor: str, mode: str, tie_breaker: str = "val_loss") -> None:
        self.monitor, self.mode, self.tie_breaker = monitor, mode, tie_breaker
        self.best: float | None = None
        self.best_tie_breaker: float = math.inf
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def _better(self, value: float, tie_breaker: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if value == self.best:
            return tie_breaker < self.best_tie_breaker
        return value > self.best if self.mode == "max" else value < self.best

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = _metric_value(trainer, self.monitor)
        tie_breaker = _metric_value(trainer, self.tie_breaker)
        tie_breaker = math.inf if tie_breaker is None or math.isnan(tie_breaker) else tie_breaker
        if trainer.sanity_checking or value is None or not self._better(value, tie_breaker):
            return
        self.best, self.best_tie_breaker, self.best_epoch = value, tie_breaker, trainer.current_epoch
        self.state = copy.deepcopy({k: v.detach().cpu() for k, v in pl_module.state_dict().items()})

    def restore(self, pl_module: L.LightningModule) -> None:
        """Load the best weights back into ``pl_module`` (no-op before any validation)."""
        if self.state is not None:
            pl_module.load_state_dict(self.state)


class StopAfterEpochs(Callback):
    """Ends training after ``epochs`` epochs while ``max_epochs`` (and so every LR schedule
    that is laid out over it) stays what it was in the search."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class TimeLimit(Callback):
    """Stops training once ``seconds`` have passed since it started; ``reached`` tells if it did."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.reached = False
        self._started = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if time.perf_counter() - self._started > self.seconds:
            self.reached = trainer.should_stop = True


class OptunaPruning(Callback):
    """Reports the monitored metric to Optuna after each validation and stops a hopeless trial.

    On a prune decision it stops training cleanly (``trainer.should_stop``) and remembers the
    epoch; the objective then raises ``optuna.TrialPruned``, so Lightning never sees an
    exception in the middle of a loop.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = _metric_value(trainer, self.monitor)
        if trainer.sanity_checking or value is None or self.pruned_at is not None:
            return
        epoch = trainer.current_epoch
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.should_stop = True


def build_trainer(
    config: TrainerConfig,
    *,
    max_epochs: int,
    gradient_clip_val: float | None,
    monitor: str,
    mode: str,
    patience: int,
    callbacks: list[Callback],
) -> L.Trainer:
    """A quiet Trainer for one trial: no logger or checkpoint files, early stopping.

    Early stopping watches ``val_loss``: it keeps improving after a coarse metric such as
    accuracy on a small validation split has saturated, and ``BestWeights`` uses it to break
    ties.
    """
    all_callbacks = list(callbacks)
    if patience > 0:
        all_callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=patience, check_finite=False))
    options: dict[str, Any] = dict(
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        precision=config.precision,
        max_epochs=max_epochs,
        gradient_clip_val=gradient_clip_val,
        callbacks=all_callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**options)
