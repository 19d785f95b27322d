"""Architecture learning: training steps each family needs to solve adding and copy.

Cells: adding at T in {100, 500, 1000} and copy memory at delay in {20, 100} (10 symbols of
8, so 40 and 120 steps long), for lstm, gru, rnn, hierarchical, dnc, ssm and attention.
Every family runs one fixed recipe in every cell (no per-cell tuning): hidden size 64, Adam
at lr 3e-3, gradient norm clipped at 1, batches of 32 fresh sequences from ``adding_batch``
/ ``copy_batch``, one CPU thread, seed 0. ``rnn`` is the plain tanh Elman network; ``ssm``
has two layers (one linear SSM layer cannot multiply a value by its marker); the other
families have one; their own parameters keep their build defaults.

Solved: a fixed validation set of 512 sequences (its own seed) is scored every
``--eval-every`` steps; a cell is solved at the first evaluation with MSE < 0.01 (adding;
answering 1.0 scores 0.167) or recall accuracy > 0.99 over all recalled symbols (copy;
chance is 0.125). The reported number is that step count. A cell stops unsolved when it
reaches ``--budget`` steps or ``--seconds`` of wall time, whichever comes first, and the
table then shows the best validation score it reached and the steps it managed.

    python benchmarks/arch_learning.py [--budget 3000] [--seconds 60] [--families lstm ssm]
                                       [--tasks adding100 adding500 adding1000 copy20 copy100]
                                       [--own ssm.state_size=64 ...]

``--own FAMILY.KEY=VALUE`` overrides one of a family's own parameters (the value is read as
JSON, else kept as text); the JSON records the parameters each family ran with.

Prints a table and writes benchmarks/results/arch_learning.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from automl_rnn.plugins import load_registry
from automl_rnn_plugins.tasks.synthetic import adding_batch, copy_batch

RESULTS = Path(__file__).parent / "results" / "arch_learning.json"
FAMILIES = ["lstm", "gru", "rnn", "hierarchical", "dnc", "ssm", "attention"]
TASKS = {"adding100": ("adding", 100), "adding500": ("adding", 500), "adding1000": ("adding", 1000),
         "copy20": ("copy", 20), "copy100": ("copy", 100)}
RECIPE = {"hidden_size": 64, "num_layers": 1, "dropout": 0.0}
OWN = {"rnn": {"nonlinearity": "tanh"}, "ssm": {"num_layers": 2}}
LR, BATCH, CLIP, VALIDATION = 3e-3, 32, 1.0, 512
COPY_LENGTH, COPY_SYMBOLS = 10, 8


class Cell:
    """One task at one length: its data, readout and 'solved' rule."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.task, self.length = TASKS[key]
        self.input_size = 2 if self.task == "adding" else COPY_SYMBOLS + 2
        self.outputs = 1 if self.task == "adding" else COPY_SYMBOLS
        self.validation = self.batch(np.random.default_rng(10_000), VALIDATION)

    def batch(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` fresh sequences and targets."""
        if self.task == "adding":
            x, y = adding_batch(rng, n, self.length)
        else:
            x, y = copy_batch(rng, n, self.length, COPY_LENGTH, COPY_SYMBOLS)
        return torch.from_numpy(x), torch.from_numpy(y)

    def predict(self, backbone: torch.nn.Module, head: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Adding: one number from the last step; copy: logits (B, symbols, length) of the last steps."""
        h = backbone(x, None)
        if self.task == "adding":
            return head(h[:, -1]).squeeze(-1)
        return head(h[:, -COPY_LENGTH:]).transpose(1, 2)

    def loss(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """MSE (adding) or cross-entropy over the recalled symbols (copy)."""
        if self.task == "adding":
            return torch.nn.functional.mse_loss(prediction, y)
        return torch.nn.functional.cross_entropy(prediction, y)

    def score(self, prediction: torch.Tensor, y: torch.Tensor) -> float:
        """Validation MSE (adding) or recall accuracy (copy)."""
        if self.task == "adding":
            return torch.nn.functional.mse_loss(prediction, y).item()
        return (prediction.argmax(1) == y).float().mean().item()

    def solved(self, score: float) -> bool:
        """MSE < 0.01 (adding) or accuracy > 0.99 (copy)."""
        return score < 0.01 if self.task == "adding" else score > 0.99

    def better(self, score: float, best: float | None) -> bool:
        """True when ``score`` beats ``best``."""
        return best is None or (score < best if self.task == "adding" else score > best)


def run_cell(family: str, cell: Cell, budget: int, seconds: float, eval_every: int) -> dict:
    """Train ``family`` on ``cell`` until solved or out of steps or time."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    backbone = load_registry(use_entry_points=True).architectures[family].build(
        cell.input_size, {**RECIPE, **OWN.get(family, {})}).train()
    head = torch.nn.Linear(backbone.output_size, cell.outputs)
    parameters = [*backbone.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=LR)
    start, best, step = time.perf_counter(), None, 0
    while step < budget and time.perf_counter() - start < seconds:
        step += 1
        x, y = cell.batch(rng, BATCH)
        loss = cell.loss(cell.predict(backbone, head, x), y)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, CLIP)
        optimizer.step()
        if step % eval_every == 0:
            with torch.no_grad():
                score = cell.score(cell.predict(backbone, head, cell.validation[0]), cell.validation[1])
            best = score if cell.better(score, best) else best
            if cell.solved(score):
                return {"family": family, "cell": cell.key, "solved_at": step, "score": score,
                        "seconds": time.perf_counter() - start}
    return {"family": family, "cell": cell.key, "solved_at": None, "steps_run": step, "best_score": best,
            "seconds": time.perf_counter() - start}


def describe(row: dict) -> str:
    """Table text: the step count, or 'not solved' with the best score and steps run."""
    if row["solved_at"] is not None:
        return str(row["solved_at"])
    best = "-" if row["best_score"] is None else f"{row['best_score']:.3f}"
    return f"no ({best} @ {row['steps_run']})"


def main() -> None:
    """Run the chosen cells, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=FAMILIES)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--budget", type=int, default=3000, help="training steps per cell")
    parser.add_argument("--seconds", type=float, default=60.0, help="wall time per cell")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--own", nargs="*", default=[], metavar="FAMILY.KEY=VALUE",
                        help="override a family's own parameter, e.g. ssm.state_size=64")
    args = parser.parse_args()
    for setting in args.own:
        name, _, text = setting.partition("=")
        family, _, key = name.partition(".")
        if not (family and key and text):
            parser.error(f"--own {setting!r}: write FAMILY.KEY=VALUE, e.g. ssm.state_size=64")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        OWN.setdefault(family, {})[key] = value
    torch.set_num_threads(1)

    rows = []
    for key in args.tasks:
        cell = Cell(key)
        for family in args.families:
            rows.append(run_cell(family, cell, args.budget, args.seconds, args.eval_every))
            print(f"{family:>12} {key:>10}: {describe(rows[-1])} ({rows[-1]['seconds']:.0f} s)", flush=True)
    table = Table(title=f"Steps to solve (batch {BATCH}; budget {args.budget} steps / {args.seconds:.0f} s per cell; "
                        "adding: val MSE < 0.01, copy: val accuracy > 0.99)")
    table.add_column("family")
    for key in args.tasks:
        table.add_column(key, justify="right")
    for family in args.families:
        by_cell = {row["cell"]: row for row in rows if row["family"] == family}
        table.add_row(family, *(describe(by_cell[key]) for key in args.tasks))
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"budget": args.budget, "seconds": args.seconds, "eval_every": args.eval_every,
                                   "recipe": {**RECIPE, "lr": LR, "batch": BATCH, "clip": CLIP, "own": OWN},
                                   "rows": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
