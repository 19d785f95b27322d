"""Which TEST series every model gets wrong: the shared errors of one configuration's seeds.

Trains one fixed configuration of a UCR task with several seeds, exactly as a trial trains
(`train_candidate`: early stopping on the validation split, best weights restored; seed s
is the seed of trial 0 of ``automl-rnn search ... seed=s``), fits a ridge classifier on the
same training split (``linear_reference.ridge``), and counts for every TEST series how many
of the models misclassify it.

Series that every seed gets wrong are errors that choosing among such models cannot remove;
the ridge's errors and the nearest training series (Euclidean) say whether they are peculiar
to the recurrent models or to the data (a series whose nearest training series carries the other
label looks, to the training data, like the other class).

    python benchmarks/shared_errors.py [--task italypower] [--seeds 6] [-- override ...]
        # e.g. -- task.noise=0   (after "--", overrides of the task's run, as on the CLI)

Prints a table and writes benchmarks/results/shared_errors_<task>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from automl_rnn.compose import compose_job
from automl_rnn.config import validate
from automl_rnn.engine.objective import train_candidate
from automl_rnn.plugins import load_registry
from linear_reference import flat, ridge  # this folder's ridge reference

RESULTS = Path(__file__).parent / "results"
REFERENCE = {"arch": "gru", "hidden_size": 64, "num_layers": 1, "dropout": 0.1, "lr": 0.003, "weight_decay": 1e-4,
             "optimizer": "adam", "scheduler": "constant", "grad_clip": 1.0, "batch_size": 16, "task.patch": 1}
"""The per-model reference configuration of docs/benchmarks.md ("Training noise")."""


def wrong_by_model(task: str, seeds: int, overrides: list[str]) -> tuple[dict[str, list[int]], dict]:
    """Indices of the misclassified TEST series: one entry per seed, and one for the ridge."""
    registry = load_registry()
    config, problems = compose_job([f"task={task}", "trainer.num_threads=1", *overrides])
    if problems:
        raise SystemExit("\n".join(problems))
    run = validate(config, registry)
    models = {}
    for seed in range(seeds):
        candidate = train_candidate(run, registry, REFERENCE, seed)
        models[f"seed {seed}"] = candidate.module.eval()
        Console().print(f"seed {seed}: trained (best epoch {candidate.best_epoch})")
    train, test = candidate.data.train, candidate.data.test
    with torch.no_grad():
        inputs = torch.as_tensor(np.stack(test.xs))
        wrong = {name: np.flatnonzero(module.model(inputs, None).argmax(-1).numpy() != test.ys).tolist()
                 for name, module in models.items()}
    x_train, x_test = flat(train.xs), flat(test.xs)
    wrong["ridge"] = np.flatnonzero(ridge(x_train, train.ys).predict(x_test) != test.ys).tolist()
    nearest_label = train.ys[((x_test[:, None, :] - x_train[None, :, :]) ** 2).sum(-1).argmin(1)]
    return wrong, {"n_test": len(test), "n_train": len(train),
                   "nearest_other_label": np.flatnonzero(nearest_label != test.ys).tolist()}


def summary(wrong: dict[str, list[int]], facts: dict) -> dict:
    """The shared errors and how far they cap accuracy."""
    models = [k for k in wrong if k != "ridge"]
    times_wrong = Counter(i for k in models for i in wrong[k])
    shared = sorted(i for i, n in times_wrong.items() if n == len(models))
    n_test = facts["n_test"]
    return {
        "errors": {k: len(v) for k, v in wrong.items()},
        "mean_model_accuracy": 1 - statistics.mean(len(wrong[k]) for k in models) / n_test,
        "shared": shared,
        "shared_also_ridge": len(set(shared) & set(wrong["ridge"])),
        "shared_nearest_other_label": len(set(shared) & set(facts["nearest_other_label"])),
        "accuracy_if_only_shared_wrong": 1 - len(shared) / n_test,
        "series_by_models_wrong": dict(sorted(Counter(times_wrong.values()).items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="italypower")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("overrides", nargs="*", help="task run overrides, after --")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    wrong, facts = wrong_by_model(args.task, args.seeds, args.overrides)
    result = summary(wrong, facts)
    n_test = facts["n_test"]
    table = Table(title=f"{args.task}: TEST series misclassified ({n_test} series, {facts['n_train']} training)")
    for column in ("model", "wrong", "accuracy", "of them wrong for every seed"):
        table.add_column(column)
    for name, indices in wrong.items():
        table.add_row(name, str(len(indices)), f"{1 - len(indices) / n_test:.4f}",
                      str(len(set(indices) & set(result["shared"]))))
    Console().print(table)
    shared = len(result["shared"])
    Console().print(f"{shared} series are wrong for every seed; the ridge gets {result['shared_also_ridge']} of them "
                    f"wrong, and for {result['shared_nearest_other_label']} the nearest training series has the "
                    f"other label. A model wrong on those alone scores {result['accuracy_if_only_shared_wrong']:.4f}; "
                    f"the seeds average {result['mean_model_accuracy']:.4f}. Series by number of seeds wrong: "
                    f"{result['series_by_models_wrong']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"shared_errors_{args.task}.json"
    path.write_text(json.dumps({"task": args.task, "overrides": args.overrides, "configuration": REFERENCE,
                                "wrong": wrong, **facts, **result}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
