"""UCR/UEA time-series classification: ``ucr`` (any archive dataset) and three fixed ones.

``gunpoint``, ``italypower`` and ``basicmotions`` are shipped inside sktime and load offline;
``ucr`` loads any archive dataset by name (``task.dataset=OSULeaf``): the ones shipped with
sktime offline, the others through sktime's downloader.

Splits: the archive's TRAIN file is split (stratified) into train and validation; its TEST
file is the test split, untouched, so test scores compare with published results.

The tasks search one parameter of their own, ``patch``: the backbone reads the series that
many steps at a time (``automl_rnn.nn.to_patches``), a shorter sequence of wider steps.

Their option ``noise`` (default ``NOISE``) is the standard deviation of the Gaussian jitter
added to the standardised training inputs (``automl_rnn.nn.training_noise``), a regulariser
for the archive's small TRAIN files (``italypower`` sets 0.5; off elsewhere by default). It is
an option, not a searched parameter: with a validation split of 10-20 series most trials
score 100 %, and the validation-loss tie-break then favours the confident models of low
noise, even where noise lifts test accuracy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from automl_rnn import hookimpl
from automl_rnn.errors import UserError
from automl_rnn.types import Params, SearchSpace, Task, TaskData

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from automl_rnn.types import Backbone

Cases = tuple["np.ndarray", ...]
"""One split's cases, each a (T_i, D) float32 array."""

# sktime's own test fixture (a slice of Chinatown): not worth offering to users.
_NOT_OFFERED = {"UnitTest"}


NOISE = 0.0
"""Default training noise (standard deviations): off. It helps some datasets and hurts others
(docs/benchmarks.md, "Training noise": ItalyPowerDemand models gain about a point at 0.5, which
its config sets; a GunPoint study at 0.5 fell from 0.973 to 0.913)."""


@dataclass(frozen=True)
class UcrOptions:
    """Options of the ``ucr`` task.

    Attributes:
        dataset: archive name, case-sensitive (``GunPoint``, ``OSULeaf``, ...). Required.
        val_fraction: share of each class of the archive's TRAIN file held out for validation.
        split_seed: seed of that train/validation split.
        extract_path: folder where sktime caches downloaded datasets (sktime's default when
            None). Not used for datasets shipped with sktime.
        noise: standard deviation of the Gaussian noise added to the standardised inputs while
            training, in units of the training split's standard deviation; 0 turns it off.
    """

    dataset: str = ""
    val_fraction: float = 0.2
    split_seed: int = 0
    extract_path: str | None = None
    noise: float = NOISE


@dataclass(frozen=True)
class FixedUcrOptions:
    """Options of the tasks bound to one dataset (``gunpoint``, ...); see ``UcrOptions``."""

    val_fraction: float = 0.2
    split_seed: int = 0
    noise: float = NOISE


@functools.lru_cache(maxsize=1)
def bundled_datasets() -> tuple[str, ...]:
    """Sorted names of the classification datasets shipped inside sktime (usable offline)."""
    import importlib.util
    from pathlib import Path

    # find_spec locates sktime without importing it (about a second), which keeps the
    # error for a missing dataset name fast.
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        return ()
    root = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    names = []
    for folder in sorted(root.iterdir()):
        train, test = folder / f"{folder.name}_TRAIN.ts", folder / f"{folder.name}_TEST.ts"
        if folder.name not in _NOT_OFFERED and train.is_file() and test.is_file() and _has_class_labels(train):
            names.append(folder.name)
    return tuple(names)


