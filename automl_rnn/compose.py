"""Hydra composition of the configs under conf/, checked before any job starts.

``check_overrides`` composes the config of every job a command line describes (a multirun
sweep expands to several) and collects every problem at once: Hydra's own (a typo in a key,
an unknown config group option) and ours (``config.validate``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from automl_rnn.errors import ConfigError

if TYPE_CHECKING:
    from automl_rnn.plugins import Registry

CONFIG_MODULE = "automl_rnn_conf"
CONFIG_NAME = "config"
MISSING_VALUE = "???"
"""OmegaConf's mark for a value the user must set (a task option without a default)."""
OPEN_MAPS = ("search.fixed.", "search.space.")
"""Config maps whose keys are not known in advance: overrides into them may add keys."""


def normalise_overrides(overrides: list[str]) -> list[str]:
    """Let ``search.fixed.x=1`` and ``search.space.<family>.<p>.high=9`` add keys (``++``).

    The keys are checked by ``config.validate`` instead, with a did-you-mean hint.
    """
    return [f"++{o}" if o.startswith(OPEN_MAPS) else o for o in overrides]


def _hydra_message(error: BaseException) -> str:
    message = str(error).strip().replace("\n", " ")
    cause = error.__cause__
    if cause is not None and str(cause) and str(cause) not in message:
        message += f" ({str(cause).splitlines()[0]})"
    return message


def _describe(override: str, error: BaseException, base) -> str:
    """A one-line problem for a bad override: unknown key or group option, with a hint."""
    import difflib

    from hydra.errors import MissingConfigException
    from omegaconf import OmegaConf

    key = override.lstrip("+~").split("=", 1)[0]
    if isinstance(error, MissingConfigException) and getattr(error, "options", None):
        group_options = sorted(error.options)
        value = override.split("=", 1)[-1]
        close = difflib.get_close_matches(value, group_options, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{key}={value}: no such {key} config{hint}; available: {', '.join(group_options)}"
    if "not in struct" in f"{error} {error.__cause__}":
        parent, _, leaf = key.rpartition(".")
        try:
            node = OmegaConf.select(base(), parent) if parent else base()
            siblings = [str(k) for k in node.keys()] if hasattr(node, "keys") else []
        except Exception:
            siblings = []
        close = difflib.get_close_matches(leaf, siblings, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = f"; keys here: {', '.join(siblings)}" if siblings else ""
        return f"{key}: unknown key{hint}{allowed}"
    return f"{override}: {_hydra_message(error)}"


def compose_job(overrides: list[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """Compose one job's config as a plain dict; on failure, find each bad override.

    Returns the config (None when nothing composes) and the problems found.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        try:
            cfg = compose(CONFIG_NAME, overrides=overrides)
            return OmegaConf.to_container(cfg, resolve=True), []
        except Exception as error:  # Hydra raises several exception types for bad input
            first_error = error
        problems: list[str] = []
        good: list[str] = []
        for override in overrides:
            try:
                compose(CONFIG_NAME, overrides=good + [override])
                good.append(override)
            except Exception as error:
                problems.append(_describe(override, error, lambda: compose(CONFIG_NAME, overrides=good)))
        if not problems:
            problems.append(_hydra_message(first_error))
            return None, problems
        try:
            cfg = compose(CONFIG_NAME, overrides=good)
            return OmegaConf.to_container(cfg, resolve=True), problems
        except Exception as error:
            return None, problems + [_hydra_message(error)]


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The override list of each job of a (multirun) command line."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as error:
        raise ConfigError([f"cannot parse the overrides: {_hydra_message(error)}"]) from None
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [job for batch in batches for job in batch]


def store_plugin_task_configs(registry: Registry) -> None:
    """Make ``task=<name>`` work for every registered task that has no file in ``conf/task/``.

    A third-party task ships no YAML inside this package, so its config is made from its
    ``Task.options`` dataclass and put in Hydra's ConfigStore (group ``task``): ``name`` plus
    every field with its default, and ``???`` (required) for a field without one.
    """
    import dataclasses
    from importlib import resources

    from hydra.core.config_store import ConfigStore

    folder = resources.files(CONFIG_MODULE).joinpath("task")
    shipped = {entry.name.removesuffix(".yaml") for entry in folder.iterdir()}
    store = ConfigStore.instance()
    for task in registry.tasks.values():
        if task.name in shipped:
            continue
        node: dict[str, Any] = {"name": task.name}
        for option in dataclasses.fields(task.options):
            if option.default is not dataclasses.MISSING:
                node[option.name] = option.default
            elif option.default_factory is not dataclasses.MISSING:
                node[option.name] = option.default_factory()
            else:
                node[option.name] = MISSING_VALUE
        store.store(group="task", name=task.name, node=node)


def check_overrides(overrides: list[str], registry: Registry) -> None:
    """Compose and validate every job; raise one ConfigError listing all problems."""
    from automl_rnn.config import validate

    problems: list[str] = []
    for job in expand_sweep(overrides):
        cfg, found = compose_job(job)
        if cfg is not None:
            try:
                validate(cfg, registry)
            except ConfigError as error:
                found += error.problems
        problems += [p for p in found if p not in problems]
    if problems:
        raise ConfigError(problems)
