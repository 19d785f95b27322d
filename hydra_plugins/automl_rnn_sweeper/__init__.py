"""``hydra/sweeper=automl_rnn``: an Optuna 5 sweeper for any Hydra application.

The search space is ``hydra.sweeper.params`` in Hydra's override grammar; each trial is one
Hydra job whose return value is the objective. Inside a job, ``report(value, step)`` reports
an intermediate value and raises ``optuna.TrialPruned`` when the pruner stops the trial.
See docs/hydra_sweeper.md.

This module stays light: Hydra imports every plugin module when it starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna


def report(value: float, step: int) -> None:
    """Report ``value`` at ``step`` for the trial of the running job; prune it if hopeless.

    Raises ``optuna.TrialPruned`` when the sweeper's pruner decides the trial should stop;
    let it propagate (the sweeper records the trial as pruned). Outside an
    ``automl_rnn`` sweep (a plain run without ``-m``) it does nothing.
    """
    from hydra_plugins.automl_rnn_sweeper import _trials

    _trials.report(value, step)


def current_trial() -> "optuna.Trial | None":
    """The ``optuna.Trial`` of the running job, or None outside an ``automl_rnn`` sweep."""
    from hydra_plugins.automl_rnn_sweeper import _trials

    return _trials.current_trial()


__all__ = ["current_trial", "report"]
