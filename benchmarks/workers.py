"""Parallel trials: the same small study with ``search.n_workers=1`` and ``=2``, trials per minute.

    python benchmarks/workers.py [--trials 12] [--workers 1 2] [-- extra overrides ...]

Each setting runs ``automl-rnn search`` as a fresh process in its own temp folder on a fixed
study: task=adding (T=40, 500 training sequences), a GRU of 32 units in one layer, batch 32,
4 epochs per trial, no pruning, no early stopping, no registration, one torch thread per
worker (so the figure measures process parallelism; torch's own threads do little for
models this small and slow down badly when other work shares the cores; pass
``-- trainer.num_threads=null`` for the default policy of cores // N). Throughput is measured
over the trial phase (first trial start to last trial end, read from the study), so CLI
start-up and the final evaluation, the same for every setting, do not dilute it; the whole
command's wall time is shown too. Target (issue 6): >= 1.7x with 2 workers on 2 cores.
Writes benchmarks/results/workers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "workers.json"
STUDY = ["task=adding", "task.T=40", "task.n_train=500", "task.n_val=100", "task.n_test=100",
         "search.archs=[gru]", "search.fixed.hidden_size=32", "search.fixed.num_layers=1",
         "search.fixed.batch_size=32", "search.max_epochs=4", "search.patience=0", "pruner=none",
         "tracking.register=false", "trainer.num_threads=1"]


def run_study(n_trials: int, n_workers: int, extra: list[str]) -> dict[str, float]:
    """Run the study with ``n_workers`` in a fresh folder; its trial-phase throughput and wall time."""
    replaced = {o.split("=", 1)[0] for o in extra}
    study = [o for o in STUDY if o.split("=", 1)[0] not in replaced]
    with tempfile.TemporaryDirectory(prefix="automl_rnn_bench_") as folder:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "automl_rnn.cli", "search", *study, f"search.n_trials={n_trials}",
             f"search.n_workers={n_workers}", *extra],
            cwd=folder, env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"the study with {n_workers} worker(s) failed:\n{done.stderr[-3000:]}")
        trials = optuna.load_study(study_name="adding", storage=f"sqlite:///{folder}/automl_rnn.db").trials
    finished = [t for t in trials if t.datetime_complete is not None]
    phase = (max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)).total_seconds()
    return {"workers": n_workers, "trials": len(finished), "trial_phase_s": phase,
            "trials_per_minute": 60 * len(finished) / phase, "command_wall_s": wall}


def main() -> None:
    """Run every setting once, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("overrides", nargs="*", help="extra automl-rnn overrides, after --")
    args = parser.parse_args()
    rows = [run_study(args.trials, n, args.overrides) for n in args.workers]
    base = rows[0]["trials_per_minute"]
    for row in rows:
        row["speed_up"] = row["trials_per_minute"] / base
    load = os.getloadavg()[0]
    table = Table(title=f"{args.trials} trials of task=adding on {os.cpu_count()} cores (load average {load:.1f})")
    for column in ("workers", "trial phase", "trials/min", "speed-up", "whole command"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["workers"]), f"{row['trial_phase_s']:.1f} s", f"{row['trials_per_minute']:.1f}",
                      f"{row['speed_up']:.2f}x", f"{row['command_wall_s']:.1f} s")
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"cores": os.cpu_count(), "load_average": load, "runs": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
