"""The engine on a synthetic task: failures end one trial only, pruning fires, resume, champion."""

from __future__ import annotations

import mlflow
import optuna
import pytest
import torch

import synthetic_plugins
from automl_rnn.compose import compose_job, normalise_overrides
from automl_rnn.config import validate
from automl_rnn.engine.ensemble import EnsembleModel
from automl_rnn.engine.choice import ranked_by_validation
from automl_rnn.engine.search import run_search
from automl_rnn.errors import UserError
from automl_rnn.plugins import load_registry
from automl_rnn.tracking.mlflow import StudyTracker

REGISTRY = load_registry([("synthetic_plugins", synthetic_plugins)])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_run(*overrides: str, task_options: dict | None = None):
    """The real composed config with the synthetic task, then validated."""
    config, problems = compose_job(normalise_overrides(list(overrides)))
    assert not problems, problems
    config["task"] = {"name": "sign", **(task_options or {})}
    return validate(config, REGISTRY), config


def search(*overrides: str, task_options: dict | None = None):
    run, config = make_run(*overrides, task_options=task_options)
    return run_search(run, REGISTRY, config), run


def test_failures_end_only_their_trial_with_the_reason_stored(workdir):
    result, run = search("search.n_trials=5", "search.max_epochs=2", "pruner=none",
                         "search.archs=[gru,nan_gru,crash,wrong_shape,out_of_memory]", "sampler=random",
                         "search.fixed.nan_gru.poison=0.9", "search.enqueue=[{arch: gru},{arch: nan_gru},"
                         "{arch: crash},{arch: wrong_shape},{arch: out_of_memory}]")
    study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    by_arch = {t.params["arch"]: t for t in study.trials}
    assert by_arch["gru"].state == optuna.trial.TrialState.COMPLETE
    assert by_arch["nan_gru"].state == optuna.trial.TrialState.PRUNED
    assert "NonFiniteLossError" in by_arch["nan_gru"].user_attrs["reason"]
    assert by_arch["out_of_memory"].state == optuna.trial.TrialState.PRUNED
    assert "OutOfMemoryError" in by_arch["out_of_memory"].user_attrs["reason"]
    assert by_arch["crash"].state == optuna.trial.TrialState.FAIL
    assert "crash family is broken on purpose" in by_arch["crash"].user_attrs["reason"]
    assert by_arch["wrong_shape"].state == optuna.trial.TrialState.FAIL
    assert "plugin 'synthetic_plugins'" in by_arch["wrong_shape"].user_attrs["reason"]
    assert result.published is not None and result.published.trial_number == by_arch["gru"].number
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`automl_rnn.role` = 'trial'")
    assert sorted(runs["tags.state"]) == ["COMPLETE", "FAIL", "FAIL", "PRUNED", "PRUNED"]
    assert set(runs.loc[runs["tags.state"] == "PRUNED", "status"]) == {"KILLED"}


PRUNER_SETTINGS = {
    "median": ("pruner.n_startup_trials=1", "pruner.n_warmup_steps=2"),
    "percentile": ("pruner.n_startup_trials=1", "pruner.n_warmup_steps=2", "pruner.percentile=50"),
    "successive_halving": ("pruner.min_resource=2", "pruner.reduction_factor=2"),
    "hyperband": ("pruner.min_resource=2", "pruner.reduction_factor=2"),
}


@pytest.mark.parametrize("pruner", sorted(PRUNER_SETTINGS))
def test_pruner_stops_a_hopeless_trial(workdir, pruner):
    good = "{arch: gru, lr: 0.02, hidden_size: 32, num_layers: 1, scheduler: constant, batch_size: 16}"
    hopeless = "{arch: gru, lr: 1.0e-06, hidden_size: 32, num_layers: 1, scheduler: constant, batch_size: 16}"
    result, run = search("search.n_trials=3", "search.max_epochs=8", "search.patience=0", f"pruner={pruner}",
                         *PRUNER_SETTINGS[pruner], "search.archs=[gru]",
                         f"search.enqueue=[{good},{hopeless},{hopeless}]", task_options={"n": 400})
    study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.COMPLETE
    assert optuna.trial.TrialState.PRUNED in states[1:]
    pruned = next(t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED)
    assert pruned.user_attrs["reason"].startswith("pruned at epoch")
    assert pruned.user_attrs["epochs"] < 8
    # the summary's account: every trained epoch counted, and the pruned ones saved some
    assert result.epochs.trained == sum(t.user_attrs["epochs"] for t in study.trials)
    assert result.epochs.saved == sum(8 - t.user_attrs["epochs"] for t in study.trials
                                      if t.state == optuna.trial.TrialState.PRUNED) > 0


