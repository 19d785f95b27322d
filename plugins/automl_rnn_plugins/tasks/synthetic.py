"""Synthetic long-memory diagnostics: ``adding`` and ``copy``.

``adding`` (Hochreiter & Schmidhuber, 1997; the form of Le et al., 2015): each step carries
two features, a value drawn uniformly from [0, 1] and a marker; exactly two steps are
marked, one in the first half of the sequence and one in the second. The target is the sum
of the two marked values, read from the output at the last step. Always answering 1.0
scores an MSE of Var(U1 + U2) = 1/6, about 0.167; the task is solved near 0.

``copy`` (copy memory, Hochreiter & Schmidhuber, 1997; Arjovsky et al., 2016): the first
``length`` steps show symbols drawn from ``symbols`` classes, then ``delay - 1`` blanks, a
delimiter, and ``length`` more blanks during which the model must reproduce the symbols in
order. Inputs are one-hot over ``symbols + 2`` channels (symbols, blank, delimiter). The
model predicts the recalled symbols from its outputs at the last ``length`` steps; the
metric is the accuracy over those recalled symbols (chance: 1 / symbols).

Both tasks draw fixed train/validation/test sets from one seed; the ``adding_batch`` and
``copy_batch`` generators are also used directly by the learning tests and benchmarks, which
train on fresh batches.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from automl_rnn import hookimpl
from automl_rnn.errors import UserError
from automl_rnn.types import Params, Task, TaskData

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from automl_rnn.types import Backbone

ADDING_BASELINE_MSE = 1.0 / 6.0
"""MSE of always answering 1.0 on the adding problem."""


@dataclass(frozen=True)
class AddingOptions:
    """Options of the ``adding`` task.

    Attributes:
        T: sequence length.
        n_train, n_val, n_test: number of sequences per split.
        seed: seed of the data generator (splits are disjoint draws from it).
    """

    T: int = 100
    n_train: int = 5000
    n_val: int = 1000
    n_test: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class CopyOptions:
    """Options of the ``copy`` task.

    Attributes:
        delay: the delimiter comes ``delay`` steps after the last symbol shown (the
            sequence is ``2 * length + delay`` steps long).
        length: number of symbols to remember.
        symbols: size of the symbol alphabet.
        n_train, n_val, n_test: number of sequences per split.
        seed: seed of the data generator.
    """

    delay: int = 20
    length: int = 10
    symbols: int = 8
    n_train: int = 5000
    n_val: int = 1000
    n_test: int = 1000
    seed: int = 0


def adding_batch(rng: np.random.Generator, n: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` adding-problem sequences: x (n, steps, 2) float32 and y (n,) float32."""
    import numpy as np

    if steps < 2:
        raise UserError(f"adding: T must be at least 2, got {steps}")
    values = rng.random((n, steps), dtype=np.float32)
    markers = np.zeros((n, steps), dtype=np.float32)
    half = steps // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, steps, size=n)
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), y.astype(np.float32)


