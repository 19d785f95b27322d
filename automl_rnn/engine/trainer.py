"""The Lightning Trainer of a trial and the callbacks that connect it to the search.

Multi-device trials train on several ranks: with ``trainer.strategy=ddp`` this process is rank
0 and the others come from the study's rank pool (``engine/rank_pool.py``), each building its
Trainer from the same ``TrainerRecipe``; with ``ddp_spawn`` Lightning starts the processes for
each ``fit`` and pickles the trainer and its callbacks into them. Every callback here
works on every rank: the decisions that end training (pruning, the time limit) are taken on
rank 0 and broadcast, so all ranks stop at the same step, and ``RankZeroResults`` carries the
callbacks' results (history, best weights, where pruning stopped) from rank 0 back to the
main process, whose own copies the ranks never update.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import Any, Sequence

import lightning.pytorch as L
import optuna
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from torch.utils.data import DataLoader

from automl_rnn.config import TrainerConfig, uses_rank_pool
from automl_rnn.engine.cpu_memory import keep_freed_memory


def _rebuild_generator(device: str, state: bytes) -> torch.Generator:
    generator = torch.Generator(device)
    generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
    return generator


def _reduce_generator(generator: torch.Generator) -> tuple[Any, tuple[str, bytes]]:
    return _rebuild_generator, (str(generator.device), generator.get_state().numpy().tobytes())


# A seeded DataLoader holds a torch.Generator. torch pickles it for a spawned process through
# a temporary state tensor in shared memory that is freed before the child maps it ("unable
# to resize file <filename not specified>"); passing the state by value avoids that.
ForkingPickler.register(torch.Generator, _reduce_generator)


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

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epochs = list(state_dict["epochs"])


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

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_tie_breaker": self.best_tie_breaker,
                "best_epoch": self.best_epoch, "state": self.state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_tie_breaker = state_dict["best"], state_dict["best_tie_breaker"]
        self.best_epoch, self.state = state_dict["best_epoch"], state_dict["state"]


class TorchThreads(Callback):
    """Sets torch's thread count in every training process (spawned ranks start with Lightning's)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        torch.set_num_threads(self.threads)


class KeepFreedMemory(Callback):
    """Keeps freed memory for reuse in every training process (``engine/cpu_memory.py``)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        keep_freed_memory()


class StopAfterEpochs(Callback):
    """Ends training after ``epochs`` epochs while ``max_epochs`` (and so every LR schedule
    that is laid out over it) stays what it was in the search."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class TimeLimit(Callback):
    """Stops training once ``seconds`` have passed since it started; ``reached`` tells if it did.

    With several ranks, rank 0's clock decides after each batch and the decision is
    broadcast, so no rank waits for a gradient another has stopped computing.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.reached = False
        self._started = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        over = time.perf_counter() - self._started > self.seconds
        if trainer.world_size > 1:
            over = trainer.strategy.broadcast(over, src=0)
        if over:
            self.reached = trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"reached": self.reached}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.reached = state_dict["reached"]


class OptunaPruning(Callback):
    """Reports the monitored metric to Optuna after each validation and stops a hopeless trial.

    On a prune decision it stops training cleanly (``trainer.should_stop``) and remembers the
    epoch; the objective then raises ``optuna.TrialPruned``, so Lightning never sees an
    exception in the middle of a loop.

    Only rank 0 talks to the study's storage; its decision is broadcast to the other ranks.
    The callback pickles without its ``optuna.Trial``: a rank 0 running in a process of its
    own (``ddp_spawn``) reconnects to the trial through ``storage``, the study's URL, and the
    other ranks never connect.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, storage: str | None = None) -> None:
        self.trial: optuna.Trial | None = trial
        self.monitor, self.storage = monitor, storage
        self.pruned_at: int | None = None
        self._study_name, self._pruner = trial.study.study_name, trial.study.pruner
        self._trial_id = trial._trial_id  # Optuna's key of the running trial in the storage
        self._owner_pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "trial": None}

    def _connected_trial(self) -> optuna.Trial:
        """The trial, reconnected to the storage when this is not the process that made it."""
        if self.trial is None or os.getpid() != self._owner_pid:
            if self.storage is None:
                raise RuntimeError("pruning a trial that trains in other processes needs the study's "
                                   "storage URL; an in-memory study cannot be reached from them")
            from automl_rnn.engine.study import SQLITE_TIMEOUT
            from automl_rnn.storage_url import sqlite_path

            engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if sqlite_path(self.storage) else None
            storage = optuna.storages.RDBStorage(self.storage, engine_kwargs=engine_kwargs)
            study = optuna.load_study(study_name=self._study_name, storage=storage,
                                      sampler=optuna.samplers.RandomSampler(), pruner=self._pruner)
            self.trial, self._owner_pid = optuna.Trial(study, self._trial_id), os.getpid()
        return self.trial

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = _metric_value(trainer, self.monitor)
        if trainer.sanity_checking or value is None or self.pruned_at is not None:
            return
        epoch = trainer.current_epoch
        prune = False
        if trainer.is_global_zero:
            trial = self._connected_trial()
            trial.report(value, step=epoch)
            prune = trial.should_prune()
        if trainer.world_size > 1:
            prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            self.pruned_at = epoch
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"pruned_at": self.pruned_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pruned_at = state_dict["pruned_at"]


