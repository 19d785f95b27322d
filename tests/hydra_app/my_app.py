"""A user's own Hydra app, swept by ``hydra/sweeper=automl_rnn`` in tests/test_hydra_sweeper.py.

The objective is a bowl with its minimum 0 at x=2, y=-1, kind=a. With ``steps > 0`` it
"trains" for that many steps, reporting a value that falls towards the objective, so the
pruner can stop trials that start far from the minimum. With ``record_pid`` each job leaves
an empty file named after its process id in ``pids/`` (relative to the working directory).
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from hydra_plugins.automl_rnn_sweeper import report


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def my_app(cfg: DictConfig) -> float:
    value = (cfg.x - 2.0) ** 2 + (cfg.y + 1) ** 2 + (0.0 if cfg.kind == "a" else 1.0)
    if cfg.record_pid:
        Path("pids").mkdir(exist_ok=True)
        (Path("pids") / str(os.getpid())).touch()
    for step in range(cfg.steps):
        report(value * (1.0 + 1.0 / (step + 1)), step)
    if cfg.fail_above is not None and value > cfg.fail_above:
        raise RuntimeError(f"value {value:.3f} is above {cfg.fail_above}")
    return value


if __name__ == "__main__":
    my_app()
