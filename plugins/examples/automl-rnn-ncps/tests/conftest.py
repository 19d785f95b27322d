"""A small daily sales file, the kind of CSV the ``csv_forecast`` task reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def sales_csv(tmp_path: Path) -> Path:
    """300 days of units sold (trend + weekly season + noise), rows shuffled, extra column."""
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", periods=300, freq="D")
    t = np.arange(len(days))
    units = 50 + 0.05 * t + 8 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1.5, len(t))
    frame = pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "store": "north", "units": units})
    path = tmp_path / "sales.csv"
    frame.sample(frac=1.0, random_state=0).to_csv(path, index=False)
    return path