class RankZeroResults(Callback):
    """Brings the state of ``carried`` callbacks from a rank 0 that ran in another process.

    With ``ddp_spawn`` the trainer and its callbacks are pickled into the processes that
    train, and the main process's callbacks never change. At the end of ``fit``, rank 0
    writes each carried callback's ``state_dict()`` to a temporary file; ``recover`` (called
    in the main process after ``fit``) loads them into the main process's callbacks. Without
    other processes it does nothing.
    """

    def __init__(self, carried: Sequence[Callback]) -> None:
        self.carried = list(carried)
        self.path = os.path.join(tempfile.gettempdir(), f"automl_rnn_rank0_{uuid.uuid4().hex}.pt")
        self._main_pid = os.getpid()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and os.getpid() != self._main_pid:
            torch.save([callback.state_dict() for callback in self.carried], self.path)

    def recover(self) -> None:
        """Load rank 0's results into the carried callbacks, if rank 0 was another process."""
        if not os.path.exists(self.path):
            return
        try:
            states = torch.load(self.path, weights_only=True)
        finally:
            os.remove(self.path)
        for callback, state in zip(self.carried, states):
            callback.load_state_dict(state)


@dataclass
class TrainerRecipe:
    """How to build the quiet Trainer of one training: every rank builds its own from it.

    A Trainer reads its rank from the environment when it is built, so the ranks of a
    ``trainer.strategy=ddp`` pool (``engine/rank_pool.py``) receive this recipe, not rank 0's
    Trainer. ``callbacks`` are the caller's own objects: rank 0's Trainer (in this process, or
    in the process ``ddp_spawn`` starts) updates them, and the caller reads them after ``fit``.
    """

    config: TrainerConfig
    max_epochs: int
    gradient_clip_val: float | None
    monitor: str
    mode: str
    patience: int
    callbacks: list[Callback]

    def build(self) -> L.Trainer:
        """A Trainer with no logger or checkpoint files, and early stopping.

        Early stopping watches ``val_loss``: it keeps improving after a coarse metric such as
        accuracy on a small validation split has saturated, and ``BestWeights`` uses it to
        break ties.
        """
        config = self.config
        all_callbacks = [*self.callbacks, RankZeroResults(self.callbacks)]
        if config.num_threads:
            all_callbacks.append(TorchThreads(config.num_threads))
        if config.keep_freed_memory:
            all_callbacks.append(KeepFreedMemory())
        if self.patience > 0:
            all_callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=self.patience,
                                               check_finite=False))
        return L.Trainer(
            accelerator=config.accelerator,
            devices=config.devices,
            strategy=config.strategy,
            precision=config.precision,
            max_epochs=self.max_epochs,
            gradient_clip_val=self.gradient_clip_val,
            callbacks=all_callbacks,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )


def fit(recipe: TrainerRecipe, module: L.LightningModule, train: DataLoader, val: DataLoader) -> None:
    """Train ``module`` with a Trainer built from ``recipe``; the callbacks hold the results.

    One device and the spawning strategies (``ddp_spawn``, ``ddp_fork``): ``trainer.fit``, then
    the callbacks' results from rank 0 when it ran in another process. ``ddp`` (and ``auto``
    on several devices, which Lightning turns into ``ddp``): this process is rank 0 of the
    study's rank pool, whose other ranks join the same fit.
    """
    if uses_rank_pool(recipe.config):
        from automl_rnn.engine.rank_pool import fit_on_pool

        fit_on_pool(recipe, module, train, val)
        return
    trainer = recipe.build()
    trainer.fit(module, train, val)
    for callback in trainer.callbacks:
        if isinstance(callback, RankZeroResults):
            callback.recover()
