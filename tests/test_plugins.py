"""Plugin discovery through entry points, and every way a plugin can be broken."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from automl_rnn.plugins import DISABLE_ENV, STRICT_ENV, PluginError, PluginWarning, load_registry

GOOD_PLUGIN = """
from optuna.distributions import IntDistribution
from automl_rnn import hookimpl
from automl_rnn.types import Architecture

def build(input_size, params):
    raise NotImplementedError

@hookimpl
def automl_rnn_register_architectures(register):
    register(Architecture(name="my_tcn", description="a causal conv net", causal=True,
                          space=lambda: {"channels": IntDistribution(8, 64, log=True)}, build=build))
"""


def test_builtins_are_discovered_through_entry_points():
    registry = load_registry()
    assert {"lstm", "gru", "bilstm", "bigru"} <= set(registry.architectures)
    assert {"gunpoint", "italypower", "basicmotions", "ucr", "airline"} <= set(registry.tasks)
    assert registry.architectures["lstm"].causal and not registry.architectures["bigru"].causal
    recurrent = next(p for p in registry.plugins if p.name == "recurrent")
    assert recurrent.distribution == "automl-rnn" and recurrent.version
    assert recurrent.hooks == ["automl_rnn_register_architectures"]


def test_third_party_plugin_is_discovered(install_plugin):
    install_plugin("my", "my_tcn_plugin", GOOD_PLUGIN)
    registry = load_registry()
    assert "my_tcn" in registry.architectures
    info = next(p for p in registry.plugins if p.name == "my")
    assert (info.distribution, info.version, info.architectures) == ("thirdparty-plugin", "1.2.3", ["my_tcn"])
    assert registry.architecture_owner["my_tcn"] == "my"


def test_plugin_that_fails_to_import_is_skipped_with_its_name(install_plugin):
    install_plugin("broken", "broken_plugin", "raise ImportError('needs libfoo')\n")
    with pytest.warns(PluginWarning, match=r"plugin 'broken'.*needs libfoo.*AUTOML_RNN_DISABLE_PLUGINS=broken"):
        registry = load_registry()
    assert "lstm" in registry.architectures
    assert registry.problems and "broken" in registry.problems[0]


def test_strict_mode_makes_a_broken_plugin_fatal(install_plugin, monkeypatch):
    install_plugin("broken", "broken_plugin2", "raise RuntimeError('boom')\n")
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(PluginError, match=r"plugin 'broken'.*boom"):
        load_registry()


def test_disabled_plugins_are_not_imported(install_plugin, monkeypatch):
    install_plugin("broken", "broken_plugin3", "raise RuntimeError('must not be imported')\n")
    monkeypatch.setenv(DISABLE_ENV, "broken,airline")
    registry = load_registry(strict=True)
    assert "airline" not in registry.tasks and "broken" not in {p.name for p in registry.plugins}
    assert "broken_plugin3" not in sys.modules


def test_duplicate_name_is_an_error_naming_both_plugins(install_plugin):
    install_plugin("copycat", "copycat_plugin", GOOD_PLUGIN.replace('"my_tcn"', '"lstm"'))
    with pytest.raises(PluginError, match=r"'lstm' is registered twice: by plugin '(recurrent|copycat)' and by plugin '(copycat|recurrent)'"):
        load_registry()


def test_misspelt_hook_is_an_error_not_silence(install_plugin):
    install_plugin("typo", "typo_plugin", """
        from automl_rnn import hookimpl
        @hookimpl
        def automl_rnn_register_architecture(register):
            pass
    """)
    with pytest.warns(PluginWarning, match=r"plugin 'typo'.*automl_rnn_register_architecture"):
        registry = load_registry()
    assert next(p for p in registry.plugins if p.name == "typo").error


def test_register_with_the_wrong_type_names_the_plugin(install_plugin):
    install_plugin("wrongtype", "wrongtype_plugin", """
        from automl_rnn import hookimpl
        @hookimpl
        def automl_rnn_register_tasks(register):
            register("not a task")
    """)
    with pytest.warns(PluginWarning, match=r"plugin 'wrongtype'.*register\(\) got str, expected automl_rnn.types.Task"):
        load_registry()


def test_plugins_command_lists_plugins_as_json_without_importing_torch():
    code = ("import sys; from automl_rnn.cli import main; main(['plugins', '--json']); "
            "assert 'torch' not in sys.modules and 'lightning' not in sys.modules and 'mlflow' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    plugins = {p["name"]: p for p in json.loads(out)}
    assert plugins["recurrent"]["architectures"] == ["lstm", "gru", "bilstm", "bigru"]
    assert "gunpoint" in plugins["ucr"]["tasks"]


def test_help_does_not_import_torch():
    code = "import sys; from automl_rnn.cli import main; main(['--help']); assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "automl-rnn search" in out


THIRD_PARTY_TASK = """
from dataclasses import dataclass
from automl_rnn import hookimpl
from automl_rnn.types import Task

@dataclass(frozen=True)
class CsvOptions:
    path: str
    horizon: int = 7

def prepare(options, params):
    raise NotImplementedError

@hookimpl
def automl_rnn_register_tasks(register):
    register(Task("my_csv", "a task shipped without a YAML", metric="mae", direction="minimize",
                  requires_causal=True, prepare=prepare, options=CsvOptions))
"""


def test_a_third_party_task_is_configured_from_its_options_dataclass(install_plugin):
    from automl_rnn.compose import compose_job, store_plugin_task_configs
    from automl_rnn.config import validate
    from automl_rnn.errors import ConfigError

    install_plugin("my_csv", "my_csv_plugin", THIRD_PARTY_TASK)
    registry = load_registry()
    store_plugin_task_configs(registry)

    config, problems = compose_job(["task=my_csv", "task.path=sales.csv", "search.archs=[lstm]"])
    assert not problems and config["task"] == {"name": "my_csv", "path": "sales.csv", "horizon": 7}
    assert validate(config, registry).task_options == registry.tasks["my_csv"].options("sales.csv")

    config, problems = compose_job(["task=my_csv", "search.archs=[lstm]"])
    with pytest.raises(ConfigError, match=r"task\.path: required, it has no default"):
        validate(config, registry)
