"""Engine overhead: a trial's training epochs vs a plain PyTorch loop on the same LSTM and data.

Both sides train the same model (an LSTM backbone, hidden 64, one layer, under the same
classifier head) on the same 2,048 sequences of length 50 (batch 64, Adam, one CPU thread)
and run a validation pass after every epoch. The engine side is ``train_candidate``, the
function every trial runs (Lightning Trainer, callbacks, metrics, early stopping); the plain
side is the loop a user would write by hand. Rounds alternate between the two, so machine
noise hits both alike; the first epoch of every run is a warm-up and not counted.

    python benchmarks/engine_overhead.py [--rounds 3] [--epochs 6]

Prints a table and writes benchmarks/results/engine_overhead.json. Target: ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, TensorDataset

from automl_rnn import hookimpl
from automl_rnn.compose import compose_job, normalise_overrides
from automl_rnn.config import validate
from automl_rnn.data import SequenceDataset
from automl_rnn.engine.objective import train_candidate
from automl_rnn.engine.search import quiet_libraries
from automl_rnn.nn import SequenceClassifier, Standardize
from automl_rnn.plugins import load_registry
from automl_rnn.types import Task, TaskData

RESULTS = Path(__file__).parent / "results" / "engine_overhead.json"
N_TRAIN, N_VAL, LENGTH, FEATURES, HIDDEN, BATCH = 2048, 512, 50, 4, 64, 64
PARAMS = {"arch": "lstm", "hidden_size": HIDDEN, "num_layers": 1, "dropout": 0.0, "lr": 1e-3,
          "weight_decay": 0.0, "optimizer": "adam", "scheduler": "constant", "batch_size": BATCH}


def make_arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sequences whose class is the sign of the sum of their first feature."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_TRAIN + N_VAL, LENGTH, FEATURES)).astype(np.float32)
    return x, (x[..., 0].sum(axis=1) > 0).astype(np.int64)


@dataclass(frozen=True)
class BenchOptions:
    """The benchmark task has no options."""


def prepare(options: BenchOptions, params) -> TaskData:
    """The arrays of ``make_arrays`` as a TaskData (test = validation; it is never read here)."""
    from torchmetrics.classification import MulticlassAccuracy

    x, y = make_arrays()
    train, val = SequenceDataset(x[:N_TRAIN], y[:N_TRAIN]), SequenceDataset(x[N_TRAIN:], y[N_TRAIN:])
    return TaskData(
        train=train, val=val, test=val, input_size=FEATURES,
        build_model=lambda backbone: build_head(backbone, x[:N_TRAIN]),
        loss=torch.nn.functional.cross_entropy,
        metrics=lambda: {"accuracy": MulticlassAccuracy(2, average="micro")},
    )


def build_head(backbone, train_x: np.ndarray) -> SequenceClassifier:
    """The classifier both sides train."""
    return SequenceClassifier(backbone, Standardize(train_x.mean(axis=(0, 1)), train_x.std(axis=(0, 1))), 2)


class BenchPlugin:
    """Registers the benchmark task."""

    @hookimpl
    def automl_rnn_register_tasks(self, register) -> None:
        """Register ``overhead_bench``."""
        register(Task(name="overhead_bench", description="engine overhead benchmark", metric="accuracy",
                      direction="maximize", requires_causal=False, prepare=prepare, options=BenchOptions))


def engine_epochs(epochs: int) -> tuple[list[float], float]:
    """Epoch times of one trial through the engine, and its whole wall time."""
    registry = load_registry([("bench", BenchPlugin())])
    config, problems = compose_job(normalise_overrides([
        f"search.max_epochs={epochs}", "search.patience=0", "trainer.num_threads=1", "search.archs=[lstm]"]))
    assert not problems, problems
    config["task"] = {"name": "overhead_bench"}
    run = validate(config, registry)
    started = time.perf_counter()
    candidate = train_candidate(run, registry, PARAMS, seed=0)
    return [row["epoch_seconds"] for row in candidate.history], time.perf_counter() - started


def plain_epochs(epochs: int) -> tuple[list[float], float]:
    """Epoch times of the hand-written loop, and its whole wall time."""
    started = time.perf_counter()
    torch.manual_seed(0)
    registry = load_registry(use_entry_points=True)
    x, y = make_arrays()
    backbone = registry.architectures["lstm"].build(FEATURES, PARAMS)
    model = build_head(backbone, x[:N_TRAIN])
    optimizer = torch.optim.Adam(model.parameters(), lr=PARAMS["lr"])
    train = DataLoader(TensorDataset(torch.from_numpy(x[:N_TRAIN]), torch.from_numpy(y[:N_TRAIN])),
                       batch_size=BATCH, shuffle=True)
    val = DataLoader(TensorDataset(torch.from_numpy(x[N_TRAIN:]), torch.from_numpy(y[N_TRAIN:])), batch_size=256)
    times = []
    for _ in range(epochs):
        epoch_started = time.perf_counter()
        model.train()
        for xb, yb in train:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xb, None), yb)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in val:
                correct += int((model(xb, None).argmax(-1) == yb).sum())
        times.append(time.perf_counter() - epoch_started)
    return times, time.perf_counter() - started


def main() -> None:
    """Run the rounds, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    quiet_libraries()
    torch.set_num_threads(1)
    engine, plain, engine_wall, plain_wall = [], [], [], []
    for _ in range(args.rounds):
        for side, epochs_out, wall_out in ((engine_epochs, engine, engine_wall), (plain_epochs, plain, plain_wall)):
            times, wall = side(args.epochs)
            epochs_out.extend(times[1:])
            wall_out.append(wall)
    result = {
        "setup": {"hidden": HIDDEN, "length": LENGTH, "batch": BATCH, "n_train": N_TRAIN, "n_val": N_VAL,
                  "features": FEATURES, "threads": 1, "rounds": args.rounds, "epochs": args.epochs,
                  "torch": torch.__version__},
        "engine_epoch_s": statistics.median(engine), "plain_epoch_s": statistics.median(plain),
        "engine_trial_s": statistics.median(engine_wall), "plain_trial_s": statistics.median(plain_wall),
    }
    result["epoch_ratio"] = result["engine_epoch_s"] / result["plain_epoch_s"]
    result["trial_ratio"] = result["engine_trial_s"] / result["plain_trial_s"]
    table = Table(title="Engine overhead (LSTM h64, seq 50, batch 64, 1 thread; medians)")
    for column in ("", "engine", "plain PyTorch", "ratio"):
        table.add_column(column, justify="right")
    table.add_row("epoch (train + val), s", f"{result['engine_epoch_s']:.3f}", f"{result['plain_epoch_s']:.3f}",
                  f"{result['epoch_ratio']:.3f}")
    table.add_row(f"whole trial ({args.epochs} epochs), s", f"{result['engine_trial_s']:.2f}",
                  f"{result['plain_trial_s']:.2f}", f"{result['trial_ratio']:.3f}")
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"target: epoch ratio <= 1.10 -> {'met' if result['epoch_ratio'] <= 1.10 else 'NOT met'}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