def test_interrupted_study_resumes_to_the_full_budget(workdir):
    synthetic_plugins.INTERRUPTS["left"] = 1
    args = ("search.n_trials=3", "search.max_epochs=1", "search.archs=[interrupt]")
    first, run = search(*args, "search.enqueue=[{arch: interrupt},{arch: interrupt}]")
    assert first.interrupted and first.published is None
    study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    assert len(study.trials) == 1
    second, _ = search(*args)
    assert not second.interrupted and second.n_finished == 3
    study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    assert [t.state.name for t in study.trials].count("COMPLETE") == 2
    parents = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`automl_rnn.role` = 'study'")
    assert len(parents) == 1 and parents["status"].item() == "FINISHED"


def test_champion_alias_moves_only_for_a_better_model(workdir):
    common = ("search.n_trials=1", "search.archs=[gru]", "tracking.model_name=sign_model",
              "search.fixed.hidden_size=32", "search.fixed.num_layers=1", "search.fixed.scheduler=constant")
    good, _ = search(*common, "study_name=good", "search.max_epochs=10", "search.fixed.lr=0.02")
    bad, _ = search(*common, "study_name=bad", "search.max_epochs=1", "search.fixed.lr=1.0e-06")
    assert good.published.champion_moved and not bad.published.champion_moved
    assert bad.published.test_score < good.published.test_score
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("sign_model", "champion")
    assert champion.version == good.published.registered_version
    assert bad.published.registered_version == 2


def test_refit_retrains_the_chosen_config_on_train_and_val_for_its_best_epoch_count(workdir):
    common = ("search.n_trials=2", "search.archs=[gru]", "search.max_epochs=6", "search.patience=0",
              "search.fixed.hidden_size=16", "search.fixed.num_layers=1", "search.fixed.scheduler=plateau")
    kept, _ = search(*common, "study_name=kept")
    refit, run = search(*common, "study_name=refit", "search.refit=true")
    assert kept.published.refit_epochs is None
    chosen = optuna.load_study(study_name="refit", storage=run.storage).trials[refit.published.trial_number]
    assert refit.published.refit_epochs == chosen.user_attrs["best_epoch"] + 1
    # the same trials (same seeds) were chosen from, but the published model saw more data
    assert refit.published.trial_number == kept.published.trial_number
    assert refit.published.test_score != kept.published.test_score
    (parent,) = mlflow.search_runs(experiment_names=["refit"], output_format="list",
                                   filter_string="tags.`automl_rnn.role` = 'study'")
    assert parent.data.metrics["refit_epochs"] == refit.published.refit_epochs


