"""The plugin data types: what an architecture or a task plugin registers.

This module imports neither torch nor Lightning, so that listing plugins stays fast; the
annotations that name torch types are only evaluated by type checkers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch
    from optuna.distributions import BaseDistribution
    from torch import nn
    from torchmetrics import Metric

    from automl_rnn.data import SequenceDataset

SearchSpace = Mapping[str, "BaseDistribution"]
"""Parameter name -> Optuna distribution: one plugin's own part of the search space."""

Params = Mapping[str, Any]
"""Sampled (or fixed) values of one trial, keyed by parameter name."""


@runtime_checkable
class Backbone(Protocol):
    """A sequence encoder: an ``nn.Module`` mapping (B, T, D) inputs to (B, T, H) outputs.

    ``lengths`` (B,) gives the number of valid steps of each sequence when a batch is padded
    at the end, or ``None`` when every sequence fills the whole T steps. Padding must never
    change the output at a valid step. ``output_size`` is H.
    """

    output_size: int

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor: ...


def no_space() -> SearchSpace:
    """The empty search space: for plugins that add no parameters of their own."""
    return {}


@dataclass(frozen=True)
class Architecture:
    """An architecture family that the search can choose.

    Attributes:
        name: the name configs use (``search.archs=[lstm]``); unique over all plugins.
        description: one line for ``automl-rnn plugins``.
        causal: True when the output at step t depends only on inputs up to t, so the
            family is usable for forecasting and language modelling.
        build: ``build(input_size, params) -> Backbone``. ``params`` holds the common
            parameters (``hidden_size``, ``num_layers``, ``dropout``) and the family's own
            parameters from ``space`` under their plain names. Import torch inside it.
        space: returns the family's own parameters as Optuna distributions. The engine
            stores them in the study as ``<name>.<parameter>``.
    """

    name: str
    description: str
    causal: bool
    build: Callable[[int, Params], Backbone]
    space: Callable[[], SearchSpace] = no_space


@dataclass(frozen=True)
class NoOptions:
    """Options of a task that takes none."""


@dataclass(frozen=True)
class TaskData:
    """Everything the engine needs to train and evaluate models on one task.

    The datasets hold raw values (as a user would pass them to the model): preprocessing
    that has state (scaling fitted on the training split, class labels) lives in the model
    that ``build_model`` returns, so a logged model predicts from raw input.

    Attributes:
        train, val, test: splits; models are compared on ``val`` only, ``test`` is read once
            for the final evaluation of the chosen model.
        input_size: D, the number of features per step of the raw input.
        build_model: wraps a backbone into the full model, an ``nn.Module`` whose
            ``forward(x, lengths)`` returns predictions (logits, forecasts, ...).
        loss: ``loss(prediction, target) -> scalar tensor`` minimised by training.
        metrics: a fresh dict of torchmetrics metrics, updated with ``(prediction, target)``;
            it must contain the task's ``metric``.
        decode: turns model outputs (numpy) into what a user wants back, e.g. class
            labels from logits; identity when None.
        summary: a few facts about the data for logs and reports (sizes, classes, ...).
        backbone_input_size: features per step that the backbone reads, when the model of
            ``build_model`` reshapes its input before the backbone (e.g. ``patch`` steps at a
            time: ``patch`` x D); ``input_size`` when not given.
    """

    train: SequenceDataset
    val: SequenceDataset
    test: SequenceDataset
    input_size: int
    build_model: Callable[[Backbone], nn.Module]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metrics: Callable[[], dict[str, Metric]]
    decode: Callable[[np.ndarray], np.ndarray] | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)
    backbone_input_size: int | None = None

    def __post_init__(self) -> None:
        if self.backbone_input_size is None:
            object.__setattr__(self, "backbone_input_size", self.input_size)


@dataclass(frozen=True)
class Task:
    """A learning problem the search optimises models for.

    Attributes:
        name: the name configs use (``task=gunpoint``); unique over all plugins.
        description: one line for ``automl-rnn plugins``.
        metric: the key of ``TaskData.metrics`` that trials are ranked by.
        direction: ``"maximize"`` or ``"minimize"`` for ``metric``.
        requires_causal: True when models must not look ahead (forecasting, LM); the
            engine then drops non-causal families.
        prepare: ``prepare(options, params) -> TaskData``. ``options`` is an instance of
            ``options`` filled from the task's config; ``params`` holds the task's own
            sampled parameters from ``space`` under their plain names.
        options: a dataclass of the task's config keys (``task.dataset=GunPoint``); its
            fields and defaults document them, and unknown keys are config errors.
        space: the task's own search parameters (window length, ...), stored in the
            study as ``task.<parameter>``.
        refit: True when the chosen configuration should be retrained on train + val
            before its test evaluation (``search.refit`` overrides it). Forecasting tasks
            set it: their validation span is the newest data, which the final model should
            have seen, as a forecaster fitted on everything before the test period has.
        epoch_size: sequences drawn in one training epoch, in reshuffled passes over the
            training split (the last one partial); 0 or anything below the split's size:
            one pass (``search.epoch_size`` overrides it). Tasks with tiny training splits
            set it, so that an epoch is enough optimiser steps for the per-epoch machinery
            (early-stopping patience, schedules, pruning rungs) to mean something.
    """

    name: str
    description: str
    metric: str
    direction: Literal["maximize", "minimize"]
    requires_causal: bool
    prepare: Callable[[Any, Params], TaskData]
    options: type = NoOptions
    space: Callable[[], SearchSpace] = no_space
    refit: bool = False
    epoch_size: int = 0
