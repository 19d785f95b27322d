"""End to end through the real command line, configs and stores (subprocesses in a temp dir)."""

from __future__ import annotations

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
                        cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    err = " ".join(result.stderr.split())
    for expected in ("8 problem(s)", "search.ensemble_members='trial': must be one of seeds, trials (did you mean 'trials'?)",
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
