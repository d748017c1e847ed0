"""Synthetic weekly grids with LA-like rates and a planted, learnable signal.

For tests and benchmarks only: models can be developed and judged without the
data layer. What is planted:

- persistent hotspots: a fixed base rate per cell made of Gaussian bumps on a
  low background, about a third of the grid empty (ocean, mountains), scaled
  to ``mean_rate`` incidents per cell-week (LA 2023: ~0.56);
- weather: seasonal temperature with autocorrelated anomalies, winter rain,
  real US/California holidays from the ``holidays`` package;
- the signal: the intensity of week t+1 follows the weather of week t (a warm,
  dry week is followed by more incidents, more so in hotspots). Only the
  inputs a forecaster sees (weeks up to W) carry it, so it is learnable, and
  a trailing mean cannot follow it.
"""

from __future__ import annotations

from datetime import date, timedelta

import holidays
import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crimejob.dbcopy import copy_frame
from crimejob.grid import N_CELLS, N_COLS, N_ROWS
from crimejob.history import GridHistory


def _base_rate(rng: np.random.Generator, mean_rate: float, n_hotspots: int) -> np.ndarray:
    rows, cols = np.mgrid[0:N_ROWS, 0:N_COLS].astype(np.float64)
    bumps = np.zeros((N_ROWS, N_COLS))
    for _ in range(n_hotspots):
        r, c = rng.uniform(0, N_ROWS), rng.uniform(0, N_COLS)
        width = rng.uniform(0.8, 3.0)
        bumps += rng.lognormal(0.0, 0.6) * np.exp(
            -((rows - r) ** 2 + (cols - c) ** 2) / (2 * width**2)
        )
    # A smooth empty region (about a third of the area) where nothing happens.
    field = np.sin(rows / 9.0 + rng.uniform(0, 6)) + np.cos(cols / 11.0 + rng.uniform(0, 6))
    empty = field < np.quantile(field, 0.3)
    base = np.where(empty, 0.0, 0.08 + bumps)
    return base * (mean_rate / base.mean()), bumps / bumps.max()


def synthetic_history(
    weeks: int = 156,
    start: date = date(2021, 1, 4),
    seed: int = 0,
    mean_rate: float = 0.5,
    n_hotspots: int = 60,
    temp_effect: float = 0.35,
    rain_effect: float = 0.25,
    holiday_effect: float = 0.15,
) -> GridHistory:
    """``weeks`` consecutive weeks from the Monday ``start``; same seed, same grids."""
    rng = np.random.default_rng(seed)
    base, hotness = _base_rate(rng, mean_rate, n_hotspots)
    week_starts = np.array([start + timedelta(weeks=i) for i in range(weeks)], "datetime64[D]")
    day_of_year = np.array([(start + timedelta(weeks=i)).timetuple().tm_yday for i in range(weeks)])

    anomaly = np.zeros(weeks)
    for i in range(1, weeks):
        anomaly[i] = 0.6 * anomaly[i - 1] + rng.normal(0, 3.0)
    temp = 64 + 9 * np.sin(2 * np.pi * (day_of_year - 110) / 365.25) + anomaly
    wet_season = 0.5 + 0.5 * np.cos(2 * np.pi * (day_of_year - 15) / 365.25)
    rain = np.where(rng.random(weeks) < 0.5 * wet_season, rng.gamma(1.2, 0.6, weeks), 0.0)
    years = range(start.year, (start + timedelta(weeks=weeks)).year + 1)
    calendar = holidays.country_holidays("US", subdiv="CA", years=years)
    holiday = np.array(
        [
            any(start + timedelta(weeks=i, days=d) in calendar for d in range(7))
            for i in range(weeks)
        ],
        np.float64,
    )

    # Weather varies a little across the grid: inland (east, north) is warmer and drier.
    rows, cols = np.mgrid[0:N_ROWS, 0:N_COLS]
    inland = (cols / N_COLS - rows / N_ROWS) * 0.5
    weather = np.empty((weeks, N_ROWS, N_COLS, 3), np.float32)
    weather[..., 0] = temp[:, None, None] + 4 * inland[None]
    weather[..., 1] = rain[:, None, None] * (1 - 0.4 * inland[None])
    weather[..., 2] = holiday[:, None, None]

    z_temp = (temp - temp.mean()) / temp.std()
    z_rain = (rain - rain.mean()) / max(rain.std(), 1e-9)
    drive = temp_effect * z_temp - rain_effect * z_rain + holiday_effect * holiday
    lagged = np.concatenate([[0.0], drive[:-1]])  # week t follows the weather of week t-1
    sensitivity = 0.4 + 0.6 * hotness
    intensity = base[None] * np.exp(lagged[:, None, None] * sensitivity[None])
    crime = rng.poisson(intensity).astype(np.float32)
    return GridHistory(week_starts, crime, weather)


def store_history(engine: Engine, history: GridHistory) -> int:
    """Write ``history`` as ``grid.weekly`` and ``grid.weeks`` rows (replacing those weeks).

    For tests and benchmarks that exercise the database path on synthetic grids.
    """
    t = len(history)
    frame = pd.DataFrame(
        {
            "week_start": np.repeat(history.week_starts, N_CELLS),
            "cell_id": np.tile(np.arange(N_CELLS), t),
            "violent_count": history.crime.reshape(-1).astype(np.int64),
            "incident_count": history.crime.reshape(-1).astype(np.int64),
            "mean_temp_f": history.weather[..., 0].reshape(-1),
            "total_rain_in": history.weather[..., 1].reshape(-1),
            "holiday": history.weather[..., 2].reshape(-1).astype(np.int64),
        }
    )
    totals = history.crime.reshape(t, -1).sum(axis=1).astype(np.int64)
    weeks = pd.DataFrame(
        {
            "week_start": history.week_starts,
            "series": "legacy",
            "incident_total": totals,
            "violent_total": totals,
        }
    )
    week_list = [w.astype("datetime64[D]").item() for w in history.week_starts]
    with engine.begin() as conn:
        for table in ("grid.weekly", "grid.weeks"):
            conn.execute(
                sa.text(f"DELETE FROM {table} WHERE week_start = ANY(:weeks)"),
                {"weeks": week_list},
            )
        copy_frame(conn, weeks, "grid.weeks", list(weeks.columns))
        return copy_frame(conn, frame, "grid.weekly", list(frame.columns))
