"""The synthetic diagnostics ``adding`` and ``copy``: data as defined, T from the real configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from automl_rnn.compose import compose_job, normalise_overrides
from automl_rnn.config import validate
from automl_rnn.errors import UserError
from automl_rnn.plugins import load_registry
from automl_rnn_plugins.tasks.synthetic import ADDING_BASELINE_MSE, adding_batch, copy_batch

REGISTRY = load_registry(use_entry_points=True)
SMALL = ["task.n_train=64", "task.n_val=16", "task.n_test=16"]


def prepared(*overrides: str):
    """The task data of the real composed config for ``overrides``."""
    config, problems = compose_job(normalise_overrides(list(overrides)))
    assert not problems, problems
    run = validate(config, REGISTRY)
    return run.task.prepare(run.task_options, {})


def test_adding_length_comes_from_the_config():
    data = prepared("task=adding", "task.T=37", *SMALL)
    assert data.input_size == 2
    assert {x.shape for x in data.train.xs} == {(37, 2)}
    assert (len(data.train), len(data.val), len(data.test)) == (64, 16, 16)
    assert data.summary["T"] == 37


def test_adding_target_is_the_sum_of_one_marked_value_in_each_half():
    x, y = adding_batch(np.random.default_rng(0), 500, 50)
    marked = [np.flatnonzero(row) for row in x[:, :, 1]]
    assert all(len(m) == 2 and m[0] < 25 <= m[1] for m in marked)
    np.testing.assert_allclose(y, [x[i, m, 0].sum() for i, m in enumerate(marked)], rtol=1e-6)
    # the trivial answer 1.0 scores Var(U1 + U2) = 1/6
    assert np.mean((y - 1.0) ** 2) == pytest.approx(ADDING_BASELINE_MSE, abs=0.02)


def test_copy_delay_comes_from_the_config_and_the_recall_follows_the_delimiter():
    data = prepared("task=copy", "task.delay=30", "task.length=5", "task.symbols=4", *SMALL)
    assert data.input_size == 6
    assert {x.shape for x in data.train.xs} == {(2 * 5 + 30, 6)}
    x, y = data.train.xs[0], data.train.ys[0]
    codes = x.argmax(-1)
    np.testing.assert_array_equal(codes[:5], y)  # the symbols to remember come first
    blank, delimiter = 4, 5
    assert np.all(codes[5:5 + 29] == blank) and codes[5 + 29] == delimiter  # the wait ends at the delimiter
    assert np.all(codes[5 + 30:] == blank)  # the last 5 steps are blanks, answered with the symbols


def test_copy_model_scores_the_last_steps_against_the_symbols():
    data = prepared("task=copy", "task.delay=3", "task.length=4", "task.symbols=8", *SMALL)
    backbone = REGISTRY.architectures["gru"].build(data.input_size, {"hidden_size": 8, "num_layers": 1})
    model = data.build_model(backbone)
    x = torch.tensor(np.stack(data.val.xs[:3]))
    logits = model(x, None)
    assert logits.shape == (3, 8, 4)  # (batch, classes, recalled steps), as cross-entropy expects
    assert data.loss(logits, torch.tensor(np.stack(data.val.ys[:3]))).ndim == 0
    assert data.decode(logits.detach().numpy()).shape == (3, 4)


def test_bad_lengths_are_user_errors():
    with pytest.raises(UserError, match="T must be at least 2"):
        adding_batch(np.random.default_rng(0), 4, 1)
    with pytest.raises(UserError, match="delay >= 1"):
        copy_batch(np.random.default_rng(0), 4, 0)