def copy_batch(rng: np.random.Generator, n: int, delay: int, length: int = 10,
               symbols: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``n`` copy-memory sequences: x (n, 2*length+delay, symbols+2) one-hot, y (n, length) int64."""
    import numpy as np

    if delay < 1 or length < 1 or symbols < 2:
        raise UserError(f"copy: need delay >= 1, length >= 1 and symbols >= 2 "
                        f"(got delay={delay}, length={length}, symbols={symbols})")
    steps = 2 * length + delay
    blank, delimiter = symbols, symbols + 1
    y = rng.integers(0, symbols, size=(n, length))
    codes = np.full((n, steps), blank, dtype=np.int64)
    codes[:, :length] = y
    codes[:, length + delay - 1] = delimiter
    return np.eye(symbols + 2, dtype=np.float32)[codes], y.astype(np.int64)


def _last_steps(h: torch.Tensor, lengths: torch.Tensor | None, count: int) -> torch.Tensor:
    """(B, T, H) -> (B, count, H): the last ``count`` valid steps of each sequence."""
    import torch

    if lengths is None:
        return h[:, -count:]
    ends = lengths.to(h.device)[:, None]
    index = (ends - count + torch.arange(count, device=h.device)[None, :]).clamp(min=0)
    return h.gather(1, index[..., None].expand(-1, -1, h.shape[2]))


@functools.lru_cache(maxsize=1)
def _define_models() -> tuple[type, type]:
    from torch import nn

    from automl_rnn.nn import last_valid_step

    class LastStepRegressor(nn.Module):
        """Backbone -> linear readout of the last valid step -> one number per sequence."""

        def __init__(self, backbone: Backbone) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = nn.Linear(backbone.output_size, 1)

        def forward(self, x, lengths=None):
            return self.head(last_valid_step(self.backbone(x, lengths), lengths)).squeeze(-1)

    class RecallClassifier(nn.Module):
        """Backbone -> per-step linear readout of the last ``length`` steps -> logits (B, classes, length)."""

        def __init__(self, backbone: Backbone, classes: int, length: int) -> None:
            super().__init__()
            self.backbone = backbone
            self.length = length
            self.head = nn.Linear(backbone.output_size, classes)

        def forward(self, x, lengths=None):
            h = _last_steps(self.backbone(x, lengths), lengths, self.length)
            return self.head(h).transpose(1, 2)

    for cls in (LastStepRegressor, RecallClassifier):  # so that pickle finds them by name
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    return LastStepRegressor, RecallClassifier


def __getattr__(name: str) -> Any:
    # Model classes need torch; defined on first access (PEP 562) so pickles can name them.
    if name in ("LastStepRegressor", "RecallClassifier"):
        return dict(zip(("LastStepRegressor", "RecallClassifier"), _define_models()))[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _regressor(backbone: Backbone) -> nn.Module:
    return _define_models()[0](backbone)


def _recall(classes: int, length: int, backbone: Backbone) -> nn.Module:
    return _define_models()[1](backbone, classes, length)


def _mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.mse_loss(prediction, target.to(prediction.dtype))


def _cross_entropy(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(prediction, target.long())


def _mse_metrics() -> dict[str, Any]:
    from torchmetrics import MeanSquaredError

    return {"mse": MeanSquaredError()}


def _accuracy_metrics(classes: int) -> dict[str, Any]:
    from torchmetrics.classification import MulticlassAccuracy

    return {"accuracy": MulticlassAccuracy(num_classes=classes, average="micro")}


def _argmax_classes(logits: np.ndarray) -> np.ndarray:
    return logits.argmax(axis=1)


def _splits(make, options) -> list:
    import numpy as np

    from automl_rnn.data import SequenceDataset

    rng = np.random.default_rng(options.seed)
    return [SequenceDataset(*make(rng, n)) for n in (options.n_train, options.n_val, options.n_test)]


def prepare_adding(options: AddingOptions, params: Params) -> TaskData:
    """Fixed splits of the adding problem at length ``options.T``."""
    train, val, test = _splits(lambda rng, n: adding_batch(rng, n, options.T), options)
    return TaskData(
        train=train, val=val, test=test, input_size=2,
        build_model=_regressor, loss=_mse_loss, metrics=_mse_metrics,
        summary={"T": options.T, "n_train": len(train), "n_val": len(val), "n_test": len(test),
                 "baseline_mse": round(ADDING_BASELINE_MSE, 4)},
    )


def prepare_copy(options: CopyOptions, params: Params) -> TaskData:
    """Fixed splits of copy memory with delay ``options.delay``."""
    train, val, test = _splits(
        lambda rng, n: copy_batch(rng, n, options.delay, options.length, options.symbols), options)
    return TaskData(
        train=train, val=val, test=test, input_size=options.symbols + 2,
        build_model=functools.partial(_recall, options.symbols, options.length),
        loss=_cross_entropy,
        metrics=functools.partial(_accuracy_metrics, options.symbols),
        decode=_argmax_classes,
        summary={"delay": options.delay, "length": options.length, "symbols": options.symbols,
                 "steps": 2 * options.length + options.delay, "n_train": len(train),
                 "n_val": len(val), "n_test": len(test), "chance_accuracy": round(1 / options.symbols, 4)},
    )


@hookimpl
def automl_rnn_register_tasks(register) -> None:
    """Register ``adding`` and ``copy``."""
    register(Task(
        name="adding", description="adding problem: sum the two marked values of a length-T sequence",
        metric="mse", direction="minimize", requires_causal=False,
        prepare=prepare_adding, options=AddingOptions,
    ))
    register(Task(
        name="copy", description="copy memory: recall 10 symbols after a delay of T steps",
        metric="accuracy", direction="maximize", requires_causal=False,
        prepare=prepare_copy, options=CopyOptions,
    ))
