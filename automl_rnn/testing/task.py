"""Contract checks for a ``Task``: declared metric, honest splits, shapes that fit its head.

``check_task`` prepares the data once and runs every check on it, then (given a working
folder) a micro study. Checks look at small slices, so large datasets stay fast.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any, Mapping

import cloudpickle
import numpy as np
import torch

from automl_rnn.data import collate
from automl_rnn.space import space_problems
from automl_rnn.testing._threads import one_thread
from automl_rnn.testing.reference import REFERENCE_ARCH
from automl_rnn.types import Architecture, Task, TaskData

SPLITS = ("train", "val", "test")
PROBE_BATCH = 8
"""Sequences per split that go through the model in ``check_head_shapes``."""


def check_metric_declared(task: Task, data: TaskData) -> None:
    """``direction`` is maximize or minimize and ``metric`` is one of the task's metrics."""
    assert task.direction in ("maximize", "minimize"), (
        f"task {task.name!r}: direction={task.direction!r}; declare 'maximize' or 'minimize' "
        f"for {task.metric!r}")
    metrics = data.metrics()
    assert task.metric in metrics, (
        f"task {task.name!r}: metric={task.metric!r} is not among the metrics TaskData.metrics() "
        f"returns ({', '.join(metrics) or 'none'}); add it or rename the task's metric")


def check_task_space(task: Task) -> None:
    """The task's own ``space()`` returns a dict of plain names -> Optuna distributions."""
    problems = space_problems(task.space())
    assert not problems, f"task {task.name!r}: " + "; ".join(problems)


def _fingerprints(dataset) -> set[bytes]:
    """One byte string per (sequence, target) sample, to find samples shared by two splits."""
    return {np.asarray(x).tobytes() + np.asarray(y).tobytes() for x, y in zip(dataset.xs, dataset.ys)}


def check_splits(task: Task, data: TaskData) -> None:
    """Every split is non-empty, every sample is (T, input_size), and no sample is in two splits."""
    for split in SPLITS:
        dataset = getattr(data, split)
        assert len(dataset) > 0, f"task {task.name!r}: the {split} split is empty"
        widths = {np.asarray(x).shape[-1] for x in dataset.xs}
        assert widths == {data.input_size}, (
            f"task {task.name!r}: {split} sequences have {sorted(widths)} features per step but "
            f"TaskData.input_size={data.input_size}")
    prints = {split: _fingerprints(getattr(data, split)) for split in SPLITS}
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1:]:
            shared = len(prints[first] & prints[second])
            assert not shared, (
                f"task {task.name!r}: {shared} sample(s) are in both the {first} and the {second} "
                f"split; make the splits disjoint so validation and test scores are honest")


def check_time_order(task: Task, data: TaskData, target_channel: int = 0) -> None:
    """For forecasting: train, val and test follow each other in time.

    A target span of a later split must never appear among the inputs of an earlier split
    (that would train or select on the future). Applies when the targets are value vectors
    of the series in input channel ``target_channel``; classification targets are skipped.
    """
    targets = [np.asarray(data.train.ys[0])]
    if targets[0].dtype.kind != "f" or targets[0].ndim != 1:
        return
    horizon = targets[0].shape[0]

    def spans(dataset) -> set[bytes]:
        found = set()
        for x in dataset.xs:
            series = np.ascontiguousarray(np.asarray(x, dtype=np.float32)[:, target_channel])
            for start in range(len(series) - horizon + 1):
                found.add(series[start:start + horizon].tobytes())
        return found

    for i, earlier in enumerate(SPLITS[:-1]):
        seen = spans(getattr(data, earlier))
        for later in SPLITS[i + 1:]:
            targets = getattr(data, later).ys
            leaked = sum(np.asarray(y, dtype=np.float32).tobytes() in seen for y in targets)
            assert not leaked, (
                f"task {task.name!r}: {leaked} {later} target(s) appear inside {earlier} inputs, "
                f"so the {earlier} split reads the future; cut train, val and test in time order "
                f"(TaskData(train=earliest, val=..., test=latest))")


