"""The ``automl-rnn`` command.

    automl-rnn search [overrides] [-m]   run (or resume) a study; a Hydra app, so -m sweeps
    automl-rnn best [overrides]          the best trial of a study and its model URI
    automl-rnn plugins [--json]          installed plugins and what each registered

Top-level imports stay light: ``--help`` must not import torch, and ``plugins`` must not
import Lightning or MLflow.
"""

from __future__ import annotations

import json
import sys

from automl_rnn import __version__

USAGE = f"""automl-rnn {__version__}: find good recurrent networks for sequence tasks.

usage:
  automl-rnn search [KEY=VALUE ...] [-m]   run or resume a study (Hydra overrides; -m sweeps)
  automl-rnn best [KEY=VALUE ...]          show a study's best trial and its registered model
  automl-rnn plugins [--json]              list plugins and what each one registered

examples:
  automl-rnn search task=gunpoint search.n_trials=20
  automl-rnn search task=airline search.archs=[lstm,gru] sampler=random
  automl-rnn search -m task=gunpoint,italypower
  automl-rnn best task=gunpoint

Configs live in conf/; `automl-rnn search --cfg job` prints the composed config.
Environment: AUTOML_RNN_STRICT_PLUGINS=1 makes a broken plugin fatal;
AUTOML_RNN_DISABLE_PLUGINS=a,b blocks plugins by name.
"""

HYDRA_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"}


def fail(message: str, code: int = 2) -> None:
    """Print a user-facing error as one paragraph and exit (no traceback)."""
    from rich.markup import escape

    from automl_rnn.display import console

    # escaped: messages quote overrides such as search.archs=[lstm,gru], which rich would take as markup
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise SystemExit(code)


def show_plugin_warnings() -> None:
    """Print plugin warnings as one readable line each instead of Python's warning format."""
    import warnings

    from automl_rnn.plugins import PluginWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PluginWarning):
            from automl_rnn.display import console

            console.print(f"[bold yellow]warning:[/] {message}", highlight=False)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def plugins_command(args: list[str]) -> None:
    """``automl-rnn plugins [--json]``."""
    from automl_rnn.plugins import get_registry

    registry = get_registry()
    if "--json" in args:
        print(json.dumps([p.as_dict() for p in registry.plugins], indent=2))
        return
    from rich.table import Table

    from automl_rnn.display import console

    table = Table(title="automl-rnn plugins")
    for column in ("plugin", "distribution", "version", "architectures", "tasks", "status"):
        table.add_column(column)
    for p in registry.plugins:
        table.add_row(p.name, p.distribution or "-", p.version or "-", ", ".join(p.architectures) or "-",
                      ", ".join(p.tasks) or "-", "[red]skipped[/]" if p.error else "[green]ok[/]")
    console.print(table)


def _positional_overrides(args: list[str]) -> list[str] | None:
    """The KEY=VALUE overrides of a command line, or None when Hydra should answer alone."""
    if any(a in HYDRA_INFO_FLAGS or a.startswith("--cfg") for a in args):
        return None
    return [a for a in args if not a.startswith("-") and not a.startswith("hydra.")]


def search_command(args: list[str]) -> None:
    """``automl-rnn search``: check every job's config first, then hand over to Hydra."""
    from automl_rnn.compose import check_overrides, normalise_overrides, store_plugin_task_configs
    from automl_rnn.plugins import get_registry

    args = normalise_overrides(args)
    store_plugin_task_configs(get_registry())
    overrides = _positional_overrides(args)
    if overrides is not None:
        check_overrides(overrides, get_registry())
    from automl_rnn.app import search_app

    sys.argv = [f"{sys.argv[0]} search", *args]
    search_app()


def best_command(args: list[str]) -> None:
    """``automl-rnn best``: the study's best trial and the registered model."""
    from automl_rnn.app import show_best

    show_best(args)


COMMANDS = {"search": search_command, "best": best_command, "plugins": plugins_command}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``automl-rnn`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return
    if args[0] in {"-V", "--version"}:
        print(__version__)
        return
    command = COMMANDS.get(args[0])
    if command is None:
        print(USAGE, file=sys.stderr)
        fail(f"unknown command {args[0]!r}: use one of {', '.join(COMMANDS)}.")
    from automl_rnn.errors import UserError
    from automl_rnn.plugins import PluginError

    show_plugin_warnings()
    try:
        command(args[1:])
    except (UserError, PluginError) as error:
        fail(str(error))


if __name__ == "__main__":
    main()
