"""Pruning: epochs spent and test accuracy with and without Hyperband, on the same seeds.

For each seed, runs ``automl-rnn search task=gunpoint search.n_trials=<n> seed=<s>
pruner=<p>`` for each pruner (default: ``none`` and ``hyperband``) in a fresh folder, then
reads the study's epoch account (``engine.study.epoch_account``: epochs trained by all
trials) and the chosen model's test accuracy (the study's MLflow run).

    python benchmarks/pruning.py [--seeds 0 1 2] [--n-trials 30] [--max-epochs 100]
        [--task gunpoint] [--pruners none hyperband] [--keep DIR] [-- override ...]

A pruner may carry its own options, ``hyperband:min_resource=2,reduction_factor=4``, to
compare settings. Adds the rows to benchmarks/results/pruning.json (replacing earlier runs of
the same task, seed, pruner, trial count, epoch budget and overrides), then prints the table
of every stored row of these settings and seeds, each pruner compared with the first of
``--pruners`` on the same seed; so pruners run by separate (e.g. parallel) invocations are
compared too (``--report`` prints that table without running anything). ``--keep DIR`` keeps
each study's folder (Optuna and MLflow databases) as ``DIR/<task>-<pruner>-s<seed>``. Target (issue 6):
Hyperband trains at most half the epochs of no pruning, and its best test accuracy stays
within 1 point (0.01) of no pruning's, seed by seed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
from rich.console import Console
from rich.table import Table

from automl_rnn.engine.study import epoch_account

RESULTS = Path(__file__).parent / "results" / "pruning.json"
MAX_EPOCH_RATIO = 0.5
MAX_ACCURACY_DROP = 0.01


def pruner_overrides(spec: str) -> list[str]:
    """``hyperband:min_resource=2,reduction_factor=4`` -> the CLI overrides of that pruner."""
    name, _, options = spec.partition(":")
    return [f"pruner={name}"] + [f"pruner.{option}" for option in options.split(",") if option]


def study_folder(keep: Path | None, name: str):
    """A fresh folder for one study: ``keep/name`` (kept), or a temporary one."""
    if keep is None:
        return tempfile.TemporaryDirectory(prefix=f"pruning-{name}-")
    folder = keep / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return contextlib.nullcontext(str(folder))


def run_study(task: str, pruner: str, seed: int, trials: int, max_epochs: int, extra: list[str],
              keep: Path | None = None) -> dict:
    """One study in a fresh folder: epochs trained, epochs pruning saved, test accuracy, states."""
    with study_folder(keep, f"{task}-{pruner.replace(':', '-')}-s{seed}") as folder:
        command = [sys.executable, "-m", "automl_rnn.cli", "search", f"task={task}", *pruner_overrides(pruner),
                   f"search.n_trials={trials}", f"search.max_epochs={max_epochs}", f"seed={seed}",
                   "tracking.register=false", *extra]
        if not any(o.startswith("trainer.num_threads=") for o in extra):
            command.append("trainer.num_threads=1")  # tiny models on a shared machine: one thread is faster
        started = time.perf_counter()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        storage = f"sqlite:///{folder}/automl_rnn.db"
        (name,) = optuna.get_all_study_names(storage)
        study_trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        account = epoch_account(study_trials)
        states: dict[str, int] = {}
        for t in study_trials:
            states[t.state.name] = states.get(t.state.name, 0) + 1
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        (parent,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                       filter_string="tags.`automl_rnn.role` = 'study'")
        options = {k.removeprefix("pruner."): v for k, v in parent.data.params.items() if k.startswith("pruner.")}
        return {"task": task, "pruner": pruner, "pruner_options": options, "seed": seed, "trials": trials, "max_epochs": max_epochs,
                "overrides": extra, "epochs_trained": account.trained, "epochs_saved": account.saved,
                "test_accuracy": parent.data.metrics["test_accuracy"],
                "chosen_val_accuracy": parent.data.metrics.get("chosen_val_accuracy"),
                "states": states, "seconds": seconds}


def study_key(row: dict) -> tuple:
    """What identifies a study of this benchmark."""
    return (row["task"], row["pruner"], row["seed"], row["trials"], row["max_epochs"], tuple(row["overrides"]))


def merged_rows(new_rows: list[dict]) -> list[dict]:
    """The rows already in the results file, with those of the same study replaced by ``new_rows``."""
    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    fresh = {study_key(row) for row in new_rows}
    return [row for row in old if study_key(row) not in fresh] + new_rows


def comparisons(rows: list[dict], baseline: str) -> list[dict]:
    """Per seed and pruner other than ``baseline``: the epoch ratio, the accuracy change, and
    whether the target is met."""
    by_key = {(row["seed"], row["pruner"]): row for row in rows}
    found = []
    for row in rows:
        base = by_key.get((row["seed"], baseline))
        if row["pruner"] == baseline or base is None:
            continue
        ratio = row["epochs_trained"] / max(1, base["epochs_trained"])
        change = row["test_accuracy"] - base["test_accuracy"]
        found.append({"seed": row["seed"], "pruner": row["pruner"], "epoch_ratio": ratio, "accuracy_change": change,
                      "met": ratio <= MAX_EPOCH_RATIO and change >= -MAX_ACCURACY_DROP})
    return found


def main() -> None:
    """Run every (seed, pruner), print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="gunpoint")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--pruners", nargs="+", default=["none", "hyperband"])
    parser.add_argument("--report", action="store_true", help="only print the stored rows of these settings")
    parser.add_argument("--keep", type=Path, help="keep each study's folder under this directory")
    parser.add_argument("overrides", nargs="*", help="extra CLI overrides for every study (after --)")
    args = parser.parse_args()
    new_rows = []
    for seed in [] if args.report else args.seeds:
        for pruner in args.pruners:
            row = run_study(args.task, pruner, seed, args.n_trials, args.max_epochs, args.overrides, args.keep)
            new_rows.append(row)
            print(json.dumps(row), flush=True)
    stored = merged_rows(new_rows)
    if new_rows:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"rows": stored}, indent=2))
    setting = (args.task, args.n_trials, args.max_epochs, tuple(args.overrides))
    rows = sorted((r for r in stored if (r["task"], r["trials"], r["max_epochs"], tuple(r["overrides"])) == setting
                   and r["seed"] in args.seeds), key=lambda r: (r["seed"], r["pruner"] != args.pruners[0], r["pruner"]))
    baseline = args.pruners[0]
    compared = {(c["seed"], c["pruner"]): c for c in comparisons(rows, baseline)}
    table = Table(title=f"Pruning on {args.task}: {args.n_trials} trials, max {args.max_epochs} epochs per trial")
    for column in ("seed", "pruner", "epochs trained", f"vs {baseline}", "test accuracy", "change",
                   "target met", "trials", "wall time"):
        table.add_column(column)
    for row in rows:
        c = compared.get((row["seed"], row["pruner"]))
        table.add_row(str(row["seed"]), row["pruner"], str(row["epochs_trained"]),
                      f"{c['epoch_ratio']:.2f}×" if c else "-", f"{row['test_accuracy']:.4f}",
                      f"{100 * c['accuracy_change']:+.1f} pt" if c else "-",
                      ("yes" if c["met"] else "NO") if c else "-",
                      ", ".join(f"{k.lower()} {v}" for k, v in sorted(row["states"].items())),
                      f"{row['seconds'] / 60:.1f} min")
    Console(width=160).print(table)
    print(json.dumps({"comparisons": list(compared.values())}))
    if new_rows:
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
