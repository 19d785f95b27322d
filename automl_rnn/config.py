"""Typed run configuration, validated up front against the schema and the plugin registry.

``validate(cfg, registry)`` checks a composed Hydra config and reports every problem at once
(key, bad value, what is allowed) as a ``ConfigError`` before anything trains.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Mapping

from automl_rnn.compose import MISSING_VALUE
from automl_rnn.errors import ConfigError
from automl_rnn.plugins import Registry
from automl_rnn.space import (
    ARCH_PARAM,
    COMMON_PARAMS,
    OPTIMIZERS,
    SCHEDULERS,
    distribution_from_spec,
    override_distribution,
)
from automl_rnn.types import Task

SAMPLERS = {
    "tpe": {"n_startup_trials", "multivariate", "group"},
    "random": set(),
    "cmaes": {"n_startup_trials", "sigma0", "restart_strategy", "popsize", "with_margin"},
    "gp": {"n_startup_trials", "deterministic_objective"},
    "nsga2": {"population_size", "mutation_prob", "crossover_prob", "swapping_prob"},
}
SINGLE_OBJECTIVE_SAMPLERS = {"cmaes"}
"""Samplers that Optuna runs on single-objective studies only."""
EXTRA_OBJECTIVES = {
    "params": "trainable parameter count",
    "latency": "mean inference milliseconds of a validation batch, measured after training",
}
"""Objectives that can follow the task's metric in ``search.objectives``; all are minimised."""
PRUNERS = {
    "none": set(),
    "median": {"n_startup_trials", "n_warmup_steps"},
    "percentile": {"percentile", "n_startup_trials", "n_warmup_steps"},
    "successive_halving": {"min_resource", "reduction_factor", "min_early_stopping_rate"},
    "hyperband": {"min_resource", "reduction_factor"},
}
ENSEMBLE_MEMBERS = ("seeds", "trials")
"""What ``search.ensemble=K`` averages: K seeds of the chosen trial, or the K best trials."""
CHOICE_CHECKS = {"optimizer": OPTIMIZERS, "scheduler": SCHEDULERS}


@dataclass(frozen=True)
class SearchConfig:
    """The ``search`` section: budget, families, space."""

    n_trials: int = 20
    timeout: float | None = None
    archs: tuple[str, ...] = ("lstm", "gru", "bilstm", "bigru")
    max_epochs: int = 100
    patience: int = 20
    fixed: Mapping[str, Any] = field(default_factory=dict)
    enqueue: tuple[Mapping[str, Any], ...] = ()
    space: Mapping[str, Any] = field(default_factory=dict)
    refit: bool | None = None
    epoch_size: int | None = None
    max_params: int | None = None
    trial_timeout: float | None = None
    reevaluate_top_k: int = 0
    reevaluate_seeds: int = 3
    ensemble: int = 1
    ensemble_members: str = "seeds"
    n_workers: int = 1
    heartbeat_interval: int = 10
    objectives: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainerConfig:
    """The ``trainer`` section: where and how each trial trains."""

    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_threads: int | None = None
    num_workers: int = 0
    keep_freed_memory: bool = True


@dataclass(frozen=True)
class TrackingConfig:
    """The ``tracking`` section: MLflow store, experiment and model registry."""

    uri: str = "sqlite:///mlflow.db"
    experiment: str | None = None
    register: bool = True
    model_name: str | None = None
    alias: str = "champion"


