"""The search space of one trial: common parameters + the chosen family's + the task's.

Ranges come from the ``search.space`` config (every range overridable from the CLI), values
in ``search.fixed`` are used as they are, and sampling is define-by-run, so conditional
parameters (a schedule's own knobs) are only sampled when they apply.
"""

from __future__ import annotations

from typing import Any, Mapping

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from automl_rnn.types import Architecture, Task

ARCH_PARAM = "arch"
COMMON_PARAMS = (
    "hidden_size", "num_layers", "dropout", "lr", "weight_decay", "optimizer",
    "scheduler", "warmup_fraction", "onecycle_pct_start", "step_every", "step_gamma",
    "plateau_factor", "plateau_patience", "grad_clip", "batch_size",
)
"""Parameters every trial has, in sampling order (a condition's parent comes first)."""

CONDITIONS: dict[str, tuple[str, str]] = {
    "warmup_fraction": ("scheduler", "cosine"),
    "onecycle_pct_start": ("scheduler", "onecycle"),
    "step_every": ("scheduler", "step"),
    "step_gamma": ("scheduler", "step"),
    "plateau_factor": ("scheduler", "plateau"),
    "plateau_patience": ("scheduler", "plateau"),
}
"""Conditional parameters: sampled only when ``params[parent] == value``."""

SCHEDULERS = ("constant", "cosine", "onecycle", "step", "plateau")
OPTIMIZERS = ("adam", "adamw")


def distribution_from_spec(name: str, spec: Mapping[str, Any]) -> BaseDistribution:
    """Turn a config range (``{type, low, high, log, step}`` or ``{choices}``) into a distribution.

    Raises:
        ValueError: the spec is inconsistent; the message names the parameter.
    """
    kind = spec.get("type") or ("categorical" if spec.get("choices") is not None else "float")
    if kind == "categorical":
        choices = list(spec.get("choices") or [])
        if not choices:
            raise ValueError(f"search.space.{name}.choices is empty: list at least one value")
        return CategoricalDistribution(choices)
    low, high, log, step = spec.get("low"), spec.get("high"), bool(spec.get("log")), spec.get("step")
    if low is None or high is None:
        raise ValueError(f"search.space.{name} needs both low and high (got low={low}, high={high})")
    if high < low:
        raise ValueError(f"search.space.{name}: high={high} is below low={low}; make high >= low")
    if log and low <= 0:
        raise ValueError(f"search.space.{name}: a log range needs low > 0 (got low={low})")
    if log and step is not None:
        raise ValueError(f"search.space.{name}: log and step cannot be combined; drop one")
    if kind == "int":
        if int(low) != low or int(high) != high:
            raise ValueError(f"search.space.{name} is an int range: low and high must be whole numbers")
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    if kind == "float":
        return FloatDistribution(float(low), float(high), log=log, step=step)
    raise ValueError(f"search.space.{name}.type={kind!r} is not one of int, float, categorical")


def override_distribution(dist: BaseDistribution, spec: Mapping[str, Any], name: str) -> BaseDistribution:
    """A plugin's distribution with some fields replaced from config (``low``, ``high``, ...)."""
    if isinstance(dist, CategoricalDistribution):
        merged = {"type": "categorical", "choices": list(dist.choices)}
    else:
        kind = "int" if isinstance(dist, IntDistribution) else "float"
        step = dist.step if not (kind == "int" and dist.step == 1) else None
        merged = {"type": kind, "low": dist.low, "high": dist.high, "log": dist.log, "step": step}
    merged.update(spec)
    return distribution_from_spec(name, merged)


def space_problems(space: object) -> list[str]:
    """What is wrong with the value a plugin's ``space()`` returned; empty when it is valid.

    A valid space maps plain parameter names (no dots: the study stores them as
    ``<family>.<name>``; not a common parameter's name, which it would shadow) to
    ``optuna.distributions`` objects (Int-, Float- or CategoricalDistribution).
    """
    if not isinstance(space, Mapping):
        return [f"space() returned {type(space).__name__}, expected a dict of parameter name -> "
                f"optuna.distributions object, e.g. {{'units': IntDistribution(8, 64, log=True)}}"]
    problems = []
    for name, dist in space.items():
        if not isinstance(name, str) or not name.isidentifier():
            problems.append(f"space() has the parameter name {name!r}; use a plain identifier "
                            f"such as 'state_size' (no dots or spaces)")
        elif name in COMMON_PARAMS or name == ARCH_PARAM:
            problems.append(f"space() parameter {name!r} shadows the common parameter of that name; "
                            f"rename it (the common one is already passed to build)")
        if not isinstance(dist, (IntDistribution, FloatDistribution, CategoricalDistribution)):
            problems.append(f"space()[{name!r}] is {dist!r} ({type(dist).__name__}), not an Optuna "
                            f"distribution; use IntDistribution, FloatDistribution or "
                            f"CategoricalDistribution from optuna.distributions")
    return problems


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """Ask the trial for a value of ``name`` drawn from ``dist``."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"{name}: unsupported distribution {type(dist).__name__}")


class SearchSpace:
    """The whole space of a study, built once from config and the chosen plugins."""

    def __init__(
        self,
        common: Mapping[str, BaseDistribution],
        archs: Mapping[str, Architecture],
        task: Task,
        family_overrides: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        self.common = dict(common)
        self.archs = dict(archs)
        self.task = task
        self.fixed = dict(fixed or {})
        overrides = family_overrides or {}
        self.family: dict[str, dict[str, BaseDistribution]] = {}
        for arch_name, arch in self.archs.items():
            own = dict(arch.space())
            for param, spec in overrides.get(arch_name, {}).items():
                own[param] = override_distribution(own[param], spec, f"{arch_name}.{param}")
            self.family[arch_name] = own
        task_overrides = overrides.get("task", {})
        self.task_space = {
            param: override_distribution(dist, task_overrides[param], f"task.{param}")
            if param in task_overrides else dist
            for param, dist in task.space().items()
        }

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample (or take from ``fixed``) every parameter of one trial.

        Returns a flat dict: ``arch``, the common parameters, then the family's parameters
        as ``<arch>.<name>`` and the task's as ``task.<name>``.
        """
        params: dict[str, Any] = {}

        def value(name: str, dist: BaseDistribution) -> Any:
            return self.fixed[name] if name in self.fixed else suggest(trial, name, dist)

        params[ARCH_PARAM] = value(ARCH_PARAM, CategoricalDistribution(sorted(self.archs)))
        for name in COMMON_PARAMS:
            condition = CONDITIONS.get(name)
            if condition and params.get(condition[0]) != condition[1]:
                continue
            if name in self.common or name in self.fixed:
                params[name] = value(name, self.common.get(name))
        for name, dist in self.family[params[ARCH_PARAM]].items():
            params[f"{params[ARCH_PARAM]}.{name}"] = value(f"{params[ARCH_PARAM]}.{name}", dist)
        for name, dist in self.task_space.items():
            params[f"task.{name}"] = value(f"task.{name}", dist)
        return params


def family_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """What ``Architecture.build`` gets: common model parameters + the family's own, unprefixed."""
    arch = params[ARCH_PARAM]
    prefix = f"{arch}."
    own = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
    common = {k: params[k] for k in ("hidden_size", "num_layers", "dropout") if k in params}
    return {**common, **own}


def task_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """What ``Task.prepare`` gets: the task's own parameters, unprefixed."""
    return {k[len("task."):]: v for k, v in params.items() if k.startswith("task.")}
