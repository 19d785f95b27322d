"""End to end through the real command line, configs and stores (subprocesses in a temp dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest

FAST = ["search.max_epochs=2", "search.fixed.hidden_size=16", "search.fixed.num_layers=1",
        "search.fixed.batch_size=32"]


def automl_rnn(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "automl_rnn.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def use_stores(folder: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")


def test_bad_config_lists_every_problem_and_exits_2(tmp_path):
    result = automl_rnn("search", "task=gunpoint", "search.n_trials=0", "search.archs=[lstm,lstn]",
                        "search.space.hidden_size.low=300", "search.n_trails=3", "sampler=tpee",
                        "search.fixed.num_layer=2", "search.max_params=0", "search.ensemble_members=trial",
                        "search.epoch_size=-5", "trainer.keep_freed_memory=maybe", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    err = " ".join(result.stderr.split())
    for expected in ("10 problem(s)", "trainer.keep_freed_memory='maybe': must be true or false", "search.epoch_size=-5: must be a whole number >= 0", "search.ensemble_members='trial': must be one of seeds, trials (did you mean 'trials'?)",
                     "search.n_trials=0: must be a whole number >= 1",
                     "search.max_params=0: must be a whole number >= 1",
                     "'lstn' is not a registered architecture (did you mean 'lstm'?)",
                     "search.space.hidden_size: high=256 is below low=300",
                     "search.n_trails: unknown key (did you mean 'n_trials'?)",
                     "sampler=tpee: no such sampler config (did you mean 'tpe'?)",
                     "search.fixed.num_layer: unknown parameter (did you mean 'num_layers'?)"):
        assert expected in err
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "automl_rnn.db").exists()


def test_unknown_task_and_command_are_user_errors(tmp_path):
    result = automl_rnn("search", "task=gunpiont", cwd=tmp_path)
    assert result.returncode == 2 and "did you mean 'gunpoint'" in result.stderr
    assert "Traceback" not in result.stderr
    result = automl_rnn("serach", cwd=tmp_path)
    assert result.returncode == 2 and "unknown command 'serach'" in result.stderr


def test_gunpoint_study_end_to_end(tmp_path):
    result = automl_rnn("search", "task=gunpoint", "search.n_trials=3", "search.archs=[gru,bigru]",
                        *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Search summary" in result.stderr and "models:/gunpoint@champion" in result.stderr

    study = optuna.load_study(study_name="gunpoint", storage=f"sqlite:///{tmp_path / 'automl_rnn.db'}")
    assert len(study.trials) == 3
    use_stores(tmp_path)
    runs = mlflow.search_runs(experiment_names=["gunpoint"])
    parent = runs[runs["tags.automl_rnn.role"] == "study"]
    children = runs[runs["tags.automl_rnn.role"] == "trial"]
    assert len(parent) == 1 and len(children) == 3
    assert set(children["tags.mlflow.parentRunId"]) == {parent["run_id"].item()}
    assert "metrics.val_accuracy" in children and "metrics.train_loss" in children
    client = mlflow.MlflowClient()
    history = client.get_metric_history(children["run_id"].iloc[0], "val_accuracy")
    assert [m.step for m in history] == [0, 1]
    champion = client.get_model_version_by_alias("gunpoint", "champion")
    test_accuracy = float(champion.tags["test_score"])
    assert parent["metrics.test_accuracy"].item() == pytest.approx(test_accuracy)

    # The registered model predicts from raw series, and reproduces the logged test score.
    from sktime.datasets import load_UCR_UEA_dataset

    X, y = load_UCR_UEA_dataset("GunPoint", split="test", return_type="numpy2D")
    model = mlflow.pyfunc.load_model("models:/gunpoint@champion")
    predictions = model.predict(X)
    assert predictions.shape == (150,) and set(predictions) <= {"1", "2"}
    assert np.mean(predictions == y) == pytest.approx(test_accuracy, abs=1e-6)

    best = automl_rnn("best", "task=gunpoint", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert best.stdout.strip().endswith("models:/gunpoint@champion")

    # Same command again: the study is complete, nothing new runs, the stores are kept.
    again = automl_rnn("search", "task=gunpoint", "search.n_trials=3", "search.archs=[gru,bigru]",
                       *FAST, cwd=tmp_path)
    assert again.returncode == 0 and "3 of 3 trials already finished" in " ".join(again.stderr.split())
    assert len(optuna.load_study(study_name="gunpoint", storage=f"sqlite:///{tmp_path / 'automl_rnn.db'}").trials) == 3


def test_airline_drops_bidirectional_families_and_forecasts_raw_history(tmp_path):
    result = automl_rnn("search", "task=airline", "search.n_trials=2", "search.archs=[lstm,bilstm]",
                        *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert "warning:" in message and "bilstm look ahead and are left out" in message
    study = optuna.load_study(study_name="airline", storage=f"sqlite:///{tmp_path / 'automl_rnn.db'}")
    assert {t.params["arch"] for t in study.trials} == {"lstm"}
    use_stores(tmp_path)
    from sktime.datasets import load_airline

    history = load_airline().to_numpy()[None, :-12]
    forecast = mlflow.pyfunc.load_model("models:/airline@champion").predict(history)
    assert forecast.shape == (1, 12) and np.all(np.isfinite(forecast))


def test_multirun_runs_one_study_per_task(tmp_path):
    result = automl_rnn("search", "-m", "task=gunpoint,italypower", "search.n_trials=1",
                        "search.archs=[gru]", "tracking.register=false", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    names = optuna.get_all_study_names(storage=f"sqlite:///{tmp_path / 'automl_rnn.db'}")
    assert sorted(names) == ["gunpoint", "italypower"]


@pytest.mark.parametrize(("args", "forbidden"), [(["--help"], {"torch"}), (["plugins"], {"torch", "lightning", "mlflow"})])
def test_light_commands_do_not_import_heavy_libraries(args, forbidden):
    probe = (
        "import sys\nfrom automl_rnn.cli import main\n"
        f"sys.argv = ['automl-rnn', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {sorted(forbidden)!r} if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == "[]"


def dominates(a: list[float], b: list[float], directions) -> bool:
    """``a`` is at least as good as ``b`` on every objective and better on one."""
    signs = [1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in directions]
    pairs = [(s * x, s * y) for s, x, y in zip(signs, a, b)]
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def test_multi_objective_study_prints_and_logs_a_non_dominated_pareto_front(tmp_path):
    result = automl_rnn("search", "task=adding", "task.T=8", "task.n_train=64", "task.n_val=64", "task.n_test=32",
                        "search.n_trials=5", "search.archs=[gru]", "search.max_epochs=2",
                        "search.space.hidden_size.low=2", "search.space.hidden_size.high=24",
                        "search.objectives=[mse,params,latency]", "sampler=nsga2", "sampler.population_size=2",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    err = " ".join(result.stderr.split())
    assert "pruner=median is not used: Optuna cannot prune a multi-objective study" in err
    assert "Pareto front (" in err and "latency ms" in err and "Search summary" in err

    study = optuna.load_study(study_name="adding", storage=f"sqlite:///{tmp_path / 'automl_rnn.db'}")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE", "MINIMIZE"]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 5 and all(not t.intermediate_values for t in complete)  # nothing reported: no pruning
    assert all(t.values[1] == t.user_attrs["n_params"] and t.values[2] > 0 for t in complete)
    front = {t.number for t in study.best_trials}
    # the front: no member dominated by any trial, every other trial dominated by a member
    for t in complete:
        dominated = any(dominates(o.values, t.values, study.directions) for o in complete)
        assert dominated == (t.number not in front)

    use_stores(tmp_path)
    client = mlflow.MlflowClient()
    (parent,) = mlflow.search_runs(experiment_names=["adding"], output_format="list",
                                   filter_string="tags.`automl_rnn.role` = 'study'")
    logged = json.loads(mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/pareto_front.json"))
    assert {entry["trial"] for entry in logged} == front
    assert parent.data.metrics["pareto_front_size"] == len(front) == int(parent.data.tags["pareto_front_size"])
    assert all(set(entry["values"]) == {"mse", "params", "latency"} for entry in logged)
    # the published model is the Pareto trial best on the task's metric
    chosen = min(study.best_trials, key=lambda t: (t.values[0], t.user_attrs["val_loss"], t.number))
    assert [e["trial"] for e in logged if e["published"]] == [chosen.number]
    assert client.get_model_version_by_alias("adding", "champion").tags["trial"] == str(chosen.number)

    best = automl_rnn("best", "task=adding", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert "Pareto front (" in best.stderr and f"{chosen.number} (Pareto front: the best on mse)" in " ".join(
        best.stderr.split())


def test_bad_objectives_are_config_errors(tmp_path):
    result = automl_rnn("search", "task=gunpoint", "search.objectives=[params,latncy,params]", "sampler=cmaes",
                        cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    err = " ".join(result.stderr.split())
    for expected in ("search.objectives: 'latncy' is not an objective (did you mean 'latency'?); allowed: "
                     "accuracy (the task's metric, maximized); params (trainable parameter count); latency",
                     "the first objective must be the task's metric 'accuracy', e.g. "
                     "search.objectives=[accuracy,params]",
                     "search.objectives: params named more than once",
                     "sampler=cmaes: Optuna's cmaes sampler takes one objective only"):
        assert expected in err
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "automl_rnn.db").exists()
