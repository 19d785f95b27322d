"""The values a trial returns to Optuna: the task's metric, then ``params`` and ``latency``.

A single-objective study gets the metric alone; with ``search.objectives`` the study gets a
tuple in that order. ``params`` is the trainable parameter count; ``latency`` the mean
milliseconds one validation batch (of the evaluation batch size) takes through the trained
model, measured after training.
"""

from __future__ import annotations

import time

import optuna
import torch
from torch.utils.data import DataLoader

from automl_rnn.config import RunConfig
from automl_rnn.data import collate
from automl_rnn.engine.module import SequenceModule
from automl_rnn.nn import count_parameters
from automl_rnn.types import TaskData

OBJECTIVE_ATTRS = {"params": "n_params", "latency": "latency_ms"}
"""Trial user attribute of each extra objective's value."""
LATENCY_REPEATS = 3
"""Timed passes over the validation batches, after one untimed warm-up batch."""


def inference_latency_ms(module: SequenceModule, data: TaskData, batch_size: int,
                         repeats: int = LATENCY_REPEATS) -> float:
    """Mean milliseconds of one forward pass over a validation batch, in eval mode, no gradients.

    The batches are collated and on the module's device before timing, so data loading and
    transfer are not counted.
    """
    batches = [(x.to(module.device), None if lengths is None else lengths.to(module.device))
               for x, lengths, _ in DataLoader(data.val, batch_size=batch_size, collate_fn=collate)]
    module.eval()
    times: list[float] = []
    with torch.inference_mode():
        module(*batches[0])
        for _ in range(repeats):
            for x, lengths in batches:
                started = time.perf_counter()
                module(x, lengths)
                if x.is_cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - started)
    return 1000.0 * sum(times) / len(times)


def objective_values(run: RunConfig, module: SequenceModule, data: TaskData, metric_value: float,
                     trial: optuna.Trial, batch_size: int) -> tuple[float, ...]:
    """The trial's value of each of ``run.objectives``, in order; extra ones stored on ``trial``.

    ``batch_size`` is the batch of the latency measurement.
    """
    measures = {"params": lambda: float(count_parameters(module)),
                "latency": lambda: inference_latency_ms(module, data, batch_size)}
    values = [metric_value]
    for name in run.objectives[1:]:
        value = measures[name]()
        trial.set_user_attr(OBJECTIVE_ATTRS[name], value)
        values.append(value)
    return tuple(values)
