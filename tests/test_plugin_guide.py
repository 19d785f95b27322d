"""The plugin contract stays documented and tested, and the guide's minimal plugin works."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import automl_rnn.hookspecs
from automl_rnn.plugins import load_registry
from automl_rnn.testing import check_architecture

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
MINIMAL_PLUGIN_MARK = "<!-- minimal-plugin"


def hookspecs() -> dict[str, str | None]:
    """Hook name -> docstring, for every ``@hookspec`` function in hookspecs.py."""
    tree = ast.parse(Path(automl_rnn.hookspecs.__file__).read_text())
    return {
        node.name: ast.get_docstring(node)
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(getattr(d, "id", None) == "hookspec" or getattr(getattr(d, "func", None), "id", None)
                == "hookspec" for d in node.decorator_list)
    }


HOOKS = sorted(hookspecs())


def test_hookspecs_are_found():
    assert "automl_rnn_register_architectures" in HOOKS and "automl_rnn_register_tasks" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring(hook):
    assert (hookspecs()[hook] or "").strip(), f"hookspecs.{hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_section_in_the_guide(hook):
    headings = [line for line in GUIDE.read_text().splitlines() if line.startswith("#")]
    assert any(f"`{hook}`" in line for line in headings), (
        f"docs/plugins.md has no heading for the hook {hook}; add `### `{hook}`` and document it")


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_implemented_by_a_test_plugin(hook):
    this_file = Path(__file__).resolve()
    uses = [p.name for p in sorted(ROOT.glob("tests/*.py"))
            if p.resolve() != this_file and re.search(rf"\bdef {hook}\b", p.read_text())]
    assert uses, f"no test implements the hook {hook}; add a test plugin that does (tests/*.py)"


def minimal_plugin_source() -> str:
    """The first python code block after the minimal-plugin mark in docs/plugins.md."""
    text = GUIDE.read_text()
    after = text[text.index(MINIMAL_PLUGIN_MARK):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_the_minimal_plugin_of_the_guide_registers_and_passes_the_kit(install_plugin):
    source = minimal_plugin_source()
    assert len(source.splitlines()) <= 40, "the guide's minimal plugin should stay short"
    install_plugin("causal_conv", "my_plugin", source, dist="automl-rnn-causal-conv")
    registry = load_registry(strict=True)
    assert registry.architecture_owner["causal_conv"] == "causal_conv"
    plugin = next(p for p in registry.plugins if p.name == "causal_conv")
    assert plugin.distribution == "automl-rnn-causal-conv"
    report = check_architecture(registry.architectures["causal_conv"])
    assert report.tiny_task_accuracy >= 0.8
