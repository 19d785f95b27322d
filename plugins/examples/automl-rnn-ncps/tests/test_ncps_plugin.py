"""The example distribution, installed with pip, checked with automl-rnn's contract kit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from automl_rnn.errors import UserError
from automl_rnn.testing import (
    check_architecture,
    check_task,
    registered_architectures,
    registered_tasks,
)
from automl_rnn_ncps.csv_forecast import CsvForecastOptions

DISTRIBUTION = "automl-rnn-ncps"


@pytest.mark.parametrize("arch", registered_architectures(DISTRIBUTION), ids=lambda a: a.name)
def test_families_pass_the_contract_kit(arch):
    check_architecture(arch)


def test_csv_forecast_passes_the_contract_kit_with_a_micro_study(sales_csv, tmp_path):
    (task,) = registered_tasks(DISTRIBUTION)
    options = CsvForecastOptions(str(sales_csv), date_column="day", target_column="units")
    data = check_task(task, options, workdir=tmp_path / "study")
    assert data.summary["rows"] == 300 and data.summary["test_windows"] == 56 - 7 + 1
    # Rows were shuffled in the file: the first training window starts on the first day.
    assert data.train.xs[0][0, 0] == pytest.approx(50.0, abs=5.0)


def test_a_missing_column_is_a_readable_error(sales_csv):
    (task,) = registered_tasks(DISTRIBUTION)
    with pytest.raises(UserError, match="has no column 'value'; its columns: day, store, units"):
        task.prepare(CsvForecastOptions(str(sales_csv), date_column="day"), {})


def test_a_study_mixes_these_families_with_the_built_ins_through_the_cli(sales_csv, tmp_path):
    cli = Path(sys.executable).with_name("automl-rnn")
    done = subprocess.run(
        [str(cli), "search", "task=csv_forecast", f"task.path={sales_csv}", "task.date_column=day",
         "task.target_column=units", "search.archs=[cfc,ltc,lstm]", "search.n_trials=3",
         "search.max_epochs=2", "search.fixed.hidden_size=16", "search.fixed.num_layers=1",
         "search.fixed.batch_size=64", "trainer.num_threads=1",
         "search.enqueue=[{arch:cfc},{arch:ltc},{arch:lstm}]"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    storage = f"sqlite:///{tmp_path / 'automl_rnn.db'}"
    study = optuna.load_study(study_name="csv_forecast", storage=storage)
    assert sorted(t.params["arch"] for t in study.trials) == ["cfc", "lstm", "ltc"]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert "models:/csv_forecast@champion" in done.stdout + done.stderr
