"""``hydra/sweeper=automl_rnn`` on a user's own Hydra app (tests/hydra_app), run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from automl_rnn.config import PRUNERS, SAMPLERS
from hydra_plugins.automl_rnn_sweeper._impl import RESULTS_FILE, distribution_of, objective_values
from hydra_plugins.automl_rnn_sweeper.config import PrunerConf, SamplerConf

APP = Path(__file__).parent / "hydra_app" / "my_app.py"
ROOT = Path(__file__).parents[1]


def run_app(tmp_path: Path, *overrides: str, multirun: bool = True) -> subprocess.CompletedProcess:
    """Run the app like a user would, with the worktree's hydra_plugins on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, str(APP), *(["-m", f"hydra.sweep.dir={tmp_path / 'sweep'}"] if multirun else []),
               f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def trials_of(tmp_path: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{tmp_path / 'sweep.db'}").trials


def test_a_sweep_finds_the_minimum_writes_its_results_and_resumes(tmp_path):
    storage = (f"hydra.sweeper.storage=sqlite:///{tmp_path / 'sweep.db'}", "hydra.sweeper.study_name=bowl")
    done = run_app(tmp_path, "hydra.sweeper.n_trials=25", *storage)
    assert done.returncode == 0, done.stderr

    results = yaml.safe_load((tmp_path / "sweep" / RESULTS_FILE).read_text())
    assert results["trials"] == {"complete": 25, "pruned": 0, "fail": 0}
    # the bowl's minimum is 0 at x=2, y=-1, kind=a; kind=b or another y costs at least 1
    assert results["best_params"]["kind"] == "a" and results["best_params"]["y"] == -1
    assert results["best_value"] == pytest.approx((results["best_params"]["x"] - 2.0) ** 2)
    assert results["best_value"] < 1.0
    assert len([p for p in (tmp_path / "sweep").iterdir() if p.name.isdigit()]) == 25  # one Hydra job per trial
    trials = trials_of(tmp_path, "bowl")
    assert {type(t.params["y"]) for t in trials} == {int} and {t.params["kind"] for t in trials} == {"a", "b"}
    assert all(-5.0 <= t.params["x"] <= 5.0 and -3 <= t.params["y"] <= 3 for t in trials)

    resumed = run_app(tmp_path, "hydra.sweeper.n_trials=27", *storage)
    assert resumed.returncode == 0, resumed.stderr
    assert len(trials_of(tmp_path, "bowl")) == 27
    assert yaml.safe_load((tmp_path / "sweep" / RESULTS_FILE).read_text())["best_value"] <= results["best_value"]


def test_report_prunes_trials_a_failing_job_fails_only_its_trial_and_jobs_run_in_batches(tmp_path):
    done = run_app(tmp_path, "steps=4", "fail_above=12", "hydra.sweeper.n_trials=12", "hydra.sweeper.n_jobs=3",
                   "hydra.sweeper.sampler.name=random", "hydra.sweeper.sampler.seed=0",
                   "hydra.sweeper.pruner.name=median", "hydra.sweeper.pruner.n_startup_trials=2",
                   f"hydra.sweeper.storage=sqlite:///{tmp_path / 'sweep.db'}", "hydra.sweeper.study_name=pruned")
    assert done.returncode == 0, done.stderr
    trials = trials_of(tmp_path, "pruned")
    states = [t.state for t in trials]
    assert len(trials) == 12 and optuna.trial.TrialState.COMPLETE in states
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(t.user_attrs["reason"] == f"pruned at step {max(t.intermediate_values)}" for t in pruned)
    assert all(len(t.intermediate_values) < 4 for t in pruned)
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all(t.user_attrs["reason"].startswith("RuntimeError: value") for t in failed)
    assert (done.stdout + done.stderr).count("Launching 3 jobs locally") == 4
    results = yaml.safe_load((tmp_path / "sweep" / RESULTS_FILE).read_text())
    assert results["trials"] == {"complete": states.count(optuna.trial.TrialState.COMPLETE),
                                 "pruned": len(pruned), "fail": len(failed)}


def test_a_parallel_launcher_runs_jobs_in_other_processes_whose_report_still_prunes(tmp_path):
    """hydra-joblib-launcher runs each batch's jobs in worker processes; report() reconnects there."""
    done = run_app(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=3", "steps=4", "record_pid=true",
                   "hydra.sweeper.n_trials=9", "hydra.sweeper.n_jobs=3", "hydra.sweeper.sampler.name=random",
                   "hydra.sweeper.sampler.seed=0", "hydra.sweeper.pruner.name=median",
                   "hydra.sweeper.pruner.n_startup_trials=2",
                   f"hydra.sweeper.storage=sqlite:///{tmp_path / 'sweep.db'}", "hydra.sweeper.study_name=parallel")
    assert done.returncode == 0, done.stderr
    pids = {int(p.name) for p in (tmp_path / "pids").iterdir()}
    assert len(pids) > 1  # the jobs ran in the launcher's worker processes, not in the sweeper's
    trials = trials_of(tmp_path, "parallel")
    assert len(trials) == 9 and all(sorted(t.intermediate_values) == list(range(len(t.intermediate_values)))
                                    for t in trials)
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(t.user_attrs["reason"] == f"pruned at step {max(t.intermediate_values)}" for t in pruned)
    assert all(len(t.intermediate_values) == 4 for t in trials if t.state == optuna.trial.TrialState.COMPLETE)


def test_report_in_another_process_needs_a_storage_it_can_reach(tmp_path):
    done = run_app(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "steps=2",
                   "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2")
    assert done.returncode == 0, done.stderr  # the sweep goes on; each job's trial fails with the fix
    assert "report() reaches the study there through hydra.sweeper.storage" in done.stdout + done.stderr


def test_without_multirun_the_app_runs_once_and_report_does_nothing(tmp_path):
    done = run_app(tmp_path, "steps=3", "x=2.0", multirun=False)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "sweep").exists()


