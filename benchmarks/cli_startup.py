"""CLI start-up: wall time of ``automl-rnn --help`` and ``automl-rnn plugins``, and what they import.

    python benchmarks/cli_startup.py [--repeats 5]

Each command runs ``--repeats`` times as a fresh process (the console script, as a user types
it); the table shows the median and the heavy libraries each command imported. Targets
(issue 3): ``--help`` under 1 s without torch; ``plugins`` under 2 s without Lightning or
MLflow. Writes benchmarks/results/cli_startup.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "cli_startup.json"
HEAVY = ("torch", "lightning", "mlflow", "optuna", "sktime")
COMMANDS = {"--help": (1.0, ("torch",)), "plugins": (2.0, ("lightning", "mlflow"))}

PROBE = """
import sys
from automl_rnn.cli import main
sys.argv = ["automl-rnn", *{args!r}]
try:
    main()
except SystemExit:
    pass
print("IMPORTED", ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def imported_by(args: list[str]) -> list[str]:
    """The heavy libraries that the command imports."""
    probe = PROBE.format(args=args, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    line = next(line for line in done.stderr.splitlines() if line.startswith("IMPORTED"))
    return [m for m in line.removeprefix("IMPORTED").strip().split(",") if m]


def wall_time(args: list[str], repeats: int) -> float:
    """Median wall time of the console script with ``args``."""
    script = shutil.which("automl-rnn") or str(Path(sys.executable).with_name("automl-rnn"))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([script, *args], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Time both commands, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for command, (limit, forbidden) in COMMANDS.items():
        seconds = wall_time([command], args.repeats)
        imported = imported_by([command])
        met = seconds < limit and not set(forbidden) & set(imported)
        rows.append({"command": command, "seconds": seconds, "limit_s": limit, "imported": imported,
                     "must_not_import": list(forbidden), "met": met})
    table = Table(title=f"CLI start-up (median of {args.repeats} fresh processes)")
    for column in ("command", "wall time", "limit", "heavy imports", "met"):
        table.add_column(column)
    for row in rows:
        table.add_row(f"automl-rnn {row['command']}", f"{row['seconds']:.2f} s", f"< {row['limit_s']:.0f} s",
                      ", ".join(row["imported"]) or "none", "yes" if row["met"] else "NO")
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