@dataclass(frozen=True)
class RunConfig:
    """One validated run: which task, how to search, where to record."""

    task: Task
    task_options: Any
    search: SearchConfig
    sampler: Mapping[str, Any]
    pruner: Mapping[str, Any]
    trainer: TrainerConfig
    tracking: TrackingConfig
    study_name: str
    storage: str
    seed: int
    dropped_archs: tuple[str, ...] = ()
    """Families in ``search.archs`` left out because the task needs causal ones."""

    @property
    def refit(self) -> bool:
        """Whether the chosen configuration is retrained on train + val before the test."""
        return self.task.refit if self.search.refit is None else bool(self.search.refit)

    @property
    def epoch_size(self) -> int:
        """Sequences per training epoch (at least one pass over the training split)."""
        return self.task.epoch_size if self.search.epoch_size is None else self.search.epoch_size

    @property
    def objectives(self) -> tuple[str, ...]:
        """The study's objectives: the task's metric first, then ``search.objectives``' others."""
        return self.search.objectives or (self.task.metric,)

    @property
    def directions(self) -> list[str]:
        """The Optuna direction of each objective: the task's for its metric, the others minimised."""
        return [self.task.direction] + ["minimize"] * (len(self.objectives) - 1)

    @property
    def multi_objective(self) -> bool:
        """More than one objective: the study has a Pareto front and runs without pruning."""
        return len(self.objectives) > 1

    @property
    def pruner_name(self) -> str:
        """The pruner that runs: ``none`` for a multi-objective study (Optuna cannot prune one)."""
        return "none" if self.multi_objective else self.pruner["name"]

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment of this run."""
        return self.tracking.experiment or self.study_name

    @property
    def model_name(self) -> str:
        """The registered model name of this run."""
        return self.tracking.model_name or self.study_name


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(section: str, given: Mapping[str, Any], allowed, problems: list[str]) -> None:
    for key in given:
        if key not in allowed:
            problems.append(
                f"{section}.{key}: unknown key{_suggest(key, allowed)}; allowed keys: "
                f"{', '.join(sorted(allowed))}"
            )


def _dataclass_from(cls, section: str, values: Mapping[str, Any], problems: list[str]):
    """An instance of ``cls`` from config values; None when a required value is not set."""
    fields = dataclasses.fields(cls)
    _check_keys(section, values, {f.name for f in fields}, problems)
    known = {f.name: values[f.name] for f in fields if f.name in values}
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    unset = [name for name in required if known.get(name, MISSING_VALUE) == MISSING_VALUE]
    for name in unset:
        problems.append(f"{section}.{name}: required, it has no default; set it, e.g. "
                        f"{section}.{name}=<value>")
    return None if unset else cls(**known)


def _positive_int(section: str, key: str, value: Any, problems: list[str], minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        problems.append(f"{section}.{key}={value!r}: must be a whole number >= {minimum}")


def validate(cfg: Mapping[str, Any], registry: Registry) -> RunConfig:
    """Check a composed config (plain dict) and return the typed run config.

    Args:
        cfg: the composed config as a plain, resolved dict.
        registry: the plugins, to check family and task names.

    Raises:
        ConfigError: listing every problem found.
    """
    problems: list[str] = []
    top = {"task", "search", "sampler", "pruner", "trainer", "tracking", "study_name", "storage", "seed"}
    _check_keys("config", {k: v for k, v in cfg.items() if k != "hydra"}, top, problems)

    task_cfg = dict(cfg.get("task") or {})
    task_name = task_cfg.pop("name", None)
    task = registry.tasks.get(task_name)
    task_options = None
    if task is None:
        problems.append(
            f"task={task_name!r}: no such task{_suggest(task_name, registry.tasks)}; "
            f"registered tasks: {', '.join(sorted(registry.tasks)) or 'none'}"
        )
    else:
        task_options = _dataclass_from(task.options, "task", task_cfg, problems)

    search_values = dict(cfg.get("search") or {})
    search_values["archs"] = tuple(search_values.get("archs") or ())
    search_values["enqueue"] = tuple(search_values.get("enqueue") or ())
    objectives = search_values.get("objectives") or ()
    search_values["objectives"] = (objectives,) if isinstance(objectives, str) else tuple(objectives)
    search = _dataclass_from(SearchConfig, "search", search_values, problems)
    _positive_int("search", "n_trials", search.n_trials, problems)
    _positive_int("search", "max_epochs", search.max_epochs, problems)
    _positive_int("search", "patience", search.patience, problems, minimum=0)
    _positive_int("search", "reevaluate_top_k", search.reevaluate_top_k, problems, minimum=0)
    _positive_int("search", "reevaluate_seeds", search.reevaluate_seeds, problems, minimum=2)
    _positive_int("search", "ensemble", search.ensemble, problems)
    if search.ensemble_members not in ENSEMBLE_MEMBERS:
        problems.append(f"search.ensemble_members={search.ensemble_members!r}: must be one of "
                        f"{', '.join(ENSEMBLE_MEMBERS)}{_suggest(search.ensemble_members, ENSEMBLE_MEMBERS)}")
    if search.max_params is not None:
        _positive_int("search", "max_params", search.max_params, problems)
    if search.epoch_size is not None:
        _positive_int("search", "epoch_size", search.epoch_size, problems, minimum=0)
    if search.refit not in (None, True, False):
        problems.append(f"search.refit={search.refit!r}: must be true, false or null (the task decides)")
    if search.trial_timeout is not None and not (
            isinstance(search.trial_timeout, (int, float)) and search.trial_timeout > 0):
        problems.append(f"search.trial_timeout={search.trial_timeout!r}: must be a positive number of seconds or null")
    if search.timeout is not None and not (isinstance(search.timeout, (int, float)) and search.timeout > 0):
        problems.append(f"search.timeout={search.timeout!r}: must be a positive number of seconds or null")

    unknown_archs = [a for a in search.archs if a not in registry.architectures]
    for arch in unknown_archs:
        problems.append(
            f"search.archs: {arch!r} is not a registered architecture"
            f"{_suggest(arch, registry.architectures)}; registered: "
            f"{', '.join(sorted(registry.architectures))}"
        )
    if not search.archs:
        problems.append("search.archs is empty: name at least one family, e.g. search.archs=[lstm,gru]")
    archs = [a for a in search.archs if a in registry.architectures]
    dropped: tuple[str, ...] = ()
    if task is not None and task.requires_causal:
        dropped = tuple(a for a in archs if not registry.architectures[a].causal)
        archs = [a for a in archs if registry.architectures[a].causal]
        if not archs and not unknown_archs and search.archs:
            problems.append(
                f"search.archs={list(search.archs)}: task {task.name!r} needs causal families "
                f"(no look-ahead) and none of these is causal; causal families: "
                f"{', '.join(sorted(n for n, a in registry.architectures.items() if a.causal))}"
            )
    search = dataclasses.replace(search, archs=tuple(archs))

    _check_space(search, registry, task, problems)

    sampler = dict(cfg.get("sampler") or {})
    if sampler.get("name") not in SAMPLERS:
        problems.append(f"sampler={sampler.get('name')!r}: choose one of {', '.join(SAMPLERS)}")
    else:
        _check_keys("sampler", {k: v for k, v in sampler.items() if k != "name"}, SAMPLERS[sampler["name"]], problems)
        if "population_size" in sampler:
            _positive_int("sampler", "population_size", sampler["population_size"], problems, minimum=2)
    _check_objectives(search.objectives, task, sampler.get("name"), problems)
    pruner = dict(cfg.get("pruner") or {})
    if pruner.get("name") not in PRUNERS:
        problems.append(f"pruner={pruner.get('name')!r}: choose one of {', '.join(PRUNERS)}")
    else:
        _check_keys("pruner", {k: v for k, v in pruner.items() if k != "name"}, PRUNERS[pruner["name"]], problems)

    trainer = _dataclass_from(TrainerConfig, "trainer", dict(cfg.get("trainer") or {}), problems)
    _check_trainer(trainer, problems)
    tracking = _dataclass_from(TrackingConfig, "tracking", dict(cfg.get("tracking") or {}), problems)
    seed = cfg.get("seed", 0)
    _positive_int("config", "seed", seed, problems, minimum=0)
    storage = cfg.get("storage") or ""
    if not isinstance(storage, str) or not storage:
        problems.append("storage: give an Optuna storage URL, e.g. sqlite:///automl_rnn.db")
    else:
        _check_workers(search, storage, problems)
        _check_spawned_storage(trainer, storage, problems)

    if problems:
        raise ConfigError(problems)
    study_name = cfg.get("study_name") or _default_study_name(task.name, task_options)
    return RunConfig(
        task=task, task_options=task_options, search=search, sampler=sampler, pruner=pruner,
        trainer=trainer, tracking=tracking, study_name=study_name, storage=storage, seed=seed,
        dropped_archs=dropped,
    )


def _check_workers(search: SearchConfig, storage: str, problems: list[str]) -> None:
    """``search.n_workers`` and ``search.heartbeat_interval``, and a storage URL they can share."""
    from sqlalchemy.exc import ArgumentError

    from automl_rnn.storage_url import backend, is_in_memory

    _positive_int("search", "n_workers", search.n_workers, problems)
    _positive_int("search", "heartbeat_interval", search.heartbeat_interval, problems)
    try:
        backend(storage)
    except ArgumentError:
        problems.append(f"storage={storage!r}: not a database URL; give e.g. sqlite:///automl_rnn.db or "
                        "postgresql://user:password@host:5432/optuna")
        return
    if isinstance(search.n_workers, int) and search.n_workers > 1 and is_in_memory(storage):
        problems.append(f"search.n_workers={search.n_workers} with storage={storage!r}: an in-memory study "
                        "lives in one process, so other workers cannot see it; use a file or server, e.g. "
                        "storage=sqlite:///automl_rnn.db, or search.n_workers=1")


SPAWNING_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")
"""Strategy names (and their ``*_find_unused_parameters_*`` forms) whose processes Lightning
starts from inside ``fit``."""
POOLED_STRATEGIES = ("ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false")
"""Strategies whose extra ranks the study starts once, as a rank pool (``engine/rank_pool.py``)."""


def several_devices(devices: Any) -> bool:
    """True when ``trainer.devices`` names more than one device."""
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    if isinstance(devices, str):
        parts = [p for p in devices.split(",") if p.strip()]
        return devices.strip() == "-1" or len(parts) > 1 or (devices.strip().isdigit() and int(devices) > 1)
    return isinstance(devices, int) and (devices > 1 or devices == -1)


def uses_rank_pool(trainer: TrainerConfig) -> bool:
    """True when fits train on the study's rank pool: ``ddp``, or ``auto`` (Lightning picks ddp), on several devices."""
    strategy = str(trainer.strategy)
    return several_devices(trainer.devices) and (strategy in POOLED_STRATEGIES or strategy == "auto")


