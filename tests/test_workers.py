"""Crash-safe resume and parallel workers, through the real command line in a temp dir."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from automl_rnn.engine.study import counted

ADDING = ["task=adding", "task.T=20", "task.n_train=128", "task.n_val=64", "task.n_test=64",
          "search.archs=[gru]", "search.fixed.num_layers=1", "search.fixed.batch_size=32",
          "search.fixed.hidden_size=16", "pruner=none", "tracking.register=false",
          "search.heartbeat_interval=1", "trainer.num_threads=1"]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "automl_rnn.cli", "search", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def load(folder: Path, name: str = "adding") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'automl_rnn.db'}")


def wait_for(condition, process: subprocess.Popen, seconds: float = 300) -> None:
    """Poll ``condition()`` until true; fail if the process ends or time runs out first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (KeyError, optuna.exceptions.StorageInternalError):
            pass  # the study does not exist yet
        if process.poll() is not None:
            pytest.fail(f"the search ended (code {process.returncode}) before the awaited state")
        time.sleep(0.05)
    pytest.fail("timed out waiting for the study")


def test_a_killed_search_resumes_keeps_its_trials_and_retries_the_one_that_was_running(tmp_path):
    args = command(*ADDING, "search.n_trials=3", "search.max_epochs=10", "search.patience=0")
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(args, cwd=tmp_path, env=environment(), stdout=log, stderr=log)
    try:
        def one_done_and_one_in_training() -> bool:
            trials = load(tmp_path).trials
            return any(t.state == TrialState.COMPLETE for t in trials) and any(
                t.state == TrialState.RUNNING and t.intermediate_values for t in trials)

        wait_for(one_done_and_one_in_training, first)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    before = {t.number: t for t in load(tmp_path).trials}
    (killed,) = [t for t in before.values() if t.state == TrialState.RUNNING]
    kept = {n: t.value for n, t in before.items() if t.state == TrialState.COMPLETE}

    again = subprocess.run(args, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]

    trials = load(tmp_path).trials
    by_number = {t.number: t for t in trials}
    assert {n: by_number[n].value for n in kept} == kept  # completed trials kept as they were
    assert by_number[killed.number].state == TrialState.FAIL
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert len(counted(trials)) == 3 and [t.state for t in counted(trials)].count(TrialState.COMPLETE) == 3
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert "3 complete, 1 fail" in " ".join(again.stderr.split())

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["adding"], filter_string="tags.`automl_rnn.role` = 'trial'")
    dead = runs[runs["run_id"] == killed.user_attrs["mlflow_run_id"]]
    assert dead["status"].item() == "FAILED" and "heartbeats" in dead["tags.reason"].item()
    assert sorted(runs["status"]) == ["FAILED", "FINISHED", "FINISHED", "FINISHED"]


