"""What an installed distribution registered, ready for ``pytest.mark.parametrize``."""

from __future__ import annotations

import re

from automl_rnn.plugins import Registry, load_registry
from automl_rnn.types import Architecture, Task


def _canonical(distribution: str) -> str:
    """PEP 503 normalisation: ``My_Plugin`` and ``my-plugin`` name the same distribution."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _owned_names(registry: Registry, owners: dict[str, str], distribution: str | None) -> list[str]:
    """Registered names whose plugin belongs to ``distribution`` (all names when None).

    Raises:
        AssertionError: a plugin of ``distribution`` failed to load, or it registered nothing.
    """
    if distribution is None:
        return sorted(owners)
    wanted = _canonical(distribution)
    plugins = [p for p in registry.plugins if p.distribution and _canonical(p.distribution) == wanted]
    broken = [f"{p.name}: {p.error}" for p in plugins if p.error]
    assert not broken, f"distribution {distribution!r} has broken plugins: " + "; ".join(broken)
    names = {p.name for p in plugins}
    return sorted(name for name, plugin in owners.items() if plugin in names)


def registered_architectures(distribution: str | None = None) -> list[Architecture]:
    """Architectures registered through entry points, by name; only ``distribution``'s if given.

    Another distribution's broken plugin is skipped (with a warning), not an error here.

    Raises:
        AssertionError: a plugin of ``distribution`` is broken, or it registered no
            architecture (it is not installed?).
    """
    registry = load_registry(strict=False)
    names = _owned_names(registry, registry.architecture_owner, distribution)
    assert names or distribution is None, (
        f"distribution {distribution!r} registered no architecture; is it installed?")
    return [registry.architectures[name] for name in names]


def registered_tasks(distribution: str | None = None) -> list[Task]:
    """Tasks registered through entry points, by name; only ``distribution``'s if given.

    Raises:
        AssertionError: a plugin of ``distribution`` is broken, or it registered no task.
    """
    registry = load_registry(strict=False)
    names = _owned_names(registry, registry.task_owner, distribution)
    assert names or distribution is None, (
        f"distribution {distribution!r} registered no task; is it installed?")
    return [registry.tasks[name] for name in names]
