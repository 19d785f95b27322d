"""The sweep: the search space from Hydra's override grammar, the study, batches of jobs, results."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, RangeSweep
from hydra.core.utils import JobStatus
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from automl_rnn.config import PRUNERS, SAMPLERS
from automl_rnn.engine.study import FINISHED_STATES, pruner_from, sampler_from
from hydra_plugins.automl_rnn_sweeper import _trials

if TYPE_CHECKING:
    from hydra_plugins.automl_rnn_sweeper.sweeper import AutomlRnnSweeper

log = logging.getLogger(__name__)
RESULTS_FILE = "optimization_results.yaml"
REASON_ATTR = "reason"
DIRECTIONS = ("minimize", "maximize")


class SweepConfigError(CompactHydraException):
    """``hydra.sweeper`` or a sweep override is invalid; the message lists every problem.

    Hydra prints a ``CompactHydraException`` as its message alone, without a traceback.
    """


@dataclass(frozen=True)
class SweepSettings:
    """The validated ``hydra.sweeper`` settings (see ``config.AutomlRnnSweeperConf``)."""

    directions: tuple[str, ...]
    n_trials: int
    n_jobs: int
    sampler: str
    sampler_options: Mapping[str, Any]
    seed: int | None
    pruner: str
    pruner_options: Mapping[str, Any]
    storage: str | None
    study_name: str | None
    params: Mapping[str, str]

    @classmethod
    def from_config(cls, *, direction: Any, n_trials: Any, n_jobs: Any, sampler: Any, pruner: Any,
                    storage: Any, study_name: Any, params: Any) -> "SweepSettings":
        """Check every setting; raise ``SweepConfigError`` naming each bad one and the fix."""
        problems: list[str] = []
        plain = OmegaConf.to_container(OmegaConf.create({"d": direction, "s": sampler, "p": pruner,
                                                         "params": params or {}}), resolve=True)
        directions = plain["d"] if isinstance(plain["d"], list) else [plain["d"]]
        if not directions or any(d not in DIRECTIONS for d in directions):
            problems.append(f"hydra.sweeper.direction={plain['d']!r}: use minimize or maximize, or a list of "
                            f"them for several objectives")
        for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"hydra.sweeper.{key}={value!r}: must be a whole number >= 1")
        # options left null keep Optuna's defaults
        sampler_cfg = {k: v for k, v in (plain["s"] or {}).items() if v is not None}
        pruner_cfg = {k: v for k, v in (plain["p"] or {}).items() if v is not None}
        sampler_name, seed = sampler_cfg.pop("name", "tpe"), sampler_cfg.pop("seed", None)
        pruner_name = pruner_cfg.pop("name", "median")
        if sampler_name not in SAMPLERS:
            problems.append(f"hydra.sweeper.sampler.name={sampler_name!r}: choose one of {', '.join(SAMPLERS)}")
        else:
            _check_options("sampler", sampler_cfg, SAMPLERS[sampler_name] | {"seed"}, problems)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            problems.append(f"hydra.sweeper.sampler.seed={seed!r}: must be a whole number or null")
        if pruner_name not in PRUNERS:
            problems.append(f"hydra.sweeper.pruner.name={pruner_name!r}: choose one of {', '.join(PRUNERS)}")
        else:
            extra = {"max_resource"} if pruner_name == "hyperband" else set()
            _check_options("pruner", pruner_cfg, PRUNERS[pruner_name] | extra, problems)
        if len(directions) > 1 and pruner_name != "none":
            problems.append(f"hydra.sweeper.pruner.name={pruner_name}: Optuna prunes single-objective studies "
                            f"only; use hydra.sweeper.pruner.name=none with {len(directions)} directions")
        if study_name is not None and storage is None:
            problems.append("hydra.sweeper.study_name is set without hydra.sweeper.storage: an in-memory study "
                            "cannot be resumed; set storage too, e.g. hydra.sweeper.storage=sqlite:///sweep.db")
        if problems:
            raise SweepConfigError("the automl_rnn sweeper's configuration has problems:\n"
                                   + "\n".join(f"  - {p}" for p in problems))
        return cls(tuple(directions), n_trials, n_jobs, sampler_name, sampler_cfg, seed, pruner_name, pruner_cfg,
                   storage, study_name, {str(k): _as_override(v) for k, v in plain["params"].items()})


def _check_options(section: str, given: Mapping[str, Any], allowed: set[str], problems: list[str]) -> None:
    for key in given:
        if key not in allowed:
            problems.append(f"hydra.sweeper.{section}.{key}: not an option of this {section}; its options: "
                            f"{', '.join(sorted(allowed)) or 'none'}")


def _as_override(value: Any) -> str:
    """A Python value (or an expression string) as the value side of a Hydra override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _quoted(value: Any) -> str:
    """A sampled value as an override value that Hydra parses back to the same value."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return _as_override(value)


def distribution_of(override: Override) -> BaseDistribution | None:
    """The Optuna distribution of a sweep override; None for a plain (fixed) override.

    ``choice(...)`` and ``shuffle(range(...))`` are categorical; ``range(a, b[, step])`` is an
    int (or float) distribution over the values it lists; ``interval(a, b)`` is a float
    distribution, log-scaled with ``tag(log, ...)``, over integers with ``tag(int, ...)``.
    """
    key = override.get_key_element()
    if not override.is_sweep_override():
        return None
    if override.is_choice_sweep() or (override.is_range_sweep() and override.value().shuffle):
        return CategoricalDistribution(list(override.sweep_iterator()))
    if override.is_range_sweep():
        value: RangeSweep = override.value()
        values = list(override.sweep_iterator())
        if not values:
            raise SweepConfigError(f"{key}={override.input_line.split('=', 1)[1]}: the range is empty")
        low, high, step = min(values), max(values), abs(value.step)
        if all(isinstance(v, int) for v in values):
            return IntDistribution(int(low), int(high), step=int(step))
        return FloatDistribution(float(low), float(high), step=float(step))
    if override.is_interval_sweep():
        interval = override.value()
        log_scale = "log" in interval.tags
        if "int" in interval.tags:
            return IntDistribution(math.ceil(interval.start), math.floor(interval.end), log=log_scale)
        return FloatDistribution(interval.start, interval.end, log=log_scale)
    raise SweepConfigError(f"{override.input_line}: this sweep is not supported; use choice(...), "
                           f"range(...), interval(...) or tag(log, interval(...))")


def search_space(params: Mapping[str, str], arguments: Sequence[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """Distributions and fixed overrides from ``hydra.sweeper.params`` and the command line.

    A command-line override replaces the ``params`` entry of the same key.
    """
    parser = OverridesParser.create()
    command_line = parser.parse_overrides(list(arguments))
    given = {o.get_key_element() for o in command_line}
    configured = parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
    overrides = [o for o in configured if o.get_key_element() not in given] + command_line
    space: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for override in overrides:
        distribution = distribution_of(override)
        if distribution is None:
            fixed.append(override.input_line)
        else:
            space[override.get_key_element()] = distribution
    return space, fixed


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Draw ``name`` from ``distribution`` through the trial's public suggest API."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step,
                                 log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step,
                               log=distribution.log)


def open_study(settings: SweepSettings) -> optuna.Study:
    """Create the study, or resume it when ``storage`` already holds ``study_name``."""
    return optuna.create_study(
        storage=settings.storage, study_name=settings.study_name, load_if_exists=True,
        sampler=sampler_from(settings.sampler, settings.sampler_options, settings.seed),
        pruner=pruner_from(settings.pruner, settings.pruner_options),
        directions=list(settings.directions),
    )


def objective_values(value: Any, n_objectives: int) -> list[float]:
    """The job's return value as one float per objective; ValueError with the fix otherwise."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != n_objectives or len(values) != n_objectives:
        expected = "a number" if n_objectives == 1 else f"a list of {n_objectives} numbers"
        raise ValueError(f"the task function returned {value!r}; return {expected}, the objective")
    return numbers