@pytest.mark.parametrize(("sampler", "expected"), [
    ("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler),
    ("cmaes", optuna.samplers.CmaEsSampler), ("gp", optuna.samplers.GPSampler),
    ("nsga2", optuna.samplers.NSGAIISampler),
])
def test_every_sampler_draws_from_the_real_space_and_a_seed_makes_it_reproducible(workdir, sampler, expected):
    from automl_rnn.engine.search import build_space
    from automl_rnn.engine.study import make_sampler

    run, _ = make_run(f"sampler={sampler}", "seed=7", "search.archs=[gru,lstm]")
    space = build_space(run, REGISTRY)

    def drawn_params() -> list[dict]:
        study = optuna.create_study(sampler=make_sampler(run), direction="maximize")
        # a smooth stand-in for a validation score, so model-based samplers have a signal
        study.optimize(lambda trial: -abs(space.sample(trial)["lr"] - 1e-3), n_trials=12)
        return [t.params for t in study.trials]

    assert isinstance(make_sampler(run), expected)
    first = drawn_params()
    assert first == drawn_params()
    assert len({p["gru.hidden_size" if "gru.hidden_size" in p else "hidden_size"] for p in first}) > 1


def test_a_trial_over_max_params_is_pruned_before_it_trains(workdir):
    small = "{arch: gru, hidden_size: 8, num_layers: 1, scheduler: constant}"
    large = "{arch: gru, hidden_size: 128, num_layers: 2, scheduler: constant}"
    result, run = search("search.n_trials=2", "search.max_epochs=2", "search.archs=[gru]", "search.max_params=2000",
                         f"search.enqueue=[{small},{large}]")
    small_trial, large_trial = optuna.load_study(study_name=run.study_name, storage=run.storage).trials
    assert small_trial.state == optuna.trial.TrialState.COMPLETE and small_trial.user_attrs["n_params"] <= 2000
    assert large_trial.state == optuna.trial.TrialState.PRUNED
    assert large_trial.user_attrs["n_params"] > 2000 and "over search.max_params=2,000" in large_trial.user_attrs["reason"]
    assert large_trial.user_attrs.get("epochs", 0) == 0  # never trained
    assert result.published.trial_number == small_trial.number


def test_a_trial_time_limit_ends_training_with_the_best_epoch_so_far(workdir):
    result, run = search("search.n_trials=1", "search.max_epochs=500", "search.patience=0", "search.archs=[gru]",
                         "search.trial_timeout=1.5", "search.fixed.scheduler=constant", task_options={"n": 400})
    (trial,) = optuna.load_study(study_name=run.study_name, storage=run.storage).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert 0 < trial.user_attrs["epochs"] < 500
    assert trial.user_attrs["reason"].startswith("search.trial_timeout=1.5 s reached after")
    assert result.published is not None


def test_reevaluate_top_k_retrains_the_best_trials_with_more_seeds_and_picks_the_best_mean(workdir):
    result, run = search("search.n_trials=3", "search.max_epochs=3", "search.archs=[gru]", "pruner=none",
                         "search.reevaluate_top_k=2", "search.reevaluate_seeds=2", "search.fixed.scheduler=constant",
                         "search.fixed.hidden_size=8", task_options={"n": 200})
    trials = optuna.load_study(study_name=run.study_name, storage=run.storage).trials
    reevaluation = result.published.reevaluation
    assert len(reevaluation) == 2 and all(len(values) == 2 for values in reevaluation.values())
    # each trial's own value is its first seed, and the re-evaluated trials are the two best
    assert sorted(values[0] for values in reevaluation.values()) == sorted(t.value for t in trials)[-2:]
    assert all(values[0] == trials[number].value for number, values in reevaluation.items())
    means = {number: sum(values) / 2 for number, values in reevaluation.items()}
    assert means[result.published.trial_number] == max(means.values())


@pytest.mark.parametrize("refit", [False, True])
def test_ensemble_publishes_the_mean_of_several_seeds_of_the_chosen_trial(workdir, refit):
    result, run = search("search.n_trials=2", "search.max_epochs=3", "search.archs=[gru]", "pruner=none",
                         "search.ensemble=3", f"search.refit={str(refit).lower()}", "search.fixed.scheduler=constant",
                         "search.fixed.hidden_size=8", task_options={"n": 200})
    model = mlflow.pyfunc.load_model(result.published.model_uri).unwrap_python_model().model
    assert isinstance(model, EnsembleModel) and len(model.members) == 3
    first, second = (dict(m.named_parameters()) for m in model.members[:2])
    assert any(not torch.equal(first[name], second[name]) for name in first), "members must differ by seed"
    x = torch.randn(4, 12, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), torch.stack([m(x) for m in model.members]).mean(0))
    if not refit:
        # the first member is the chosen trial's own trained model
        stored = StudyTracker(run.tracking.uri, run.experiment_name, run.study_name).load_weights(
            optuna.load_study(study_name=run.study_name, storage=run.storage)
            .trials[result.published.trial_number].user_attrs["mlflow_run_id"])
        assert all(torch.equal(value, stored["model." + name]) for name, value in model.members[0].state_dict().items())
    else:
        assert result.published.refit_epochs is not None


