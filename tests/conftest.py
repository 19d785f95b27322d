"""Shared fixtures: temporary third-party plugin distributions discovered through entry points."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

# The models in tests are tiny: one thread is faster than two, and far faster when other
# work shares the machine's cores (threads then wait on each other).
torch.set_num_threads(1)


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a throwaway distribution with one plugin module under the ``automl_rnn`` group.

    The distribution is a real ``*.dist-info`` folder on ``sys.path``, so discovery goes
    through ``importlib.metadata`` entry points exactly as for a pip-installed package.
    Returns ``install(entry_name, module_name, source, dist="...")``.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    added: list[str] = []

    def install(entry_name: str, module_name: str, source: str, dist: str = "thirdparty-plugin") -> None:
        (tmp_path / f"{module_name}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        entry_file = info / "entry_points.txt"
        previous = entry_file.read_text() if entry_file.exists() else "[automl_rnn]\n"
        entry_file.write_text(previous + f"{entry_name} = {module_name}\n")
        added.append(module_name)

    yield install
    for name in added:
        sys.modules.pop(name, None)