def _check_trainer(trainer: TrainerConfig, problems: list[str]) -> None:
    """``keep_freed_memory`` is a boolean; multi-process training must get its processes from
    the study: spawned per fit, or the rank pool."""
    if not isinstance(trainer.keep_freed_memory, bool):
        problems.append(f"trainer.keep_freed_memory={trainer.keep_freed_memory!r}: must be true or false")
    strategy = str(trainer.strategy)
    launches_itself = (strategy.startswith(("ddp", "fsdp", "deepspeed")) and strategy not in POOLED_STRATEGIES
                       and not strategy.startswith(SPAWNING_STRATEGIES))
    if launches_itself:
        problems.append(
            f"trainer.strategy={strategy}: this strategy starts its extra processes by re-running the "
            f"whole command, so each copy would run a study of its own (its own trials, hyper-parameters "
            f"and MLflow runs). Use trainer.strategy=ddp, whose ranks the study starts once and reuses, "
            f"or trainer.strategy=ddp_spawn, which starts the processes of each trial from inside the study."
        )


def _check_spawned_storage(trainer: TrainerConfig, storage: str, problems: list[str]) -> None:
    """Spawned training processes reach the study through its URL: it cannot be in memory."""
    from sqlalchemy.exc import ArgumentError

    from automl_rnn.storage_url import is_in_memory

    try:
        in_memory = is_in_memory(storage)
    except ArgumentError:  # reported by _check_workers
        return
    if in_memory and str(trainer.strategy).startswith(SPAWNING_STRATEGIES) and several_devices(trainer.devices):
        problems.append(f"trainer.strategy={trainer.strategy} with storage={storage!r}: rank 0 of each trial "
                        f"reports to the study from a process of its own, which cannot see an in-memory "
                        f"study; use a file, e.g. storage=sqlite:///automl_rnn.db")


