"""Plugin discovery: entry points -> pluggy manager -> registry of architectures and tasks.

Plugins load lazily, on the first call to ``get_registry()``, never at import time. A plugin
that fails to import or to register is skipped with a warning naming it (fatal with
``AUTOML_RNN_STRICT_PLUGINS=1``); ``AUTOML_RNN_DISABLE_PLUGINS=a,b`` blocks plugins by
entry-point name.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from automl_rnn import PROJECT_NAME, hookspecs
from automl_rnn.types import Architecture, Task

STRICT_ENV = "AUTOML_RNN_STRICT_PLUGINS"
DISABLE_ENV = "AUTOML_RNN_DISABLE_PLUGINS"


class PluginError(Exception):
    """A plugin is broken in a way that stops the run (always shown without a traceback)."""


class PluginWarning(UserWarning):
    """A plugin was skipped because it is broken; the other plugins keep working."""


@dataclass
class PluginInfo:
    """What one plugin is and what it registered, for ``automl-rnn plugins``."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    architectures: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of this record."""
        return dict(self.__dict__)


@dataclass
class Registry:
    """Every registered architecture and task, and the record of each plugin."""

    architectures: dict[str, Architecture] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    architecture_owner: dict[str, str] = field(default_factory=dict)
    task_owner: dict[str, str] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """One message per plugin that was skipped."""
        return [f"{p.name}: {p.error}" for p in self.plugins if p.error]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def disabled_plugin_names() -> set[str]:
    """Plugin names listed in ``AUTOML_RNN_DISABLE_PLUGINS`` (comma separated)."""
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def create_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager that knows the hook specifications and nothing else yet."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def load_registry(
    extra_plugins: Iterable[tuple[str, ModuleType | object]] = (),
    *,
    strict: bool | None = None,
    use_entry_points: bool = True,
) -> Registry:
    """Discover plugins and collect what they register.

    Args:
        extra_plugins: ``(name, plugin object)`` pairs registered after the entry points,
            for notebooks and tests.
        strict: make a broken plugin fatal; defaults to ``AUTOML_RNN_STRICT_PLUGINS``.
        use_entry_points: also load the plugins listed under the ``automl_rnn`` group.

    Raises:
        PluginError: two plugins registered the same name, or a plugin is broken in
            strict mode.
    """
    strict = _env_flag(STRICT_ENV) if strict is None else strict
    disabled = disabled_plugin_names()
    manager = create_plugin_manager()
    registry = Registry()

    def skip(info: PluginInfo, problem: str) -> None:
        info.error = problem
        message = (
            f"plugin {info.name!r} ({info.module}) was skipped: {problem}. The other plugins "
            f"keep working; fix or uninstall it, or block it with {DISABLE_ENV}={info.name}."
        )
        if strict:
            raise PluginError(message + f" ({STRICT_ENV} is set, so this is fatal.)")
        warnings.warn(message, PluginWarning, stacklevel=3)

    candidates: list[tuple[PluginInfo, Callable[[], object]]] = []
    if use_entry_points:
        for ep in sorted(entry_points(group=PROJECT_NAME), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
            )
            candidates.append((info, ep.load))
    for name, plugin in extra_plugins:
        info = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)))
        candidates.append((info, lambda plugin=plugin: plugin))

    for info, load in candidates:
        if info.name in disabled:
            manager.set_blocked(info.name)
            continue
        registry.plugins.append(info)
        try:
            plugin = load()
        except Exception as error:  # a plugin's import can fail in any way
            skip(info, f"import failed with {type(error).__name__}: {error}")
            continue
        try:
            manager.register(plugin, name=info.name)
            manager.check_pending()
        except (ValueError, pluggy.PluginValidationError) as error:
            if manager.is_registered(plugin):
                manager.unregister(plugin)
            skip(info, f"invalid hook implementation: {error}")
            continue
        info.hooks = sorted(
            call.name for call in manager.get_hookcallers(plugin) or [] if call.name
        )

    by_name = {info.name: info for info in registry.plugins}
    _collect(manager, "automl_rnn_register_architectures", Architecture, registry.architectures,
             registry.architecture_owner, by_name, "architectures", skip)
    _collect(manager, "automl_rnn_register_tasks", Task, registry.tasks,
             registry.task_owner, by_name, "tasks", skip)
    return registry


def _collect(manager, hook_name, kind, table, owner, infos, info_field, skip) -> None:
    """Call one register hook plugin by plugin, so each registration knows its plugin."""
    for impl in reversed(getattr(manager.hook, hook_name).get_hookimpls()):
        info = infos[impl.plugin_name]
        added: list[str] = []

        def register(item: object, plugin: str = impl.plugin_name) -> None:
            if not isinstance(item, kind):
                raise TypeError(
                    f"register() got {type(item).__name__}, expected automl_rnn.types.{kind.__name__}"
                )
            if item.name in table:
                raise PluginError(
                    f"{kind.__name__.lower()} name {item.name!r} is registered twice: by plugin "
                    f"{owner[item.name]!r} and by plugin {plugin!r}. Rename one of them, or "
                    f"block one with {DISABLE_ENV}=<plugin name>."
                )
            table[item.name] = item
            owner[item.name] = plugin
            added.append(item.name)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as error:  # a plugin's hook can fail in any way
            for name in added:
                del table[name], owner[name]
            skip(info, f"{hook_name} raised {type(error).__name__}: {error}")
            continue
        getattr(info, info_field).extend(added)


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry
