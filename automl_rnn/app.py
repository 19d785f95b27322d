"""The Hydra application behind ``automl-rnn search``, and ``automl-rnn best``."""

from __future__ import annotations

from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from automl_rnn.compose import CONFIG_MODULE, CONFIG_NAME
from automl_rnn.config import RunConfig, validate
from automl_rnn.display import console
from automl_rnn.errors import UserError
from automl_rnn.plugins import get_registry


def _announce_dropped(run: RunConfig) -> None:
    """Say which families a causal task left out; loudly when the user named them."""
    if not run.dropped_archs:
        return
    named = any(o.lstrip("+~").split("=")[0] == "search.archs" for o in HydraConfig.get().overrides.task)
    dropped = ", ".join(run.dropped_archs)
    message = (f"task {run.task.name!r} forecasts the future, so it needs causal families: "
               f"{dropped} look ahead and are left out; searching {', '.join(run.search.archs)}.")
    console.print(f"[bold yellow]warning:[/] {message}" if named else f"[dim]{message}[/]", highlight=False)


@hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME)
def search_app(cfg: DictConfig) -> float | None:
    """One Hydra job: validate the config, run the search, return the best validation value."""
    from automl_rnn.engine.search import run_search

    config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    registry = get_registry()
    from automl_rnn.cli import fail

    try:
        run = validate(config, registry)
    except UserError as error:
        fail(str(error))
    _announce_dropped(run)
    try:
        return run_search(run, registry, config).best_value
    except UserError as error:
        fail(str(error))
    return None


def show_best(args: list[str]) -> None:
    """Print a study's best trial, its parameters and the registered champion model."""
    import mlflow
    import optuna

    from automl_rnn.compose import compose_job, normalise_overrides, store_plugin_task_configs
    from automl_rnn.display import key_value_table, pareto_table, state_counts, trials_table
    from automl_rnn.engine.choice import choose_best, is_multi_objective, objective_names
    from automl_rnn.errors import ConfigError
    from automl_rnn.tracking.mlflow import champion_score

    store_plugin_task_configs(get_registry())
    config, problems = compose_job(normalise_overrides(args))
    if problems or config is None:
        raise ConfigError(problems)
    run = validate(config, get_registry())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    except KeyError:
        raise UserError(
            f"there is no study named {run.study_name!r} in {run.storage}. Run "
            f"`automl-rnn search task={run.task.name}` first, or point storage=... and study_name=... "
            f"at an existing study."
        ) from None
    trials = study.get_trials(deepcopy=False)
    console.print(trials_table(trials, run.task.metric, run.task.direction, top=5))
    rows: dict[str, Any] = {"study": run.study_name, "storage": run.storage,
                            "trials": ", ".join(f"{n} {s.lower()}" for s, n in sorted(state_counts(trials).items()))}
    reasons = [t for t in trials if t.user_attrs.get("reason")]
    for t in reasons[-3:]:
        rows[f"trial {t.number} {t.state.name.lower()}"] = t.user_attrs["reason"][:200]
    try:
        best = choose_best(study)
    except ValueError:
        console.print(key_value_table("Best trial", rows))
        raise UserError(f"study {run.study_name!r} has no completed trial yet.") from None
    if is_multi_objective(study):
        console.print(pareto_table(study.best_trials, objective_names(study, run.task.metric), run.task.direction,
                                   chosen=best.number))
        rows["best trial"] = f"{best.number} (Pareto front: the best on {run.task.metric})"
    else:
        rows["best trial"] = best.number
    rows[f"val {run.task.metric}"] = best.values[0]
    for key, value in best.user_attrs.get("params", best.params).items():
        rows[f"  {key}"] = value
    client = mlflow.MlflowClient(tracking_uri=run.tracking.uri)
    champion = champion_score(client, run.model_name, run.tracking.alias)
    if champion is not None:
        version = client.get_model_version_by_alias(run.model_name, run.tracking.alias)
        rows[f"test {run.task.metric} (champion)"] = champion[0]
        rows["model URI"] = f"models:/{run.model_name}@{run.tracking.alias}"
        rows["model version"] = f"{version.version} (from study {version.tags.get('study')}, trial {version.tags.get('trial')})"
    else:
        rows["model URI"] = f"none registered as {run.model_name}@{run.tracking.alias} in {run.tracking.uri}"
    console.print(key_value_table("Best trial", rows))
    print(rows["model URI"])
