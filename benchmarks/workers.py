"""Parallel trials: the same small study with ``search.n_workers=1`` and ``=2``, trials per minute.

    python benchmarks/workers.py [--trials 24] [--epochs 20] [--repeats 3] [--workers 1 2] [-- overrides ...]

Each setting runs ``automl-rnn search`` as a fresh process in its own temp folder on a fixed
study: task=adding (T=40, 500 training sequences), a GRU of 32 units in one layer, batch 32,
``--epochs`` epochs per trial (about 3-4 s of training), no pruning, no early stopping, no
registration, one torch thread per
worker (so the figure measures process parallelism; torch's own threads do little for
models this small and slow down badly when other work shares the cores; pass
``-- trainer.num_threads=null`` for the default policy of cores // N). Throughput is measured
over the trial phase (first trial start to last trial end, read from the study), so CLI
start-up and the final evaluation, the same for every setting, do not dilute it; the whole
command's wall time is shown too. The settings alternate (1, 2, 1, 2, ... for ``--repeats``
rounds), so a change in the machine's load hits both alike, and the speed-up of each round is
its own 2-worker figure over its own 1-worker figure; the summary gives their median.
Trials of about a second (the old default, ``--trials 12 --epochs 4``) make the ratio swing
with a second's lag in the second worker's start. Target (issue 6): >= 1.7x with 2 workers
on 2 cores. Writes benchmarks/results/workers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
         "search.fixed.batch_size=32", "search.patience=0", "pruner=none",
         "tracking.register=false", "trainer.num_threads=1"]


def run_study(n_trials: int, n_workers: int, epochs: int, extra: list[str]) -> dict[str, float]:
    """Run the study with ``n_workers`` in a fresh folder; its trial-phase throughput and wall time."""
    replaced = {o.split("=", 1)[0] for o in extra}
    study = [o for o in STUDY if o.split("=", 1)[0] not in replaced]
    with tempfile.TemporaryDirectory(prefix="automl_rnn_bench_") as folder:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "automl_rnn.cli", "search", *study, f"search.n_trials={n_trials}",
             f"search.max_epochs={epochs}", f"search.n_workers={n_workers}", *extra],
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
    """Run the settings in alternating rounds, print the table and the median speed-ups, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every setting, alternating")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("overrides", nargs="*", help="extra automl-rnn overrides, after --")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    for round_number in range(1, args.repeats + 1):
        round_rows = [run_study(args.trials, n, args.epochs, args.overrides) for n in args.workers]
        for row in round_rows:
            row["round"] = round_number
            row["speed_up"] = row["trials_per_minute"] / round_rows[0]["trials_per_minute"]
        rows += round_rows
    load_after = os.getloadavg()[0]
    table = Table(title=f"{args.trials} trials of task=adding, {args.epochs} epochs each, on {os.cpu_count()} "
                        f"cores (load average {load_before:.1f} before, {load_after:.1f} after)")
    for column in ("round", "workers", "trial phase", "trials/min", "speed-up", "whole command"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["round"]), str(row["workers"]), f"{row['trial_phase_s']:.1f} s",
                      f"{row['trials_per_minute']:.1f}", f"{row['speed_up']:.2f}x", f"{row['command_wall_s']:.1f} s")
    Console().print(table)
    medians = {n: statistics.median(r["speed_up"] for r in rows if r["workers"] == n) for n in args.workers}
    for n, median in medians.items():
        if n != args.workers[0]:
            print(f"{n} workers: median speed-up {median:.2f}x over {args.workers[0]} "
                  f"(target for 2 workers: >= 1.7x)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"cores": os.cpu_count(), "load_average": [load_before, load_after],
                                   "epochs": args.epochs, "median_speed_up": medians, "runs": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