def tell(study: optuna.Study, trial: optuna.Trial, outcome: Any) -> str:
    """Record one job's outcome (its return value or the exception it raised); return the state."""
    if isinstance(outcome, optuna.TrialPruned):
        trial.set_user_attr(REASON_ATTR, str(outcome) or "pruned")
        study.tell(trial, state=TrialState.PRUNED)
        return "pruned"
    if not isinstance(outcome, BaseException):
        try:
            values = objective_values(outcome, len(study.directions))
        except ValueError as error:
            outcome = error
        else:
            told = study.tell(trial, values if len(values) > 1 else values[0])
            return told.state.name.lower()  # a NaN value makes it FAIL
    trial.set_user_attr(REASON_ATTR, f"{type(outcome).__name__}: {outcome}")
    study.tell(trial, state=TrialState.FAIL)
    return "failed"


def run_sweep(sweeper: "AutomlRnnSweeper", arguments: list[str]) -> list[Any]:
    """Ask trials in batches of ``n_jobs``, launch each batch as Hydra jobs, tell the results."""
    settings = sweeper.settings
    space, fixed = search_space(settings.params, arguments)
    sweep_dir = Path(str(sweeper.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")
    study = open_study(settings)
    log.info("automl_rnn sweeper: study %s, %s, sampler %s, pruner %s", study.study_name,
             "/".join(settings.directions), settings.sampler, settings.pruner)
    for name, distribution in space.items():
        log.info("  %s: %s", name, distribution)
    returns: list[Any] = []
    job = 0
    while (remaining := settings.n_trials - len(study.get_trials(deepcopy=False, states=FINISHED_STATES))) > 0:
        trials = [study.ask() for _ in range(min(settings.n_jobs, remaining))]
        batch = []
        for trial in trials:
            params = {name: suggest(trial, name, distribution) for name, distribution in space.items()}
            reference = _quoted(f"{study.study_name}:{trial._trial_id}")
            batch.append(tuple(f"{name}={_quoted(value)}" for name, value in params.items()) + tuple(fixed)
                         + (f"+hydra.job.env_set.{_trials.TRIAL_ENV}={reference}",))
        sweeper.validate_batch_is_legal(batch)
        _trials.ACTIVE.update({job + i: trial for i, trial in enumerate(trials)})
        try:
            results = sweeper.launcher.launch(batch, initial_job_idx=job)
        finally:
            _trials.ACTIVE.clear()
        for trial, result in zip(trials, results):
            # A job that raised holds its exception (pruned, or failed); JobReturn.return_value
            # would re-raise it after printing "Error executing job", also for pruned trials.
            outcome = result.return_value if result.status == JobStatus.COMPLETED else result._return_value
            state = tell(study, trial, outcome)
            log.info("trial %d %s: %s -> %s", trial.number, state, trial.params,
                     outcome if state != "failed" else trial.user_attrs.get(REASON_ATTR))
        returns.append(results)
        job += len(batch)
    save_results(study, sweep_dir / RESULTS_FILE)
    return returns


def save_results(study: optuna.Study, path: Path) -> None:
    """Write the best parameters and value (or the Pareto front) and the trial counts as YAML."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in FINISHED_STATES}
    results: dict[str, Any] = {"name": "automl_rnn", "study_name": study.study_name,
                               "directions": [d.name.lower() for d in study.directions], "trials": counts}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(study.directions) == 1 and complete:
        results["best_params"] = dict(study.best_params)
        results["best_value"] = study.best_value
        results["best_trial"] = study.best_trial.number
    elif complete:
        results["best_trials"] = [{"number": t.number, "params": dict(t.params), "values": list(t.values)}
                                  for t in study.best_trials]
    OmegaConf.save(OmegaConf.create(results), path)
    log.info("results in %s: %s", path, {k: v for k, v in results.items() if k.startswith("best")})
