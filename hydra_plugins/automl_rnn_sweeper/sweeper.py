"""The Sweeper plugin class Hydra finds; the work is done in ``_impl`` (imported on use)."""

from __future__ import annotations

from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class AutomlRnnSweeper(Sweeper):
    """``hydra/sweeper=automl_rnn``: runs an Optuna study whose trials are Hydra jobs."""

    def __init__(self, direction: Any, n_trials: int, n_jobs: int, sampler: Any, pruner: Any,
                 storage: Optional[str], study_name: Optional[str], params: Any) -> None:
        self._given = dict(direction=direction, n_trials=n_trials, n_jobs=n_jobs, sampler=sampler, pruner=pruner,
                           storage=storage, study_name=study_name, params=params)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        from hydra_plugins.automl_rnn_sweeper._impl import SweepSettings

        # Checked here rather than in __init__, where Hydra would show the error as a repr.
        self.settings = SweepSettings.from_config(**self._given)
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        """Run the study: ``arguments`` may add sweep expressions or fixed overrides."""
        from hydra_plugins.automl_rnn_sweeper._impl import run_sweep

        return run_sweep(self, arguments)