def _has_class_labels(path) -> bool:
    """True for a classification .ts file (regression sets such as Tecator say @targetLabel)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            words = line.strip().lower().split()
            if words[:1] == ["@data"]:
                return False
            if words[:2] == ["@classlabel", "true"]:
                return True
    return False


@functools.lru_cache(maxsize=16)
def _load_split(name: str, split: str, extract_path: str | None) -> tuple[Cases, np.ndarray]:
    """Read one split with sktime: cases as (T_i, D) float32 arrays, and string labels.

    Cached so that the trials of one process read each file once; callers must not modify
    the arrays.
    """
    import numpy as np
    from sktime.datasets import load_UCR_UEA_dataset

    # nested_univ holds one series per (case, channel) cell, so equal- and unequal-length
    # datasets come through the same path.
    frame, labels = load_UCR_UEA_dataset(
        name, split=split, return_type="nested_univ", extract_path=extract_path
    )
    cells = frame.to_numpy()
    cases = tuple(
        np.stack([np.asarray(cell, dtype=np.float32) for cell in row], axis=1) for row in cells
    )
    return cases, np.asarray(labels).astype(str)


def load_archive(name: str, extract_path: str | None = None) -> tuple[tuple[Cases, np.ndarray], tuple[Cases, np.ndarray]]:
    """The archive's (TRAIN, TEST) splits of ``name``, each as (cases, labels).

    Raises:
        UserError: the name is not shipped with sktime and sktime could not download it.
    """
    bundled = bundled_datasets()
    if name in bundled:
        # sktime only looks in extract_path when one is given, so a shipped dataset would
        # be downloaded again; the shipped copy is always the one to use.
        return _load_split(name, "train", None), _load_split(name, "test", None)
    offered = ", ".join(bundled)
    near = [b for b in bundled if b.lower() == name.lower()]
    if near:
        raise UserError(f"unknown UCR/UEA dataset {name!r}: names are case-sensitive, did you mean "
                        f"task.dataset={near[0]}? Bundled datasets (offline): {offered}.")
    try:
        return _load_split(name, "train", extract_path), _load_split(name, "test", extract_path)
    except Exception as error:  # sktime raises RuntimeError, OSError, ValueError, ... here
        raise UserError(
            f"UCR/UEA dataset {name!r} is neither bundled with sktime nor downloadable "
            f"({type(error).__name__}: {error}). Check the name (case-sensitive, as on "
            f"timeseriesclassification.com) and the network connection, or use a bundled "
            f"dataset, which works offline: {offered}."
        ) from error


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with ``val_fraction`` of each class in val (sorted).

    Every class with at least two cases gets at least one validation case and keeps at
    least one training case.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    val: list[int] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = min(len(members) - 1, max(1, round(val_fraction * len(members))))
        val.extend(members[:n_val].tolist())
    val_idx = np.array(sorted(val), dtype=np.int64)
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


def decode_labels(classes: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Logits (N, C) -> the archive's class labels (N,)."""
    import numpy as np

    return classes[np.asarray(logits).argmax(axis=-1)]


def _accuracy(num_classes: int) -> dict[str, Any]:
    from torchmetrics.classification import MulticlassAccuracy

    return {"accuracy": MulticlassAccuracy(num_classes, average="micro")}


PATCHES = (1, 2, 4, 8)
"""Searched steps per backbone step."""

def ucr_space() -> SearchSpace:
    """The tasks' own search parameter: steps per backbone step (``patch``)."""
    from optuna.distributions import CategoricalDistribution

    return {"patch": CategoricalDistribution(PATCHES)}


def _classifier(mean: np.ndarray, std: np.ndarray, num_classes: int, patch: int, noise: float,
                backbone: Backbone) -> nn.Module:
    from automl_rnn.nn import SequenceClassifier, Standardize

    return SequenceClassifier(backbone, Standardize(mean, std), num_classes, patch, noise)


def prepare_ucr(options: UcrOptions, params: Params) -> TaskData:
    """Load ``options.dataset`` and build its TaskData (see the module docstring for the splits)."""
    if not options.dataset:
        raise UserError("the ucr task needs a dataset name: set task.dataset=<Name>, e.g. "
                        f"task.dataset=GunPoint. Bundled datasets (offline): {', '.join(bundled_datasets())}; "
                        "other UCR/UEA names are downloaded by sktime.")
    return classification_data(options.dataset, options.val_fraction, options.split_seed, options.extract_path,
                               patch=int(params.get("patch", 1)), noise=options.noise)


def _prepare_fixed(dataset: str, options: FixedUcrOptions, params: Params) -> TaskData:
    return classification_data(dataset, options.val_fraction, options.split_seed,
                               patch=int(params.get("patch", 1)), noise=options.noise)


