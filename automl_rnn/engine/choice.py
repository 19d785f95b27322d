"""Which trial a study chooses, for one objective or several (a Pareto front).

A single-objective study chooses from its complete trials; a multi-objective one from its
Pareto front (``study.best_trials``). Either way the ranking is by the first objective, the
task's metric, with ties going to the lower validation loss, then to the earlier trial. Only
validation numbers take part: the test split plays no role in the choice.

Light on purpose (Optuna only), so that ``automl-rnn best`` can use it.
"""

from __future__ import annotations

import math

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from automl_rnn.errors import UserError

VAL_LOSS_ATTR = "val_loss"
"""Trial user attribute: the validation loss at the trial's best epoch (breaks ties)."""
OBJECTIVES_ATTR = "objectives"
"""Study user attribute: the names of the study's objectives, in order."""


def is_multi_objective(study: optuna.Study) -> bool:
    """True when the study has more than one objective."""
    return len(study.directions) > 1


def _sign(study: optuna.Study) -> float:
    return -1.0 if study.directions[0] == StudyDirection.MAXIMIZE else 1.0


def ranked_by_validation(study: optuna.Study) -> list[FrozenTrial]:
    """The trials to choose from (complete ones, or the Pareto front), best first objective first."""
    pool = (study.best_trials if is_multi_objective(study)
            else study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    sign = _sign(study)
    return sorted(pool, key=lambda t: (sign * t.values[0], t.user_attrs.get(VAL_LOSS_ATTR, math.inf), t.number))


def choose_best(study: optuna.Study) -> FrozenTrial:
    """The first of ``ranked_by_validation``: the trial the search chose.

    Raises:
        ValueError: when no trial is complete.
    """
    ranked = ranked_by_validation(study)
    if not ranked:
        raise ValueError("no complete trial")
    return ranked[0]


def best_first_value(study: optuna.Study) -> float | None:
    """The best value of the first objective over the complete trials; None when there is none."""
    values = [t.values[0] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not values:
        return None
    return max(values) if _sign(study) < 0 else min(values)


def objective_names(study: optuna.Study, metric: str) -> list[str]:
    """The study's objective names as its search stored them; else ``metric``, ``objective 2``, ..."""
    stored = study.user_attrs.get(OBJECTIVES_ATTR)
    if stored and len(stored) == len(study.directions):
        return list(stored)
    return [metric] + [f"objective {i + 1}" for i in range(1, len(study.directions))]


def check_objectives(study: optuna.Study, objectives: tuple[str, ...], directions: list[str]) -> None:
    """Record this run's objectives with the study, or fail clearly when a resumed study was
    created with others.

    Raises:
        UserError: naming both and how to start a new study.
    """
    stored = [d.name.lower() for d in study.directions]
    names = study.user_attrs.get(OBJECTIVES_ATTR)
    if stored != [d.lower() for d in directions] or (names is not None and list(names) != list(objectives)):
        held = f"search.objectives={list(names)}" if names is not None else ", ".join(stored)
        raise UserError(
            f"study {study.study_name!r} already exists with other objectives ({held}); this run asks for "
            f"search.objectives={list(objectives)}. Give the new search its own study_name=..., or keep "
            f"the study's objectives."
        )
    if names is None:
        study.set_user_attr(OBJECTIVES_ATTR, list(objectives))
