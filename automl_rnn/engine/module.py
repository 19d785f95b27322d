"""The LightningModule of one trial: a task's model + loss + metrics + optimiser settings.

It trains and evaluates; it knows nothing of Optuna or MLflow.
"""

from __future__ import annotations

import math
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, Mapping

import cloudpickle
import lightning.pytorch as L
import torch
from torch import nn

from automl_rnn.engine.failures import NonFiniteLossError


class SequenceModule(L.LightningModule):
    """Trains ``model`` with ``loss`` and logs ``train_loss``, ``val_loss`` and ``val_<metric>``.

    Args:
        model: ``forward(x, lengths) -> predictions``.
        loss: ``loss(predictions, target) -> scalar``.
        metrics: factory of a fresh dict of torchmetrics metrics.
        optim: the trial's optimiser and schedule parameters (``lr``, ``weight_decay``,
            ``optimizer``, ``scheduler`` and the scheduler's own parameters).
        monitor: the logged name that the plateau schedule watches, e.g. ``val_accuracy``.
        monitor_mode: ``"min"`` or ``"max"`` for ``monitor``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        metrics: Callable[[], Mapping[str, Any]],
        optim: Mapping[str, Any],
        monitor: str,
        monitor_mode: str,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss
        self.val_metrics = nn.ModuleDict(dict(metrics()))
        self.test_metrics = nn.ModuleDict(dict(metrics()))
        self.optim = dict(optim)
        self.monitor = monitor
        self.monitor_mode = monitor_mode

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, lengths)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, lengths, y = batch
        loss = self.loss_fn(self(x, lengths), y)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at epoch {self.current_epoch}, batch {batch_idx}"
            )
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True)
        return loss

    def _evaluate(self, batch, prefix: str, metrics: nn.ModuleDict) -> None:
        x, lengths, y = batch
        prediction = self(x, lengths)
        self.log(f"{prefix}_loss", self.loss_fn(prediction, y), batch_size=x.shape[0], sync_dist=True)
        for name, metric in metrics.items():
            metric.update(prediction, y)
            self.log(f"{prefix}_{name}", metric, on_step=False, on_epoch=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def configure_optimizers(self):
        o = self.optim
        optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[o["optimizer"]]
        optimizer = optimizer_class(self.parameters(), lr=o["lr"], weight_decay=o.get("weight_decay", 0.0))
        scheduler = o.get("scheduler", "constant")
        epochs = self.trainer.max_epochs
        if scheduler == "constant":
            return optimizer
        if scheduler == "cosine":
            total = self.trainer.estimated_stepping_batches
            warmup = int(o.get("warmup_fraction", 0.0) * total)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(warmup, total))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        if scheduler == "onecycle":
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=o["lr"], total_steps=max(2, int(self.trainer.estimated_stepping_batches)),
                pct_start=o.get("onecycle_pct_start", 0.3),
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        if scheduler == "step":
            schedule = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=min(int(o.get("step_every", 10)), epochs), gamma=o.get("step_gamma", 0.5)
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
        if scheduler == "plateau":
            schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=self.monitor_mode, factor=o.get("plateau_factor", 0.5),
                patience=int(o.get("plateau_patience", 3)),
            )
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": schedule, "interval": "epoch", "monitor": self.monitor}}
        raise ValueError(f"unknown scheduler {scheduler!r}")


def _by_value(module: SequenceModule) -> tuple[Callable[[bytes], SequenceModule], tuple[bytes]]:
    return cloudpickle.loads, (cloudpickle.dumps(module),)


# Multi-device trials (ddp_spawn) pickle the module into the processes that train it. Plugins
# often define their model classes inside ``build`` (so that torch is imported only then) and
# tasks may use lambdas as losses; standard pickling refers to classes and functions by name
# and fails on those, so the module travels by value (cloudpickle), as MLflow logs models.
ForkingPickler.register(SequenceModule, _by_value)


def _warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
