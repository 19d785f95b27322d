"""``search.n_workers=N``: N worker processes run the trials of one study on this machine.

Each worker is a fresh ``python -m automl_rnn.engine.workers`` process that opens the same
storage and runs ``run_trials`` until the study holds ``search.n_trials`` counted trials; the
claim lock there keeps the shared budget exact. Workers load plugins from their entry points,
as the ``automl-rnn`` command does. On CPU each worker gets ``cores // N`` torch threads
(unless ``trainer.num_threads`` is set); with GPUs worker i sees GPU i only
(``CUDA_VISIBLE_DEVICES``, round robin). Every worker logs its trials' MLflow runs under the
study's parent run. The main process only watches: it shows one progress view for the
whole study, polled from the storage, and reports a worker that dies; that worker's running
trial is retried by the others once its heartbeat is stale, and finished trials stay.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import optuna

from automl_rnn.config import RunConfig, TrainerConfig
from automl_rnn.display import StudyProgress
from automl_rnn.engine.study import FINISHED_STATES, finished_trials

POLL_SECONDS = 0.5
"""How often the main process reads the study for the progress view."""
STOP_SECONDS = 60
"""How long the main process waits for workers to stop after Ctrl-C before killing them."""
LOG_TAIL_LINES = 15
GPU_ACCELERATORS = ("gpu", "cuda", "auto")


@dataclass(frozen=True)
class WorkerExit:
    """How one worker process ended."""

    index: int
    returncode: int
    log_tail: str

    @property
    def crashed(self) -> bool:
        """True when the worker did not end normally (error, signal, out-of-memory kill)."""
        return self.returncode != 0


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus(trainer: TrainerConfig) -> list[str]:
    """The CUDA devices workers share out, or [] when trials train on CPU."""
    if trainer.accelerator not in GPU_ACCELERATORS:
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [d.strip() for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def worker_config(config: Mapping[str, Any], run: RunConfig, n_workers: int) -> dict[str, Any]:
    """The composed config a worker runs: the CPU threads split between the workers."""
    result = copy.deepcopy(dict(config))
    if run.trainer.num_threads is None:
        result.setdefault("trainer", {})["num_threads"] = max(1, available_cores() // n_workers)
    return result


def worker_environment(index: int, gpus: list[str]) -> dict[str, str]:
    """The environment of worker ``index``: its own GPU when there are GPUs."""
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    return env


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(lines[-LOG_TAIL_LINES:])


def run_workers(
    run: RunConfig,
    config: Mapping[str, Any],
    study: optuna.Study,
    parent_run_id: str,
    progress: StudyProgress,
) -> list[WorkerExit]:
    """Start the workers, show the study's progress until they all end, and say how each ended.

    Args:
        run: the validated run (``search.n_workers`` > 1).
        config: the composed config as a plain dict; each worker validates it again.
        study: the study, already created in the shared storage.
        parent_run_id: the study's MLflow parent run.
        progress: the progress view, refreshed from the storage.

    Raises:
        KeyboardInterrupt: after the workers stopped (they get the interrupt too).
    """
    remaining = run.search.n_trials - len(finished_trials(study))
    n_workers = min(run.search.n_workers, max(remaining, 0))
    if n_workers == 0:
        return []
    gpus = visible_gpus(run.trainer)
    shared = worker_config(config, run, n_workers)
    with tempfile.TemporaryDirectory(prefix="automl_rnn_workers_") as folder:
        spec = Path(folder) / "worker.json"
        spec.write_text(json.dumps({"config": shared, "parent_run_id": parent_run_id}, default=str))
        logs = [Path(folder) / f"worker-{i}.log" for i in range(n_workers)]
        processes = []
        for i, log in enumerate(logs):
            with open(log, "w") as out:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "automl_rnn.engine.workers", str(spec)],
                    env=worker_environment(i, gpus), stdout=out, stderr=subprocess.STDOUT,
                ))
        threads = shared.get("trainer", {}).get("num_threads")
        progress.note(f"{n_workers} workers" + (f" on GPUs {', '.join(gpus)}" if gpus else
                                                f", {threads} torch thread(s) each"))
        exits: dict[int, WorkerExit] = {}
        shown = {t.number for t in study.get_trials(deepcopy=False, states=FINISHED_STATES)}
        try:
            while len(exits) < n_workers:
                time.sleep(POLL_SECONDS)
                for i, process in enumerate(processes):
                    if i not in exits and process.poll() is not None:
                        exits[i] = WorkerExit(i, process.returncode, _tail(logs[i]))
                        if exits[i].crashed:
                            _report_crash(progress, exits[i])
                shown |= _show_new_trials(study, progress, shown)
        except KeyboardInterrupt:
            _stop(processes)
            raise
        _show_new_trials(study, progress, shown)
    return [exits[i] for i in range(n_workers)]


def _show_new_trials(study: optuna.Study, progress: StudyProgress, shown: set[int]) -> set[int]:
    """Pass trials that finished since the last look to the progress view; their numbers."""
    new = [t for t in study.get_trials(deepcopy=False, states=FINISHED_STATES) if t.number not in shown]
    for trial in new:
        progress(study, trial)
    progress.refresh(study)
    return {t.number for t in new}


def _report_crash(progress: StudyProgress, ended: WorkerExit) -> None:
    how = (f"was killed by signal {-ended.returncode}" if ended.returncode < 0
           else f"exited with code {ended.returncode}")
    progress.note(f"worker {ended.index} {how}; finished trials are kept and a trial it was running is "
                  f"retried by the other workers (or by the next run). Its last output:\n{ended.log_tail}")


def _stop(processes: list[subprocess.Popen]) -> None:
    """Interrupt the workers (each fails its running trial cleanly), then wait for them."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


def _exit_with_parent() -> None:
    """End this worker at once when the main process dies (its running trial is then retried)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def worker_main(spec_path: str) -> int:
    """One worker: run trials of the study in ``spec_path``'s config until the budget is met."""
    _exit_with_parent()
    warnings.simplefilter("ignore")  # the log is shown only when the worker dies: keep its end readable
    from automl_rnn.config import validate
    from automl_rnn.engine.objective import Objective
    from automl_rnn.engine.search import build_space, quiet_libraries
    from automl_rnn.engine.study import open_study, run_trials
    from automl_rnn.plugins import get_registry
    from automl_rnn.tracking.mlflow import StudyTracker

    spec = json.loads(Path(spec_path).read_text())
    quiet_libraries()
    registry = get_registry()
    run = validate(spec["config"], registry)
    study = open_study(run)
    tracker = StudyTracker(run.tracking.uri, run.experiment_name, run.study_name)
    tracker.attach_study(spec["parent_run_id"])
    objective = Objective(run, registry, build_space(run, registry), tracker)
    try:
        run_trials(study, objective, run, note=lambda text: print(text, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