def classification_data(dataset: str, val_fraction: float, split_seed: int, extract_path: str | None = None,
                        patch: int = 1, noise: float = 0.0) -> TaskData:
    """TaskData of one UCR/UEA dataset: raw (T, D) float32 cases, int64 class indices.

    The model standardises each channel with mean and std of the train split only, jitters
    the standardised inputs by ``noise`` standard deviations while training, and its
    backbone reads ``patch`` steps at a time (input size ``patch`` x channels).
    """
    import numpy as np
    import torch

    from automl_rnn.data import SequenceDataset

    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"task.val_fraction={val_fraction} must lie strictly between 0 and 1")
    if patch < 1:
        raise UserError(f"patch={patch}: the steps per backbone step must be at least 1 (e.g. search.fixed.task.patch=1)")
    if noise < 0:
        raise UserError(f"noise={noise}: the training noise's standard deviation cannot be negative "
                        f"(task.noise=0 turns it off)")
    (train_x, train_labels), (test_x, test_labels) = load_archive(dataset, extract_path)
    classes = np.unique(train_labels)
    unseen = sorted(set(test_labels) - set(classes))
    if unseen:
        raise UserError(f"dataset {dataset!r}: TEST has labels {unseen} that TRAIN lacks; it cannot be used as is")
    train_y = np.searchsorted(classes, train_labels).astype(np.int64)
    test_y = np.searchsorted(classes, test_labels).astype(np.int64)
    train_idx, val_idx = stratified_split(train_labels, val_fraction, split_seed)

    # Copies, so that nothing done to a dataset can reach the cached arrays.
    def subset(idx: np.ndarray) -> SequenceDataset:
        return SequenceDataset([train_x[i].copy() for i in idx], train_y[idx])

    train, val = subset(train_idx), subset(val_idx)
    test = SequenceDataset([x.copy() for x in test_x], test_y)
    steps = np.concatenate(train.xs, axis=0)
    mean, std = steps.mean(axis=0), steps.std(axis=0)
    lengths = sorted({len(x) for x in (*train_x, *test_x)})
    summary = {
        "dataset": dataset,
        "n_train": len(train), "n_val": len(val), "n_test": len(test),
        "length": lengths[0] if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]}",
        "channels": int(steps.shape[1]),
        "classes": [str(c) for c in classes],
        "patch": patch,
        "noise": noise,
    }
    return TaskData(
        train=train, val=val, test=test,
        input_size=int(steps.shape[1]),
        backbone_input_size=patch * int(steps.shape[1]),
        build_model=functools.partial(_classifier, mean, std, len(classes), patch, noise),
        loss=torch.nn.functional.cross_entropy,
        metrics=functools.partial(_accuracy, len(classes)),
        decode=functools.partial(decode_labels, classes),
        summary=summary,
    )


_FIXED = (
    ("gunpoint", "GunPoint", "GunPoint (UCR): hand motion, 50/150 univariate series of length 150, 2 classes"),
    ("italypower", "ItalyPowerDemand", "ItalyPowerDemand (UCR): daily power demand, 67/1029 series of length 24, 2 classes"),
    ("basicmotions", "BasicMotions", "BasicMotions (UEA): smartwatch motions, 40/40 series of 6 channels x 100, 4 classes"),
)


EPOCH_SIZE = 256
"""Sequences per training epoch (``Task.epoch_size``): the archive's TRAIN files are often tiny
(GunPoint leaves 40 series for training), and a single pass would be one or two optimiser
steps, too few for early stopping and pruning to tell trials apart by epoch. Larger training
splits still train one pass per epoch."""


def _classification_task(name: str, description: str, prepare, options: type) -> Task:
    return Task(name=name, description=description, metric="accuracy", direction="maximize",
                requires_causal=False, prepare=prepare, options=options, space=ucr_space,
                epoch_size=EPOCH_SIZE)


@hookimpl
def automl_rnn_register_tasks(register) -> None:
    """Register ``ucr`` (any UCR/UEA dataset) and ``gunpoint``, ``italypower``, ``basicmotions``."""
    register(_classification_task(
        "ucr", "UCR/UEA time-series classification of any archive dataset (task.dataset=<Name>)",
        prepare_ucr, UcrOptions))
    for name, dataset, description in _FIXED:
        register(_classification_task(name, description, functools.partial(_prepare_fixed, dataset), FixedUcrOptions))
