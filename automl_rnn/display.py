"""What a person sees in the terminal: live study progress and result tables (rich)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)
"""Progress and tables go to stderr, so stdout stays for data (``--json``)."""

SHOWN_PARAMS = {"arch": "arch", "hidden_size": "hidden", "num_layers": "layers", "lr": "lr",
                "scheduler": "schedule", "batch_size": "batch"}
"""Parameters shown in the trials table, with their column headings."""
OBJECTIVE_HEADINGS = {"params": "params", "latency": "latency ms"}
"""Column headings of the extra objectives in the Pareto table."""


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1e}" if 0 < abs(value) < 1e-2 else f"{value:.4g}"
    return str(value)


class StudyProgress:
    """A live bar: trials finished / budget, best value so far, pruned and failed counts."""

    def __init__(self, study: optuna.Study, n_trials: int, metric: str) -> None:
        self.metric = metric
        self.progress = Progress(
            TextColumn("[bold]{task.fields[study]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console, transient=False,
        )
        self.task_id = self.progress.add_task("study", total=n_trials, study=study.study_name, status="")
        self.refresh(study)

    def refresh(self, study: optuna.Study, trial: FrozenTrial | None = None) -> None:
        """Update the bar from the study (use as an Optuna callback)."""
        from automl_rnn.engine.study import counted

        trials = study.get_trials(deepcopy=False)
        budget = counted(trials)
        counts = {state: sum(t.state == state for t in budget) for state in TrialState}
        if not counts[TrialState.COMPLETE]:
            best = "no complete trial yet"
        elif len(study.directions) > 1:
            front = study.best_trials
            top = max(t.values[0] for t in front) if study.directions[0].name == "MAXIMIZE" else min(
                t.values[0] for t in front)
            best = f"Pareto front {len(front)} trial(s), best {self.metric} {top:.4g}"
        else:
            best = f"best {self.metric} {study.best_value:.4g} (trial {study.best_trial.number})"
        status = f"{best} · pruned {counts[TrialState.PRUNED]} · failed {counts[TrialState.FAIL]}"
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if running > 1:
            status += f" · running {running}"
        self.progress.update(self.task_id, completed=len(budget), status=status)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.COMPLETE and trial.user_attrs.get("reason"):
            self.progress.console.print(
                f"[dim]trial {trial.number} {trial.state.name.lower()}: {trial.user_attrs['reason'][:160]}[/]",
                highlight=False,
            )
        self.refresh(study, trial)

    def note(self, text: str) -> None:
        """Print a line above the bar."""
        self.progress.console.print(f"[dim]{text}[/]", highlight=False)

    def __enter__(self) -> StudyProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def trials_table(trials: Sequence[FrozenTrial], metric: str, direction: str, top: int = 10) -> Table:
    """The best ``top`` complete trials, best first (ties: lower val loss), with their main parameters."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    sign = -1 if direction == "maximize" else 1
    complete.sort(key=lambda t: (sign * t.values[0], t.user_attrs.get("val_loss", float("inf"))))
    table = Table(title=f"Best trials by validation {metric}")
    for column in ("trial", metric, *SHOWN_PARAMS.values(), "epochs"):
        table.add_column(column, justify="left" if column in ("arch", "schedule") else "right", no_wrap=True)
    for t in complete[:top]:
        params = t.user_attrs.get("params", t.params)
        table.add_row(str(t.number), _format(t.values[0]), *(_format(params.get(p, "-")) for p in SHOWN_PARAMS),
                      str(t.user_attrs.get("epochs", "-")))
    return table


def pareto_table(front: Sequence[FrozenTrial], objectives: Sequence[str], direction: str,
                 chosen: int | None = None) -> Table:
    """The Pareto front of a multi-objective study, best first objective first, with each
    objective's value and the main parameters; ``chosen`` (a trial number) is marked."""
    sign = -1 if direction == "maximize" else 1
    ordered = sorted(front, key=lambda t: (sign * t.values[0], t.user_attrs.get("val_loss", float("inf")), t.number))
    table = Table(title=f"Pareto front ({len(ordered)} trials): {', '.join(objectives)}")
    headings = [OBJECTIVE_HEADINGS.get(name, name) for name in objectives]
    for column in ("trial", *headings, "arch", "hidden", "layers", "epochs"):
        table.add_column(column, justify="left" if column == "arch" else "right", no_wrap=True)
    for t in ordered:
        params = t.user_attrs.get("params", t.params)
        values = [f"{v:,.0f}" if name == "params" else _format(v) for name, v in zip(objectives, t.values)]
        shown = [_format(params.get(p, "-")) for p in ("arch", "hidden_size", "num_layers")]
        mark = " *" if t.number == chosen else ""
        table.add_row(f"{t.number}{mark}", *values, *shown, str(t.user_attrs.get("epochs", "-")))
    if chosen is not None:
        table.caption = "* the published trial: the best on the first objective"
    return table


def state_counts(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """Number of trials in each state, by state name."""
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def key_value_table(title: str, rows: Mapping[str, Any]) -> Table:
    """A two-column table of facts."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, _format(value))
    return table
