"""Quality on the shipped data: full studies through the CLI, as a user runs them.

For each task, runs ``automl-rnn search task=<task> search.n_trials=<n> seed=<s>`` in a fresh
folder (its own Optuna and MLflow stores), then reads the chosen model's test score from the
study's MLflow run. Reports the test score, the study's wall time and its trial states.

    python benchmarks/quality.py [--tasks gunpoint italypower airline] [--trials 30] [--seeds 0]
        [-- override ...]     # e.g. -- search.refit=true (after "--", since --seeds takes a list)

Prints a table and adds the rows to benchmarks/results/quality.json (replacing earlier runs
of the same task, seed, trial count and overrides). Targets (issue 3): gunpoint and
italypower test accuracy >= 0.97; airline test MAE < 18.5 (AutoARIMA on the same split).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "quality.json"
TARGETS = {"gunpoint": ("accuracy", ">=", 0.97), "italypower": ("accuracy", ">=", 0.97),
           "basicmotions": ("accuracy", ">=", 0.97), "airline": ("mae", "<", 18.5)}


def run_study(task: str, trials: int, seed: int, extra: list[str]) -> dict:
    """One study in a fresh folder; its test metrics, wall time and trial states."""
    with tempfile.TemporaryDirectory(prefix=f"quality-{task}-") as folder:
        command = [sys.executable, "-m", "automl_rnn.cli", "search", f"task={task}",
                   f"search.n_trials={trials}", f"seed={seed}", *extra]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        studies = mlflow.search_runs(search_all_experiments=True,
                                     filter_string="tags.`automl_rnn.role` = 'study'", output_format="list")
        (study,) = studies
        trial_runs = mlflow.search_runs(search_all_experiments=True,
                                        filter_string="tags.`automl_rnn.role` = 'trial'", output_format="list")
        states: dict[str, int] = {}
        epochs = 0
        for trial in trial_runs:
            states[trial.data.tags.get("state", "?")] = states.get(trial.data.tags.get("state", "?"), 0) + 1
            epochs += len(mlflow.MlflowClient().get_metric_history(trial.info.run_id, "val_loss"))
        metric = TARGETS[task][0]
        return {"task": task, "seed": seed, "trials": trials, "overrides": extra, "seconds": seconds, "states": states,
                "epochs_trained": epochs, "test": study.data.metrics[f"test_{metric}"],
                "chosen_val": study.data.metrics.get(f"chosen_val_{metric}"),
                "best_trial": int(study.data.metrics.get("best_trial", -1))}


def merged_rows(new_rows: list[dict]) -> list[dict]:
    """The rows already in the results file, with those of the same study set replaced by ``new_rows``."""
    key = lambda row: (row["task"], row["seed"], row["trials"], tuple(row.get("overrides", ())))  # noqa: E731
    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    fresh = {key(row) for row in new_rows}
    return [row for row in old if key(row) not in fresh] + new_rows


def meets(task: str, score: float) -> bool:
    """True when ``score`` meets the task's target."""
    _, comparison, target = TARGETS[task]
    return score >= target if comparison == ">=" else score < target


def main() -> None:
    """Run every (task, seed), print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["gunpoint", "italypower", "airline"])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("overrides", nargs="*", help="extra CLI overrides for every study")
    args = parser.parse_args()
    rows = []
    for task in args.tasks:
        for seed in args.seeds:
            row = run_study(task, args.trials, seed, args.overrides)
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = Table(title=f"Quality: {args.trials} trials per study, test split read once")
    for column in ("task", "seed", "test metric", "target", "met", "chosen val", "wall time", "trials"):
        table.add_column(column)
    for row in rows:
        metric, comparison, target = TARGETS[row["task"]]
        table.add_row(row["task"], str(row["seed"]), f"{metric} {row['test']:.4f}", f"{comparison} {target}",
                      "yes" if meets(row["task"], row["test"]) else "NO", f"{row['chosen_val']:.4f}",
                      f"{row['seconds'] / 60:.1f} min",
                      ", ".join(f"{k.lower()} {v}" for k, v in sorted(row["states"].items())))
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": merged_rows(rows)}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
