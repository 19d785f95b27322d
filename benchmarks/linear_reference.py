"""A linear reference for the UCR classification targets: ridge regression classifiers on the raw series.

Fits scikit-learn's ``RidgeClassifierCV`` (alpha chosen by leave-one-out over 1e-3..1e3)
on the flattened series of a bundled UCR dataset and scores it on the TEST file, the split
the studies are scored on. Two training sets:

- ``task split, seed s``: the cases the ``ucr`` tasks train on with ``task.split_seed=s``
  (``val_fraction`` of each class held out, as in a study; the default split is seed 0);
- ``whole training file``: every TRAIN case (what a refit trains on).

It gives the scale of the issue 3 targets: what the simplest model reaches on the same data.

    python benchmarks/linear_reference.py [--datasets ItalyPowerDemand GunPoint] [--split-seeds 10]
                                          [--val-fraction 0.2]

Prints a table and writes benchmarks/results/linear_reference.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import RidgeClassifierCV

from automl_rnn_plugins.tasks.ucr import load_archive, stratified_split

RESULTS = Path(__file__).parent / "results" / "linear_reference.json"
ALPHAS = np.logspace(-3, 3, 13)


def flat(cases) -> np.ndarray:
    """(n, T * D) matrix of equal-length cases."""
    return np.stack([case.reshape(-1) for case in cases])


def ridge(x_train: np.ndarray, y_train: np.ndarray) -> RidgeClassifierCV:
    """A ridge classifier fitted on (n, T * D) cases, alpha chosen by leave-one-out over ``ALPHAS``."""
    return RidgeClassifierCV(alphas=ALPHAS).fit(x_train, y_train)


def test_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """TEST accuracy of a ridge classifier fitted on the given training cases."""
    return float((ridge(x_train, y_train).predict(x_test) == y_test).mean())


def reference(dataset: str, split_seeds: int, val_fraction: float) -> dict:
    """Accuracies on the task's splits (one per split seed) and on the whole training file."""
    (train_cases, train_labels), (test_cases, test_labels) = load_archive(dataset)
    x_train, x_test = flat(train_cases), flat(test_cases)
    by_seed = []
    for seed in range(split_seeds):
        kept, _ = stratified_split(train_labels, val_fraction, seed)
        by_seed.append(test_accuracy(x_train[kept], train_labels[kept], x_test, test_labels))
    return {"dataset": dataset, "val_fraction": val_fraction, "task_split_by_seed": by_seed,
            "n_task_train": int(len(kept)), "n_train": int(len(x_train)),
            "whole_training_file": test_accuracy(x_train, train_labels, x_test, test_labels)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ItalyPowerDemand", "GunPoint"])
    parser.add_argument("--split-seeds", type=int, default=10)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    args = parser.parse_args()
    rows = [reference(name, args.split_seeds, args.val_fraction) for name in args.datasets]
    table = Table(title="Ridge classifier on the raw series: TEST accuracy")
    for column in ("dataset", "task split, seed 0", f"task splits, seeds 0-{args.split_seeds - 1}: mean (min-max)",
                   "whole training file"):
        table.add_column(column)
    for row in rows:
        seeds = row["task_split_by_seed"]
        table.add_row(f"{row['dataset']} ({row['n_task_train']} / {row['n_train']} cases)", f"{seeds[0]:.4f}",
                      f"{statistics.mean(seeds):.4f} ({min(seeds):.4f}-{max(seeds):.4f})",
                      f"{row['whole_training_file']:.4f}")
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
