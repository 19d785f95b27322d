"""``csv_forecast``: forecast the next ``horizon`` values of one column of any CSV file.

The file needs a date column and a numeric target column; rows are sorted by date. The newest
``test_size`` points are the test targets and the ``val_size`` points before them the
validation targets; every window's inputs end before its targets, so no split reads the
future of an earlier one. The model forecasts the window's last value plus a correction the
network learns (zero at the start, so an untrained model is the naive forecast).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from automl_rnn import hookimpl
from automl_rnn.errors import UserError
from automl_rnn.types import Params, Task, TaskData

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class CsvForecastOptions:
    """Options of the ``csv_forecast`` task (``task.<name>=...`` on the command line).

    Attributes:
        path: the CSV file.
        date_column: the column of dates; rows are sorted by it.
        target_column: the numeric column to forecast (the model's only input channel).
        horizon: values forecast at once.
        window: input steps of every forecast.
        val_size: points before the test span whose values are the validation targets.
        test_size: the newest points, the test targets.
    """

    path: str
    date_column: str = "date"
    target_column: str = "value"
    horizon: int = 7
    window: int = 28
    val_size: int = 56
    test_size: int = 56


def load_series(options: CsvForecastOptions) -> np.ndarray:
    """The target column as float64, in date order.

    Raises:
        UserError: the file or a column is missing, or the target is not numeric.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(options.path)
    except (OSError, ValueError) as error:
        raise UserError(f"task csv_forecast: cannot read task.path={options.path!r}: {error}") from error
    missing = [c for c in (options.date_column, options.target_column) if c not in frame]
    if missing:
        raise UserError(f"task csv_forecast: {options.path} has no column {missing[0]!r}; its "
                        f"columns: {', '.join(map(str, frame.columns))} (set task.date_column "
                        f"and task.target_column)")
    frame = frame.assign(**{options.date_column: pd.to_datetime(frame[options.date_column])})
    target = pd.to_numeric(frame.sort_values(options.date_column)[options.target_column],
                           errors="coerce")
    if target.isna().any():
        raise UserError(f"task csv_forecast: column {options.target_column!r} of {options.path} "
                        f"has {int(target.isna().sum())} empty or non-numeric values")
    return target.to_numpy(dtype="float64")


def cut_windows(series: np.ndarray, window: int, horizon: int, start: int,
                stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (inputs, targets) pair whose targets lie inside ``series[start:stop]``.

    Returns x (N, window, 1) and y (N, horizon) as float32, in time order.
    """
    import numpy as np

    firsts = range(max(start, window), stop - horizon + 1)
    x = np.array([series[t - window:t] for t in firsts], dtype=np.float32)
    y = np.array([series[t:t + horizon] for t in firsts], dtype=np.float32)
    return x.reshape(-1, window, 1), y.reshape(-1, horizon)


def scaled_mse(scale: float, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error in units of the training series' spread."""
    return (prediction - target).div(scale).pow(2).mean()


def _metrics() -> dict[str, Any]:
    """A fresh MAE metric, on the original scale."""
    from torchmetrics import MeanAbsoluteError

    return {"mae": MeanAbsoluteError()}


def prepare(options: CsvForecastOptions, params: Params) -> TaskData:
    """Read the file, cut the time-ordered splits and fit the scaling on the training span."""
    from automl_rnn.data import SequenceDataset
    from automl_rnn_ncps._forecaster import LastValueForecaster

    series = load_series(options)
    n, window, horizon = len(series), options.window, options.horizon
    val_start, test_start = n - options.test_size - options.val_size, n - options.test_size
    if min(options.val_size, options.test_size) < horizon or val_start < window + horizon:
        raise UserError(
            f"task csv_forecast: {options.path} has {n} rows; with window={window}, "
            f"horizon={horizon}, val_size={options.val_size} and test_size={options.test_size} "
            f"it needs at least {window + 2 * horizon + options.val_size + options.test_size} "
            f"(and val_size, test_size >= horizon)")
    train_part = series[:val_start]
    mean, std = float(train_part.mean()), float(train_part.std()) or 1.0
    splits = [cut_windows(series, window, horizon, a, b)
              for a, b in ((0, val_start), (val_start, test_start), (test_start, n))]
    train, val, test = (SequenceDataset(x, y) for x, y in splits)
    return TaskData(
        train=train, val=val, test=test, input_size=1,
        build_model=lambda backbone: LastValueForecaster(backbone, horizon, mean, std),
        loss=functools.partial(scaled_mse, std), metrics=_metrics,
        summary={"rows": n, "train_windows": len(train), "val_windows": len(val),
                 "test_windows": len(test), "horizon": horizon, "window": window},
    )


@hookimpl
def automl_rnn_register_tasks(register) -> None:
    """Register ``csv_forecast``."""
    register(Task("csv_forecast", "forecast a column of any CSV file with a date column",
                  metric="mae", direction="minimize", requires_causal=True, prepare=prepare,
                  options=CsvForecastOptions, refit=True))