def test_ensemble_of_trials_publishes_the_mean_of_the_best_trials_on_validation(workdir):
    result, run = search("search.n_trials=3", "search.max_epochs=3", "search.archs=[gru]", "pruner=none",
                         "search.ensemble=2", "search.ensemble_members=trials", "search.refit=false",
                         "search.fixed.scheduler=constant", task_options={"n": 200})
    study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    ranked = ranked_by_validation(study)
    assert result.published.ensemble_trials == (ranked[0].number, ranked[1].number)
    model = mlflow.pyfunc.load_model(result.published.model_uri).unwrap_python_model().model
    assert isinstance(model, EnsembleModel) and len(model.members) == 2
    # each member is its trial's configuration, retrained with the trial's seed
    sizes = [m.backbone.output_size for m in model.members]
    assert sizes == [t.user_attrs["params"]["hidden_size"] for t in ranked[:2]]


def test_a_study_resumed_with_other_objectives_is_a_user_error(workdir):
    common = ("search.n_trials=1", "search.max_epochs=1", "search.archs=[gru]", "search.fixed.hidden_size=8")
    first, run = search(*common)
    assert first.n_finished == 1 and not first.pareto_front
    with pytest.raises(UserError, match=r"already exists with other objectives \(search.objectives=\['accuracy'\]\); this run asks for "
                                        r"search.objectives=\['accuracy', 'params'\]"):
        search(*common, "search.objectives=[accuracy,params]")
    assert len(optuna.load_study(study_name=run.study_name, storage=run.storage).trials) == 1


def test_epoch_size_draws_that_many_training_sequences_per_epoch_in_reshuffled_passes(workdir):
    from automl_rnn.engine.objective import loaders

    run, _ = make_run("search.epoch_size=250")
    assert run.epoch_size == 250 and make_run()[0].epoch_size == 0  # the sign task asks for none
    data = run.task.prepare(run.task_options, {})
    n = len(data.train)
    assert n < 250
    counts = torch.zeros(n, dtype=torch.long)
    train, _ = loaders(data, batch_size=32, seed=0, num_workers=0, epoch_size=run.epoch_size)
    assert len(train) == -(-250 // 32)
    drawn = torch.tensor(list(train.sampler))
    assert len(drawn) == 250
    counts.index_add_(0, drawn, torch.ones_like(drawn))
    assert counts.min() >= 250 // n and counts.max() <= 250 // n + 1  # whole passes, the last one partial
    one_pass, _ = loaders(data, batch_size=32, seed=0, num_workers=0, epoch_size=n // 2)
    assert sorted(one_pass.sampler) == list(range(n))


def test_ucr_tasks_train_at_least_256_sequences_per_epoch_unless_overridden():
    from automl_rnn.plugins import load_registry as load

    ucr = load(use_entry_points=True)
    gunpoint, problems = compose_job(normalise_overrides(["task=gunpoint"]))
    assert validate(gunpoint, ucr).epoch_size == 256
    off, problems = compose_job(normalise_overrides(["task=gunpoint", "search.epoch_size=0"]))
    assert validate(off, ucr).epoch_size == 0


def test_training_processes_keep_freed_memory_unless_switched_off():
    """glibc keeps freed blocks after the trainer's setup: a freed 16 MB block is reused, so
    touching a new one takes (almost) no page faults; trainer.keep_freed_memory=false leaves it out."""
    import resource
    import sys

    from automl_rnn.config import TrainerConfig
    from automl_rnn.engine.cpu_memory import keep_freed_memory
    from automl_rnn.engine.trainer import KeepFreedMemory, TrainerRecipe

    def recipe(**config) -> TrainerRecipe:
        return TrainerRecipe(config=TrainerConfig(**config), max_epochs=1, gradient_clip_val=None,
                             monitor="val_loss", mode="min", patience=0, callbacks=[])

    assert any(isinstance(c, KeepFreedMemory) for c in recipe().build().callbacks)
    assert not any(isinstance(c, KeepFreedMemory) for c in recipe(keep_freed_memory=False).build().callbacks)
    if not sys.platform.startswith("linux"):
        pytest.skip("the setting is glibc's")
    assert keep_freed_memory()

    def faults_of_a_fresh_block() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(4 * 2**20)  # 16 MB, written page by page
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults_of_a_fresh_block()
    assert faults_of_a_fresh_block() < 500  # glibc's defaults: ~4,000 (one per 4 KB page)
