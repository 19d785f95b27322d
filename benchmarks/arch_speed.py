"""Architecture speed: time of one training step vs sequence length, and peak memory at T=4096.

Every family is built at hidden size 64, one layer, its own parameters at their typical
values (``TYPICAL``: the build defaults, passed explicitly and printed in the table), and
trained on a random (16, T, 8) batch (made before the clock starts) with a linear readout of
every step and Adam, on one CPU thread. A step is forward + backward + optimiser step; the
time is the median of ``--repeats`` steps after one warm-up step, as CPU time of the process
(``time.process_time``): on one thread that equals wall time on an idle machine, and it
leaves out the time spent waiting for a core when other jobs share the machine (wall time is
recorded in the JSON too).
The load average before and after the run is printed and stored.

Memory handling: the measuring processes keep freed memory for reuse, as every trial's training
process does (``trainer.keep_freed_memory``, ``automl_rnn/engine/cpu_memory.py``);
``--default-malloc`` measures with glibc's defaults instead.

Rounds: every family is measured ``--rounds`` times, in alternating fresh subprocesses (all
families once, then all again, ...), and each time and memory figure is the median over the
rounds; t(4096)/t(1024) is the median of each round's own ratio (both lengths measured in the
same process). A step at T=4096 allocates tens of MB; whether the C library hands that
memory back to the kernel between steps (and takes page faults to get it again) varies from
process to process by up to 30% here, so one process per family is not enough for a ratio.

Memory: each family runs in a fresh subprocess. After a warm-up step at T=16 (so libraries
and allocator pools are loaded) the process notes its resident set size, runs one training
step at T=4096 and reads its peak resident set size (``getrusage`` ``ru_maxrss``); the
difference is the step's peak memory: activations kept for backward, gradients, optimiser
state and temporaries, as the operating system saw them. (tracemalloc does not see torch's
allocations, and the profiler's per-operator counts do not give one peak.)

    python benchmarks/arch_speed.py [--families lstm ssm ...] [--lengths 256 1024 4096] [--repeats 3]
                                    [--rounds 3]

Prints a table and writes benchmarks/results/arch_speed.json. Targets (issue 5): ssm at
T=4096 at least 5x faster than lstm, and time(4096)/time(1024) of ssm at most 4 (linear).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "arch_speed.json"
BATCH, HIDDEN, FEATURES = 16, 64, 8
TYPICAL = {
    "ssm": {"state_size": 16, "dt_min": 1e-3, "dt_max": 0.1},
    "dnc": {"memory_slots": 16, "word_size": 16, "read_heads": 1},
    "attention": {"score": "dot", "attention_size": 32},
    "hierarchical": {"chunk_size": 8, "upper_size": 32},
    "mamba": {"d_state": 16, "expand": 2},
    "rnn": {"nonlinearity": "tanh"},
}
"""Each family's own parameters for the benchmark (their build defaults); others: build defaults."""


def batch(steps: int):
    """A random (BATCH, steps, FEATURES) input batch."""
    import torch

    return torch.randn(BATCH, steps, FEATURES)


def training_step(backbone, head, optimizer, x) -> None:
    """One forward + backward + Adam step on the batch x."""
    out = head(backbone(x, None))
    loss = out.pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def measure(family: str, lengths: list[int], repeats: int, keep_memory: bool = True) -> dict:
    """Peak memory at the longest length, then step times at every length (run in a subprocess)."""
    import torch

    from automl_rnn.engine.cpu_memory import keep_freed_memory
    from automl_rnn.plugins import load_registry

    if keep_memory:
        keep_freed_memory()  # as every trial's training process does (trainer.keep_freed_memory)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    backbone = load_registry(use_entry_points=True).architectures[family].build(
        FEATURES, {"hidden_size": HIDDEN, "num_layers": 1, "dropout": 0.0, **TYPICAL.get(family, {})}).train()
    head = torch.nn.Linear(backbone.output_size, 1)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-3)
    training_step(backbone, head, optimizer, batch(16))
    longest = batch(max(lengths))
    before = _current_rss_mb()
    training_step(backbone, head, optimizer, longest)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    seconds, wall = {}, {}
    for steps in lengths:
        x = batch(steps)
        training_step(backbone, head, optimizer, x)
        cpu_times, wall_times = [], []
        for _ in range(repeats):
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            training_step(backbone, head, optimizer, x)
            cpu_times.append(time.process_time() - start_cpu)
            wall_times.append(time.perf_counter() - start_wall)
        seconds[steps], wall[steps] = statistics.median(cpu_times), statistics.median(wall_times)
    return {"family": family, "params": TYPICAL.get(family, {}), "seconds": seconds, "wall_seconds": wall,
            "peak_mb": peak_mb, "peak_at": max(lengths)}


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.1f}" for x in load)


