"""The search space: config ranges, conditional parameters, fixed values, family and task spaces."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

import synthetic_plugins
from automl_rnn.compose import compose_job, normalise_overrides
from automl_rnn.config import validate
from automl_rnn.engine.search import build_space
from automl_rnn.errors import ConfigError
from automl_rnn.plugins import load_registry
from automl_rnn.space import CONDITIONS, distribution_from_spec, family_params

REGISTRY = load_registry([("synthetic_plugins", synthetic_plugins)])


def run_config(*overrides: str):
    config, problems = compose_job(normalise_overrides(list(overrides)))
    assert not problems, problems
    config["task"] = {"name": "sign"}
    return validate(config, REGISTRY)


def sample_many(run, n: int = 40):
    space = build_space(run, REGISTRY)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    return [space.sample(study.ask()) for _ in range(n)]


def test_distribution_from_spec():
    assert distribution_from_spec("h", {"type": "int", "low": 8, "high": 64, "log": True}) == IntDistribution(8, 64, log=True)
    assert distribution_from_spec("o", {"choices": ["adam"]}) == CategoricalDistribution(["adam"])
    assert distribution_from_spec("d", {"low": 0.0, "high": 0.5}) == FloatDistribution(0.0, 0.5)
    with pytest.raises(ValueError, match="log range needs low > 0"):
        distribution_from_spec("lr", {"low": 0.0, "high": 1.0, "log": True})


def test_conditional_parameters_only_with_their_schedule():
    for params in sample_many(run_config("search.archs=[gru,lstm]")):
        for name, (parent, value) in CONDITIONS.items():
            assert (name in params) == (params[parent] == value)
        assert 16 <= params["hidden_size"] <= 256 and params["arch"] in {"gru", "lstm"}


def test_cli_overrides_ranges_fixed_values_and_family_spaces():
    run = run_config("search.archs=[nan_gru]", "search.space.hidden_size.low=100",
                     "search.space.hidden_size.high=120", "search.fixed.num_layers=1",
                     "search.fixed.scheduler=cosine", "search.space.nan_gru.poison.high=0.25")
    for params in sample_many(run):
        assert 100 <= params["hidden_size"] <= 120
        assert params["num_layers"] == 1 and params["scheduler"] == "cosine" and "warmup_fraction" in params
        assert 0.0 <= params["nan_gru.poison"] <= 0.25
        assert family_params(params)["poison"] == params["nan_gru.poison"]


def test_bad_family_override_is_reported():
    config, _ = compose_job(normalise_overrides(["search.archs=[nan_gru]", "search.space.nan_gru.poisson.high=1"]))
    config["task"] = {"name": "sign"}
    with pytest.raises(ConfigError, match="'nan_gru' has no parameter 'poisson' \\(did you mean 'poison'\\?\\)"):
        validate(config, REGISTRY)