def _check_objectives(objectives: tuple[str, ...], task: Task | None, sampler: Any, problems: list[str]) -> None:
    """The task's metric first, then distinct names of ``EXTRA_OBJECTIVES``; a sampler that can take them."""
    if not objectives or task is None:
        return
    allowed = {task.metric: f"the task's metric, {task.direction}d", **EXTRA_OBJECTIVES}
    listing = "; ".join(f"{name} ({what})" for name, what in allowed.items())
    for name in objectives:
        if name not in allowed:
            problems.append(f"search.objectives: {name!r} is not an objective{_suggest(name, allowed)}; "
                            f"allowed: {listing}")
    if objectives[0] != task.metric:
        problems.append(f"search.objectives={list(objectives)}: the first objective must be the task's metric "
                        f"{task.metric!r}, e.g. search.objectives=[{task.metric},params]")
    duplicates = sorted({name for name in objectives if objectives.count(name) > 1})
    if duplicates:
        problems.append(f"search.objectives: {', '.join(duplicates)} named more than once")
    if len(objectives) > 1 and sampler in SINGLE_OBJECTIVE_SAMPLERS:
        problems.append(f"sampler={sampler}: Optuna's {sampler} sampler takes one objective only, and "
                        f"search.objectives names {len(objectives)}; use sampler=nsga2 (or tpe, random, gp)")