def _current_rss_mb() -> float:
    """Resident set size of this process now, in MB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def run_family(family: str, lengths: list[int], repeats: int, timeout: float, keep_memory: bool) -> dict:
    """``measure`` in a fresh interpreter, so each family's peak memory is its own."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import arch_speed; "
            f"print(json.dumps(arch_speed.measure({family!r}, {lengths!r}, {repeats}, {keep_memory})))")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"family": family, "error": f"over {timeout:.0f} s"}
    if done.returncode:
        return {"family": family, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["seconds"] = {int(k): v for k, v in row["seconds"].items()}
    row["wall_seconds"] = {int(k): v for k, v in row["wall_seconds"].items()}
    return row


def median_row(measured: list[dict]) -> dict:
    """One family's rounds -> its row: the median of every figure, and the rounds themselves."""
    if "error" in measured[-1]:
        return measured[-1]
    row = dict(measured[0])
    for key in ("seconds", "wall_seconds"):
        row[key] = {steps: statistics.median(m[key][steps] for m in measured) for steps in measured[0][key]}
    row["peak_mb"] = statistics.median(m["peak_mb"] for m in measured)
    row["rounds"] = [{"seconds": m["seconds"], "peak_mb": m["peak_mb"]} for m in measured]
    return row


def main() -> None:
    """Measure the chosen families, print the table, write the JSON and check the ssm targets."""
    from rich.console import Console
    from rich.table import Table

    from automl_rnn.plugins import load_registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=sorted(load_registry(use_entry_points=True).architectures))
    parser.add_argument("--lengths", nargs="+", type=int, default=[256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurements of every family")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc at its defaults (trials keep freed memory: trainer.keep_freed_memory)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per family and round")
    args = parser.parse_args()

    load_before = os.getloadavg()
    rounds: dict[str, list[dict]] = {family: [] for family in args.families}
    for round_number in range(1, args.rounds + 1):
        for family in args.families:
            if rounds[family] and "error" in rounds[family][-1]:
                continue
            rounds[family].append(run_family(family, args.lengths, args.repeats, args.timeout,
                                             keep_memory=not args.default_malloc))
            print(f"round {round_number}, {family}: {rounds[family][-1].get('error') or 'done'}", flush=True)
    rows = [median_row(measured) for measured in rounds.values()]
    longest, previous = args.lengths[-1], args.lengths[-2] if len(args.lengths) > 1 else None
    load_after = os.getloadavg()
    table = Table(title=f"One training step (fwd+bwd+Adam), batch {BATCH}, hidden {HIDDEN}, 1 layer, 1 CPU thread; "
                        f"CPU seconds, median of {args.rounds} rounds")
    table.add_column("family")
    table.add_column("own parameters")
    for steps in args.lengths:
        table.add_column(f"T={steps} (s)", justify="right")
    if previous:
        table.add_column(f"t({longest})/t({previous})", justify="right")
    table.add_column(f"peak MB at T={longest}", justify="right")
    for row in rows:
        if "error" in row:
            table.add_row(row["family"], "", *["-"] * (len(args.lengths) + (2 if previous else 1)))
            row["note"] = row["error"]
            continue
        seconds = row["seconds"]
        if previous:  # each round's own ratio (both lengths in one process), then the median
            row["growth_rounds"] = [m["seconds"][longest] / m["seconds"][previous] for m in row["rounds"]]
            row["growth"] = statistics.median(row["growth_rounds"])
        own = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
        table.add_row(row["family"], own, *(f"{seconds[t]:.3f}" for t in args.lengths),
                      *([f"{row['growth']:.2f}"] if previous else []), f"{row['peak_mb']:.0f}")
    Console(width=200).print(table)
    print(f"load average (1, 5, 15 min) before: {_load(load_before)}; after: {_load(load_after)} "
          f"on {os.cpu_count()} CPUs")
    by_family = {row["family"]: row for row in rows if "error" not in row}
    if {"ssm", "lstm"} <= set(by_family):
        speedup = by_family["lstm"]["seconds"][longest] / by_family["ssm"]["seconds"][longest]
        growth = by_family["ssm"].get("growth")
        wall = by_family["lstm"]["wall_seconds"][longest] / by_family["ssm"]["wall_seconds"][longest]
        per_round = [lstm["seconds"][longest] / ssm["seconds"][longest]
                     for lstm, ssm in zip(by_family["lstm"]["rounds"], by_family["ssm"]["rounds"])]
        print(f"ssm vs lstm at T={longest}: {speedup:.2f}x faster in CPU time ({wall:.2f}x in wall time; "
              f"target >= 5: {'met' if speedup >= 5 else 'NOT met'}); rounds: "
              + " / ".join(f"{r:.2f}x" for r in per_round))
        print(f"ssm t({longest})/t({previous}) = {growth:.2f}, median of the rounds' own ratios (linear would be "
              f"{longest / previous:.0f}); rounds: " + " / ".join(f"{r:.2f}" for r in by_family["ssm"]["growth_rounds"]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"batch": BATCH, "hidden": HIDDEN, "lengths": args.lengths, "time": "cpu",
                                   "rounds": args.rounds, "keep_freed_memory": not args.default_malloc,
                                   "load_before": load_before, "load_after": load_after, "rows": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
