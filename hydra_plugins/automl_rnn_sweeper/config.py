"""The sweeper's structured config, stored in Hydra's ConfigStore as ``hydra/sweeper=automl_rnn``."""

# No `from __future__ import annotations`: Hydra imports plugin modules outside sys.modules, where
# dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class SamplerConf:
    """``hydra.sweeper.sampler``: ``name`` (tpe, random, cmaes, gp, nsga2), ``seed`` and the options of
    Optuna's sampler of that name; an option left null keeps Optuna's default."""

    name: str = "tpe"
    seed: Optional[int] = None
    n_startup_trials: Optional[int] = None
    multivariate: Optional[bool] = None
    group: Optional[bool] = None
    sigma0: Optional[float] = None
    restart_strategy: Optional[str] = None
    popsize: Optional[int] = None
    with_margin: Optional[bool] = None
    deterministic_objective: Optional[bool] = None
    population_size: Optional[int] = None
    mutation_prob: Optional[float] = None
    crossover_prob: Optional[float] = None
    swapping_prob: Optional[float] = None


@dataclass
class PrunerConf:
    """``hydra.sweeper.pruner``: ``name`` (none, median, percentile, successive_halving,
    hyperband) and the options of Optuna's pruner of that name; null keeps Optuna's default."""

    name: str = "median"
    n_startup_trials: Optional[int] = None
    n_warmup_steps: Optional[int] = None
    percentile: Optional[float] = None
    min_resource: Optional[Any] = None
    max_resource: Optional[Any] = None
    reduction_factor: Optional[int] = None
    min_early_stopping_rate: Optional[int] = None


@dataclass
class AutomlRnnSweeperConf:
    """``hydra.sweeper``: an Optuna study whose trials are Hydra jobs.

    Attributes:
        direction: ``minimize`` or ``maximize``, or a list of them for several objectives
            (the task function then returns one value per direction).
        n_trials: finished trials the study should hold; a resumed study runs the rest.
        n_jobs: trials asked and launched together, as one batch of the Hydra launcher
            (in parallel when the launcher runs jobs in parallel).
        sampler: see ``SamplerConf``.
        pruner: see ``PrunerConf``; it acts on the values the jobs ``report``.
        storage: an Optuna storage URL (e.g. ``sqlite:///sweep.db``); null keeps the study
            in memory.
        study_name: with ``storage``, re-running the sweep resumes this study.
        params: parameter name -> Hydra sweep expression (``choice(a,b)``,
            ``range(1,8)``, ``interval(0.1,1.0)``, ``tag(log, interval(1e-4,1e-1))``) or a
            fixed value.
    """

    _target_: str = "hydra_plugins.automl_rnn_sweeper.sweeper.AutomlRnnSweeper"
    direction: Any = "minimize"
    n_trials: int = 20
    n_jobs: int = 1
    sampler: SamplerConf = field(default_factory=SamplerConf)
    pruner: PrunerConf = field(default_factory=PrunerConf)
    storage: Optional[str] = None
    study_name: Optional[str] = None
    params: Dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(group="hydra/sweeper", name="automl_rnn", node=AutomlRnnSweeperConf,
                             provider="automl_rnn")
