"""An end-to-end micro study: the real composed config, validation, search, test and MLflow."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from automl_rnn.plugins import PluginInfo, Registry
from automl_rnn.testing._threads import one_thread
from automl_rnn.testing.reference import REFERENCE_ARCH
from automl_rnn.types import Architecture, Task


@one_thread
def check_micro_study(
    task: Task,
    options: Any,
    workdir: Path,
    *,
    arch: Architecture = REFERENCE_ARCH,
    n_trials: int = 2,
    max_epochs: int = 1,
) -> None:
    """Run ``n_trials`` trials of ``max_epochs`` on ``task`` with ``arch`` inside ``workdir``.

    The config is the shipped one (composed by Hydra, checked by ``config.validate``) with
    ``options`` as the task's config, and the registry holds only ``task`` and ``arch``. The
    study must finish every trial, complete at least one, and evaluate and register the chosen
    model on the test split with a finite score.
    """
    from automl_rnn.compose import compose_job, normalise_overrides
    from automl_rnn.config import validate
    from automl_rnn.engine.search import run_search

    workdir.mkdir(parents=True, exist_ok=True)
    plugin = "under-test"
    registry = Registry(
        architectures={arch.name: arch}, tasks={task.name: task},
        plugins=[PluginInfo(plugin, "automl_rnn.testing", architectures=[arch.name],
                            tasks=[task.name])],
        architecture_owner={arch.name: plugin}, task_owner={task.name: plugin},
    )
    config, problems = compose_job(normalise_overrides([
        f"search.n_trials={n_trials}", f"search.max_epochs={max_epochs}",
        f"search.archs=[{arch.name}]", "search.fixed.num_layers=1", "search.fixed.hidden_size=16",
        "pruner=none", "trainer.num_threads=1",
        f"storage=sqlite:///{workdir / 'automl_rnn.db'}",
        f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
    ]))
    assert config is not None and not problems, problems
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    config["task"] = {"name": task.name, **fields}
    run = validate(config, registry)
    previous = Path.cwd()
    os.chdir(workdir)  # MLflow puts artifacts under the working folder
    try:
        result = run_search(run, registry, config)
    finally:
        os.chdir(previous)
    assert result.n_finished == n_trials, (
        f"task {task.name!r}: the micro study finished {result.n_finished} of {n_trials} trials")
    assert result.states.get("COMPLETE"), (
        f"task {task.name!r}: no trial of the micro study completed ({result.states}); run "
        f"`automl-rnn best` on {workdir} to read the stored reasons")
    assert result.best_value is not None and math.isfinite(result.best_value), (
        f"task {task.name!r}: the best trial's {task.metric} is {result.best_value}")
    assert result.published is not None and math.isfinite(result.published.test_score), (
        f"task {task.name!r}: the chosen model got no finite test score")