@one_thread
def check_head_shapes(task: Task, data: TaskData, arch: Architecture = REFERENCE_ARCH) -> None:
    """A batch of each split goes through ``build_model``, ``loss``, the metrics and ``decode``."""
    torch.manual_seed(0)
    backbone = arch.build(data.backbone_input_size, {"hidden_size": 8, "num_layers": 1, "dropout": 0.0})
    model = data.build_model(backbone)
    for split in SPLITS:
        dataset = getattr(data, split)
        x, lengths, y = collate([dataset[i] for i in range(min(PROBE_BATCH, len(dataset)))])
        where = f"task {task.name!r}, {split} batch x{tuple(x.shape)} y{tuple(y.shape)}"
        prediction = model(x, lengths)
        assert isinstance(prediction, torch.Tensor) and prediction.shape[0] == x.shape[0], (
            f"{where}: the model returned {getattr(prediction, 'shape', type(prediction).__name__)}; "
            f"it must return one prediction per sequence (batch first)")
        loss = data.loss(prediction, y)
        assert isinstance(loss, torch.Tensor) and loss.ndim == 0 and bool(torch.isfinite(loss)), (
            f"{where}: loss(prediction{tuple(prediction.shape)}, target) gave {loss!r}; it must be "
            f"a finite scalar tensor")
        loss.backward()
        metrics = data.metrics()
        for name, metric in metrics.items():
            metric.update(prediction.detach(), y)
            value = metric.compute()
            assert bool(torch.isfinite(torch.as_tensor(value)).all()), (
                f"{where}: metric {name!r} gave {value}")
        if data.decode is not None:
            decoded = data.decode(prediction.detach().numpy())
            assert len(decoded) == x.shape[0], (
                f"{where}: decode returned {len(decoded)} items for {x.shape[0]} sequences")


@one_thread
def check_task_picklable(task: Task, data: TaskData) -> None:
    """The train and val datasets pickle; the loss and the model ``build_model`` makes cloudpickle.

    Multi-device trials (``trainer.strategy=ddp_spawn``) copy them into the processes that
    train; ``metrics``, ``decode`` and ``build_model`` itself stay in the main process.
    """
    from automl_rnn.testing.architecture import PICKLE_HINT
    from automl_rnn.testing.reference import ReferenceGRU

    parts = {"train dataset": (data.train, pickle.dumps), "val dataset": (data.val, pickle.dumps),
             "loss": (data.loss, cloudpickle.dumps),
             "model": (data.build_model(ReferenceGRU(data.backbone_input_size, 4, 1)), cloudpickle.dumps)}
    for name, (part, dumps) in parts.items():
        try:
            dumps(part)
        except Exception as error:
            raise AssertionError(f"task {task.name!r}: its {name} cannot be copied to another process "
                                 f"({type(error).__name__}: {error}); {PICKLE_HINT}") from error


@one_thread
def check_task(
    task: Task,
    options: Any = None,
    params: Mapping[str, Any] | None = None,
    *,
    workdir: str | Path | None = None,
    arch: Architecture = REFERENCE_ARCH,
) -> TaskData:
    """Run every task check; with ``workdir``, also a micro study (2 trials x 1 epoch) there.

    Args:
        task: the task to check.
        options: an instance of ``task.options``; defaults to ``task.options()``.
        params: the task's own search parameters; defaults to none (the task's defaults).
        workdir: a folder for the micro study's Optuna and MLflow files (pytest's ``tmp_path``).
        arch: the family used for the head and micro-study checks (a small GRU by default).

    Returns:
        The prepared data, for further checks of your own.
    """
    from automl_rnn.testing.study import check_micro_study

    assert isinstance(task, Task), f"expected an automl_rnn.types.Task, got {type(task).__name__}"
    options = task.options() if options is None else options
    assert dataclasses.is_dataclass(options) and isinstance(options, task.options), (
        f"task {task.name!r}: options must be an instance of its options dataclass "
        f"{task.options.__name__}")
    check_task_space(task)
    data = task.prepare(options, dict(params or {}))
    assert isinstance(data, TaskData), (
        f"task {task.name!r}: prepare returned {type(data).__name__}, not TaskData")
    check_metric_declared(task, data)
    check_splits(task, data)
    if task.requires_causal:
        check_time_order(task, data)
    check_head_shapes(task, data, arch)
    check_task_picklable(task, data)
    if workdir is not None:
        check_micro_study(task, options, Path(workdir), arch=arch)
    return data