def _default_study_name(task_name: str, options: Any) -> str:
    dataset = getattr(options, "dataset", None)
    return f"{task_name}-{dataset}" if dataset else task_name


def _check_space(search: SearchConfig, registry: Registry, task: Task | None, problems: list[str]) -> None:
    """Every range valid, every name known, every fixed value a known parameter."""
    families = {a: registry.architectures[a] for a in search.archs}
    for name, spec in search.space.items():
        if name in COMMON_PARAMS:
            try:
                dist = distribution_from_spec(name, spec)
            except ValueError as error:
                problems.append(str(error))
                continue
            allowed = CHOICE_CHECKS.get(name)
            if allowed and hasattr(dist, "choices"):
                for choice in dist.choices:
                    if choice not in allowed:
                        problems.append(f"search.space.{name}: {choice!r} is not one of {', '.join(allowed)}")
        elif name in families or (name == "task" and task is not None):
            own = families[name].space() if name != "task" else task.space()
            for param, sub in (spec or {}).items():
                if param not in own:
                    problems.append(
                        f"search.space.{name}.{param}: {name!r} has no parameter {param!r}"
                        f"{_suggest(param, own)}; its parameters: {', '.join(own) or 'none'}"
                    )
                    continue
                try:
                    override_distribution(own[param], sub, f"{name}.{param}")
                except ValueError as error:
                    problems.append(str(error))
        else:
            known = list(COMMON_PARAMS) + list(families) + ["task"]
            problems.append(
                f"search.space.{name}: unknown parameter{_suggest(name, known)}; common parameters: "
                f"{', '.join(COMMON_PARAMS)}; family or task parameters go under search.space.<family>.<name>"
            )
    family_names = {f"{a}.{p}" for a, arch in families.items() for p in arch.space()}
    task_names = {f"task.{p}" for p in (task.space() if task else {})}
    known_fixed = set(COMMON_PARAMS) | {ARCH_PARAM} | family_names | task_names
    for name, value in _flatten(search.fixed).items():
        if name not in known_fixed:
            problems.append(f"search.fixed.{name}: unknown parameter{_suggest(name, known_fixed)}")
        elif name in CHOICE_CHECKS and value not in CHOICE_CHECKS[name]:
            problems.append(f"search.fixed.{name}={value!r}: not one of {', '.join(CHOICE_CHECKS[name])}")
        elif name == ARCH_PARAM and value not in families:
            problems.append(f"search.fixed.arch={value!r}: not among search.archs {list(search.archs)}")


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def flat_fixed(search: SearchConfig) -> dict[str, Any]:
    """``search.fixed`` with nested family/task entries flattened to ``<family>.<name>``."""
    return _flatten(search.fixed)
