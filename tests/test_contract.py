"""The contract kit (automl_rnn.testing): every built-in plugin passes it, and it catches bugs."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
from optuna.distributions import IntDistribution

import synthetic_plugins
from automl_rnn.compose import compose_job
from automl_rnn.config import validate
from automl_rnn.plugins import load_registry
from automl_rnn.testing import (
    check_architecture,
    check_causal_flag,
    check_metric_declared,
    check_output_shape,
    check_picklable,
    check_space,
    check_splits,
    check_task,
    check_task_picklable,
    check_time_order,
    check_variable_length,
    registered_architectures,
    registered_tasks,
)
from automl_rnn.types import Architecture, Task

BUILT_IN = "automl-rnn"
TASK_OVERRIDES = {"ucr": ["task.dataset=JapaneseVowels"]}
"""Options a built-in task needs beyond its shipped config (JapaneseVowels: variable lengths)."""
MICRO_STUDY_TASKS = ("gunpoint", "airline")
"""The tasks that also run the end-to-end micro study: one classifier, one forecaster (refit)."""


def shipped_options(task: Task) -> Any:
    """The task's options as ``automl-rnn search task=<name>`` composes and validates them."""
    config, problems = compose_job([f"task={task.name}", *TASK_OVERRIDES.get(task.name, [])])
    assert config is not None and not problems, problems
    return validate(config, load_registry()).task_options


@pytest.mark.parametrize("arch", registered_architectures(BUILT_IN), ids=lambda a: a.name)
def test_every_built_in_architecture_passes_the_kit(arch: Architecture):
    report = check_architecture(arch)
    assert report.parameters_largest > report.parameters_smallest > 0


@pytest.mark.parametrize("task", registered_tasks(BUILT_IN), ids=lambda t: t.name)
def test_every_built_in_task_passes_the_kit(task: Task, tmp_path):
    workdir = tmp_path if task.name in MICRO_STUDY_TASKS else None
    check_task(task, shipped_options(task), workdir=workdir)


def test_built_ins_are_found_by_distribution_name_in_any_spelling():
    assert [a.name for a in registered_architectures("AUTOML_RNN")] == [
        a.name for a in registered_architectures(BUILT_IN)]
    with pytest.raises(AssertionError, match="registered no architecture"):
        registered_architectures("not-installed-anywhere")


SIGN = synthetic_plugins.prepare_sign(synthetic_plugins.SignOptions(n=40), {})
SIGN_TASK = Task("sign", "sign of a sum", metric="accuracy", direction="maximize",
                 requires_causal=False, prepare=synthetic_plugins.prepare_sign,
                 options=synthetic_plugins.SignOptions)


def gru() -> Architecture:
    """The built-in GRU family, to derive broken variants from."""
    return load_registry().architectures["gru"]


@pytest.mark.parametrize(("arch", "check", "message"), [
    (Architecture("wrong_shape", "", True, synthetic_plugins.build_wrong_shape),
     check_output_shape, r"must return \(B, T, output_size\)"),
    (dataclasses.replace(gru(), name="bidi", build=load_registry().architectures["bigru"].build),
     check_causal_flag, "says causal=True, but changing inputs after step 9"),
    (dataclasses.replace(gru(), causal=False), check_causal_flag, "Declare causal=True"),
    (dataclasses.replace(gru(), space=lambda: {"a.b": IntDistribution(1, 2)}), check_space,
     "plain identifier"),
    (dataclasses.replace(gru(), space=lambda: {"hidden_size": IntDistribution(1, 2)}),
     check_space, "shadows the common parameter"),
    (dataclasses.replace(gru(), space=lambda: {"units": (8, 64)}), check_space,
     "not an Optuna distribution"),
])
def test_the_kit_names_what_is_broken(arch: Architecture, check, message: str):
    with pytest.raises(AssertionError, match=message):
        check(arch)


def test_the_kit_catches_padding_that_leaks_into_valid_steps():
    def build_leaky(input_size: int, params):
        from torch import nn

        class Leaky(nn.Module):
            """Normalises over the whole time axis, padding included."""

            output_size = 3

            def forward(self, x, lengths=None):
                return x - x.mean(dim=1, keepdim=True)

        return Leaky()

    with pytest.raises(AssertionError, match="padded sequence gives other outputs"):
        check_variable_length(Architecture("leaky", "", True, build_leaky))


def test_the_kit_catches_overlapping_splits_and_an_undeclared_metric():
    overlapping = dataclasses.replace(SIGN, val=SIGN.train)
    with pytest.raises(AssertionError, match="are in both the train and the val split"):
        check_splits(SIGN_TASK, overlapping)
    with pytest.raises(AssertionError, match="metric='f1' is not among the metrics"):
        check_metric_declared(dataclasses.replace(SIGN_TASK, metric="f1"), SIGN)


def test_the_kit_catches_a_forecaster_that_trains_on_the_future():
    airline = load_registry().tasks["airline"]
    data = airline.prepare(airline.options(), {})
    swapped = dataclasses.replace(data, train=data.test, test=data.train)
    with pytest.raises(AssertionError, match="reads the future"):
        check_time_order(airline, swapped)


def test_the_kit_catches_a_model_or_data_that_multi_device_trials_cannot_copy():
    def build_locked(input_size: int, params):
        from torch import nn

        class Locked(nn.GRU):  # a class defined in build is fine; the lock it holds is not
            output_size = 4

            def __init__(self) -> None:
                super().__init__(input_size, 4, batch_first=True)
                self.lock = threading.Lock()

            def forward(self, x, lengths=None):
                return super().forward(x)[0]

        return Locked()

    check_picklable(gru())
    with pytest.raises(AssertionError, match="architecture 'locked': the backbone cannot be copied .*_thread.lock"):
        check_picklable(Architecture("locked", "", True, build_locked))
    check_task_picklable(SIGN_TASK, dataclasses.replace(SIGN, loss=lambda prediction, target: prediction.mean()))
    locked = synthetic_plugins.prepare_sign(synthetic_plugins.SignOptions(n=40), {})
    locked.train.lock = threading.Lock()
    with pytest.raises(AssertionError, match="task 'sign': its train dataset cannot be copied"):
        check_task_picklable(SIGN_TASK, locked)