def worker_pids(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (the search's workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


def test_two_workers_share_the_budget_exactly_and_survive_a_killed_worker(tmp_path):
    args = command(*ADDING, "search.n_trials=5", "search.n_workers=2", "search.max_epochs=10",
                   "search.patience=0")
    with open(tmp_path / "search.log", "w") as log:
        search = subprocess.Popen(args, cwd=tmp_path, env=environment(), stdout=log, stderr=log)
    try:
        def in_training() -> list[optuna.trial.FrozenTrial]:
            return [t for t in load(tmp_path).trials if t.state == TrialState.RUNNING and t.intermediate_values]

        wait_for(lambda: len(worker_pids(search.pid)) == 2 and in_training(), search)
        victim = int(in_training()[0].user_attrs["worker"].rsplit(":", 1)[1])
        assert victim in worker_pids(search.pid)
        os.kill(victim, signal.SIGKILL)
        search.wait(timeout=300)
    finally:
        if search.poll() is None:
            search.kill()
    output = " ".join((tmp_path / "search.log").read_text().split())
    assert search.returncode == 0, output[-3000:]
    assert "was killed by signal 9" in output and "Search summary" in output

    trials = load(tmp_path).trials
    budget = counted(trials)
    assert len(budget) == 5 and all(t.state == TrialState.COMPLETE for t in budget)
    assert [t.number for t in trials] == list(range(len(trials)))
    (dead,) = [t for t in trials if t not in budget]
    assert dead.state == TrialState.FAIL
    assert [t.system_attrs.get("failed_trial") for t in budget].count(dead.number) == 1
    first_draws = [t.params for t in budget if "failed_trial" not in t.system_attrs]
    assert len({tuple(sorted(p.items())) for p in first_draws}) == 4  # no two workers drew the same
    assert any(a.datetime_start < b.datetime_start < a.datetime_complete
               for a in trials for b in trials if a is not b and a.datetime_complete), "no two trials overlapped"
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["adding"])
    parent = runs[runs["tags.automl_rnn.role"] == "study"]
    children = runs[runs["tags.automl_rnn.role"] == "trial"]
    assert len(parent) == 1 and len(children) == 6
    assert set(children["tags.mlflow.parentRunId"]) == {parent["run_id"].item()}


@pytest.mark.parametrize(("overrides", "message"), [
    (["search.n_workers=0"], "search.n_workers=0: must be a whole number >= 1"),
    (["search.n_workers=2", "storage=sqlite:///:memory:"], "an in-memory study lives in one process"),
    (["storage=not a url"], "not a database URL"),
])
def test_bad_worker_settings_are_config_errors(overrides, message):
    from automl_rnn.compose import compose_job, normalise_overrides
    from automl_rnn.config import validate
    from automl_rnn.errors import ConfigError
    from automl_rnn.plugins import get_registry

    config, problems = compose_job(normalise_overrides(["task=adding", *overrides]))
    assert not problems
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(config, get_registry())


def postgres_binaries() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, or where Debian's packages put them."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster on 127.0.0.1 with a database ``optuna``; its URL.

    ``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user
    (which Debian's ``postgresql`` package creates). Stopped and deleted at the end.
    """
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    folder = tempfile.mkdtemp(prefix="automl_rnn_pg_")
    owner: dict[str, str] = {}
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        owner = {"user": "postgres", "group": "postgres"}  # subprocess switches user in the child
    port = free_port()
    data = f"{folder}/data"

    def pg(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=120, cwd=folder, **owner)

    pg(str(binaries / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
    pg(str(binaries / "pg_ctl"), "-D", data, "-l", f"{folder}/server.log", "-w", "-t", "60", "-o",
       f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100", "start")
    try:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE optuna")
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        pg(str(binaries / "pg_ctl"), "-D", data, "-w", "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_two_searches_on_one_postgresql_study_record_each_trial_once(tmp_path, postgres_url):
    """The multi-machine recipe on one machine: the same command twice, one PostgreSQL study."""
    args = command(*ADDING, "search.n_trials=8", "search.max_epochs=2", f"storage={postgres_url}")
    # Machines share one MLflow server, which creates its store once; here both use one SQLite
    # file, so it is created before they start.
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()
    logs = [open(tmp_path / f"search-{i}.log", "w") for i in range(2)]
    searches = [subprocess.Popen(args, cwd=tmp_path, env=environment(), stdout=log, stderr=log) for log in logs]
    try:
        for search in searches:
            search.wait(timeout=400)
    finally:
        for search, log in zip(searches, logs):
            if search.poll() is None:
                search.kill()
            log.close()
    for i, search in enumerate(searches):
        assert search.returncode == 0, (tmp_path / f"search-{i}.log").read_text()[-3000:]

    trials = optuna.load_study(study_name="adding", storage=postgres_url).trials
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 8
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both searches ran trials
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["adding"], filter_string="tags.`automl_rnn.role` = 'trial'")
    assert sorted(runs["tags.trial_number"].astype(int)) == list(range(8))


def test_workers_split_the_cpu_threads_and_take_one_gpu_each():
    from automl_rnn.compose import compose_job, normalise_overrides
    from automl_rnn.config import validate
    from automl_rnn.engine.workers import available_cores, worker_config, worker_environment
    from automl_rnn.plugins import get_registry

    config, _ = compose_job(normalise_overrides(["task=adding", "search.n_workers=2"]))
    run = validate(config, get_registry())
    assert worker_config(config, run, 2)["trainer"]["num_threads"] == max(1, available_cores() // 2)
    assert config["trainer"]["num_threads"] is None  # the user's config is not changed
    pinned, _ = compose_job(normalise_overrides(["task=adding", "trainer.num_threads=3"]))
    assert worker_config(pinned, validate(pinned, get_registry()), 2)["trainer"]["num_threads"] == 3
    assert [worker_environment(i, ["4", "5"])["CUDA_VISIBLE_DEVICES"] for i in range(3)] == ["4", "5", "4"]
    assert worker_environment(0, []).get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")
