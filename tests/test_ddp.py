"""Multi-device trials: every trial of a study trains data-parallel in two CPU processes (gloo).

With ``ddp`` the study starts rank 1 once and reuses it; with ``ddp_spawn`` each trial spawns
both ranks, which costs seconds (each imports torch and Lightning), so one study of three
trials carries the end-to-end checks of each.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import tempfile

import mlflow
import numpy as np
import optuna
import pytest
import torch
from torch.multiprocessing import ProcessRaisedException

import synthetic_plugins
from automl_rnn.compose import compose_job, normalise_overrides
from automl_rnn.config import uses_rank_pool, validate
from automl_rnn.engine.failures import end_trial
from automl_rnn.engine.search import run_search
from automl_rnn.errors import ConfigError
from automl_rnn.plugins import load_registry

REGISTRY = load_registry([("synthetic_plugins", synthetic_plugins)])
SIGN = {"name": "sign", "n": 200}  # 40 validation sequences: the two ranks' halves need no padding


def make_run(*overrides: str):
    config, problems = compose_job(normalise_overrides(list(overrides)))
    assert not problems, problems
    config["task"] = dict(SIGN)
    return validate(config, REGISTRY), config


def trial(lr: float, poison: float) -> str:
    """An enqueued configuration of ``nan_gru``: a GRU whose class is defined inside its
    ``build`` (so the module must travel by value) and whose loss turns NaN when poisoned."""
    return (f"{{arch: nan_gru, nan_gru.poison: {poison}, lr: {lr}, hidden_size: 16, num_layers: 1, "
            f"scheduler: constant, batch_size: 16}}")


@pytest.mark.timeout(600)
def test_a_study_of_ddp_spawn_trials_prunes_and_publishes_the_best_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    leftovers = set(glob.glob(os.path.join(tempfile.gettempdir(), "automl_rnn_rank0_*")))
    # absolute URIs: MLflow caches stores by URI, and a relative one would outlive this test
    run, config = make_run(f"storage=sqlite:///{tmp_path / 'automl_rnn.db'}",
                           f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "trainer=cpu_ddp", "trainer.strategy=ddp_spawn", "search.n_trials=3", "search.max_epochs=3", "search.patience=0",
                           "search.archs=[nan_gru]", "pruner=median", "pruner.n_startup_trials=1",
                           "pruner.n_warmup_steps=0",
                           f"search.enqueue=[{trial(0.02, 0.0)},{trial(1e-6, 0.0)},{trial(0.02, 0.9)}]")
    assert (run.trainer.devices, run.trainer.strategy) == (2, "ddp_spawn")

    result = run_search(run, REGISTRY, config)

    complete, pruned, poisoned = optuna.load_study(study_name=run.study_name, storage=run.storage).trials
    assert complete.state == optuna.trial.TrialState.COMPLETE
    assert pruned.state == optuna.trial.TrialState.PRUNED
    # rank 0 reported every validation to the storage, and its prune decision stopped both ranks
    assert sorted(complete.intermediate_values) == [0, 1, 2]
    assert pruned.user_attrs["reason"] == f"pruned at epoch {max(pruned.intermediate_values)}"
    assert pruned.user_attrs["epochs"] == len(pruned.intermediate_values) < 3
    # a NaN loss in a training process prunes the trial, with that process's own error as reason
    assert poisoned.state == optuna.trial.TrialState.PRUNED
    assert "NonFiniteLossError: training loss became nan" in poisoned.user_attrs["reason"]
    assert "(in training process " in poisoned.user_attrs["reason"]
    # the history and the best epoch came back from rank 0 to the main process
    assert complete.user_attrs["epochs"] == 3
    assert complete.value == complete.intermediate_values[complete.user_attrs["best_epoch"]]
    assert complete.value == max(complete.intermediate_values.values())

    # the published model holds the best epoch's weights: it scores the trial's value on val
    assert result.published is not None and result.published.trial_number == complete.number
    model = mlflow.pyfunc.load_model(result.published.model_uri).unwrap_python_model().model
    val = synthetic_plugins.prepare_sign(synthetic_plugins.SignOptions(n=SIGN["n"]), {}).val
    x, y = torch.as_tensor(np.stack(val.xs)), torch.as_tensor(val.ys)
    with torch.no_grad():
        accuracy = (model(x, None).argmax(-1) == y).float().mean().item()
    assert accuracy == pytest.approx(complete.value)
    assert result.published.test_score > 0.7

    assert not multiprocessing.active_children()
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "automl_rnn_rank0_*"))) == leftovers


@pytest.mark.timeout(300)
def test_a_ddp_study_trains_on_a_rank_pool_that_survives_failed_trials(tmp_path, monkeypatch):
    """``trainer.strategy=ddp``: rank 1 is a process the study starts itself and reuses.

    Trials: good, NaN loss (every rank), hopeless (pruned by the median pruner), an error in
    rank 1 only (the trial fails with that rank's own error), good again. A failed fit stops
    the ranks and the next fit starts new ones; the study goes on to the end.
    """
    from automl_rnn.engine import rank_pool

    monkeypatch.chdir(tmp_path)
    starts, world_sizes = [], []
    start, end_process_group = rank_pool.RankPool.start, rank_pool._end_process_group

    def counted_start(self):
        starts.append(self.size)
        start(self)

    def recorded_end():
        world_sizes.append(torch.distributed.get_world_size() if torch.distributed.is_initialized() else None)
        end_process_group()

    monkeypatch.setattr(rank_pool.RankPool, "start", counted_start)
    monkeypatch.setattr(rank_pool, "_end_process_group", recorded_end)
    crash = "{arch: rank_crash, lr: 0.02, hidden_size: 16, num_layers: 1, scheduler: constant, batch_size: 16}"
    run, config = make_run(f"storage=sqlite:///{tmp_path / 'automl_rnn.db'}",
                           f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "trainer.devices=2", "trainer.strategy=ddp", "search.n_trials=5", "search.max_epochs=3",
                           "search.patience=0", "search.archs=[nan_gru,rank_crash]", "pruner=median",
                           "pruner.n_startup_trials=1", "pruner.n_warmup_steps=0", "tracking.register=false",
                           f"search.enqueue=[{trial(0.02, 0.0)},{trial(0.02, 0.9)},{trial(1e-6, 0.0)},{crash},"
                           f"{trial(0.03, 0.0)}]")
    assert uses_rank_pool(run.trainer)

    result = run_search(run, REGISTRY, config)

    good, poisoned, hopeless, crashed, again = result_trials = _trials(run)
    assert [t.state.name for t in result_trials] == ["COMPLETE", "PRUNED", "PRUNED", "FAIL", "COMPLETE"]
    assert "NonFiniteLossError: training loss became nan" in poisoned.user_attrs["reason"]
    assert hopeless.user_attrs["reason"] == f"pruned at epoch {max(hopeless.intermediate_values)}"
    assert crashed.user_attrs["reason"] == "RuntimeError: rank 1 is broken on purpose (in training process 1)"
    assert sorted(good.intermediate_values) == sorted(again.intermediate_values) == [0, 1, 2]
    # every fit ran in a process group of two; the ranks started three times: at the first
    # fit, and after each of the two failed fits (the pruned-by-Optuna fit ended normally)
    assert world_sizes == [2] * 5  # one fit per trial; the final model is reloaded, not refit
    assert starts == [2, 2, 2]
    assert result.published is not None and result.published.trial_number in (good.number, again.number)
    assert rank_pool._POOL is None and not torch.distributed.is_initialized()


def _trials(run):
    return optuna.load_study(study_name=run.study_name, storage=run.storage).trials


@pytest.mark.parametrize("overrides", [
    ("trainer.devices=2", "trainer.strategy=fsdp"),
    ("trainer.devices=2", "trainer.strategy=deepspeed"),
    ("trainer.devices=2", "trainer.strategy=deepspeed_stage_2"),
])
def test_strategies_that_re_run_the_command_are_rejected_with_the_fix(overrides):
    with pytest.raises(ConfigError) as raised:
        make_run(*overrides)
    (problem,) = raised.value.problems
    assert problem.startswith("trainer.strategy=") and "re-running the whole command" in problem
    assert "trainer.strategy=ddp," in problem and "trainer.strategy=ddp_spawn" in problem


def test_spawned_trials_need_a_storage_other_processes_can_reach():
    with pytest.raises(ConfigError, match="cannot see an in-memory study"):
        make_run("trainer=cpu_ddp", "trainer.strategy=ddp_spawn", "storage=sqlite:///:memory:")
    # the ranks of trainer.strategy=ddp never touch the study: rank 0 is the study's own process
    make_run("trainer.devices=2", "trainer.strategy=ddp", "storage=sqlite:///:memory:")


def test_single_device_spawning_and_pooled_strategies_validate():
    assert make_run("trainer=cpu_ddp")[0].trainer.strategy == "ddp"
    assert make_run("trainer=cpu_ddp", "trainer.strategy=ddp_spawn")[0].trainer.strategy == "ddp_spawn"
    assert make_run("trainer.devices=2", "trainer.strategy=ddp")[0].trainer.strategy == "ddp"
    assert make_run("trainer.devices=[0,1]", "trainer.accelerator=gpu")[0].trainer.strategy == "auto"  # Lightning: ddp
    assert make_run("trainer.devices=2", "trainer.strategy=ddp_fork")[0].trainer.devices == 2
    assert make_run("trainer.devices=1", "trainer.strategy=auto")[0].trainer.strategy == "auto"


def _raised_in_training_process(line: str) -> ProcessRaisedException:
    """What torch raises in the main process when a spawned training process fails."""
    trace = ("\n\n-- Process 1 terminated with the following error:\nTraceback (most recent call last):\n"
             '  File "module.py", line 57, in training_step\n    raise ...\n' + line + "\n")
    return ProcessRaisedException(trace, 1, 4242)


@pytest.mark.parametrize(("line", "pruned"), [
    ("automl_rnn.engine.failures.NonFiniteLossError: training loss became nan at epoch 2, batch 0", True),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 80.00 GiB", True),
    ("RuntimeError: broken on purpose", False),
])
def test_an_error_in_a_training_process_ends_the_trial_like_the_same_error_in_process(line, pruned):
    study = optuna.create_study()
    trial = study.ask()
    error = _raised_in_training_process(line)
    ending = end_trial(trial, error)
    assert isinstance(ending, optuna.TrialPruned) is pruned
    assert trial.user_attrs["reason"] == f"{line} (in training process 1)"