def test_a_bad_sweeper_config_is_one_message_without_traceback(tmp_path):
    done = run_app(tmp_path, "hydra.sweeper.sampler.name=tpee", "hydra.sweeper.pruner.percentile=50",
                   "hydra.sweeper.n_jobs=0")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "hydra.sweeper.sampler.name='tpee': choose one of tpe, random, cmaes, gp" in done.stderr
    assert "hydra.sweeper.pruner.percentile: not an option of this pruner" in done.stderr
    assert "hydra.sweeper.n_jobs=0: must be a whole number >= 1" in done.stderr


@pytest.mark.parametrize(("expression", "expected"), [
    ("choice(a, b)", CategoricalDistribution(["a", "b"])),
    ("choice(1, 2.5, true)", CategoricalDistribution([1, 2.5, True])),
    ("range(1, 8)", IntDistribution(1, 7)),
    ("range(0, 10, 3)", IntDistribution(0, 9, step=3)),
    ("range(0.5, 2.0, 0.5)", FloatDistribution(0.5, 1.5, step=0.5)),
    ("interval(0.1, 1.0)", FloatDistribution(0.1, 1.0)),
    ("tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
    ("tag(int, interval(2, 64))", IntDistribution(2, 64)),
    ("tag(int, log, interval(2, 64))", IntDistribution(2, 64, log=True)),
    ("5", None),
])
def test_sweep_expressions_become_optuna_distributions(expression, expected):
    (override,) = OverridesParser.create().parse_overrides([f"x={expression}"])
    assert distribution_of(override) == expected


def test_the_option_fields_are_exactly_the_samplers_and_pruners_options():
    assert {f.name for f in fields(SamplerConf)} == {"name", "seed"} | set().union(*SAMPLERS.values())
    assert {f.name for f in fields(PrunerConf)} == {"name", "max_resource"} | set().union(*PRUNERS.values())


def test_objective_values_are_numbers_one_per_direction():
    assert objective_values(1, 1) == [1.0] and objective_values((1, 2.5), 2) == [1.0, 2.5]
    for bad, n in ((None, 1), ("x", 1), ([1.0], 2)):
        with pytest.raises(ValueError, match="return"):
            objective_values(bad, n)
