"""The benchmark data sets as GridHistory objects: two real series and the LA world.

Benchmark-only code (the package never reads ../shared/data at run time):

- :func:`philadelphia` — Philadelphia's shooting victims 2015-2023, counted as
  incidents (``dc_key``) on 60 x 75 cells over the bounding box of the
  located incidents. Violent counts only, so ``incidents`` = ``crime``.
- :func:`downtown_la` — every LAPD incident (all kinds) in a downtown box,
  2016-01-04 .. 2017-03-27, on square cells of about 165 m (10 x 20 cells).
  The file has no offense codes, so the series forecast is all incidents.
- :func:`la_world` — the development world (``crimejob.devworld``).

Neither real file carries weather, so their weather grids hold 0 for
temperature and rain and the real holiday indicator (``holidays``), which is
what a model sees of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import holidays
import numpy as np
import pandas as pd

from crimejob.grid.history import WEATHER_FEATURES, GridHistory

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PHL_FILE = "phl_shooting_victims_2015-01-01_2023-08-22.csv.gz"
DTLA_FILE = "lapd_dtla_box_points_2016-01-01_2017-04-08.csv.gz"
# The downtown box as the file was cut (data README).
DTLA_BOX = {"lat_min": 34.0388, "lat_max": 34.0538, "lon_min": -118.2735, "lon_max": -118.2377}
DTLA_SHAPE = (10, 20)  # 1.67 km x 3.30 km -> cells of about 167 m x 165 m


@dataclass
class Dataset:
    """A history to backtest on, and what it is."""

    name: str
    history: GridHistory
    description: str
    dropped: int = 0  # records that could not be placed (no coordinates, outside the box)


def _weeks(first: date, last: date) -> np.ndarray:
    count = (last - first).days // 7 + 1
    return np.datetime64(first, "D") + 7 * np.arange(count)


def _holiday_weather(weeks: np.ndarray, shape: tuple[int, int], subdiv: str) -> np.ndarray:
    """Weather grids without weather: temperature and rain 0, the real holiday flag."""
    days = pd.DatetimeIndex(weeks).date
    calendar = holidays.country_holidays(
        "US", subdiv=subdiv, years=range(days[0].year, days[-1].year + 2)
    )
    flag = np.array([any(d + timedelta(days=k) in calendar for k in range(7)) for d in days])
    weather = np.zeros((len(weeks), *shape, len(WEATHER_FEATURES)), np.float32)
    weather[..., 2] = flag[:, None, None]
    return weather


def _grid_counts(
    day: pd.Series, row: np.ndarray, col: np.ndarray, weeks: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """(weeks, rows, cols) counts of events by the Monday-to-Sunday week of ``day``."""
    monday = (
        (day - pd.to_timedelta(day.dt.day_of_week, unit="D")).to_numpy().astype("datetime64[D]")
    )
    index = ((monday - weeks[0]).astype(np.int64)) // 7
    keep = (index >= 0) & (index < len(weeks))
    counts = np.zeros((len(weeks), *shape), np.float32)
    np.add.at(counts, (index[keep], row[keep], col[keep]), 1.0)
    return counts


def _cells(values: np.ndarray, low: float, high: float, n: int, flip: bool = False) -> np.ndarray:
    """Equal-width bins over [low, high] (the top edge in the last bin); row 0 = north."""
    position = (high - values) if flip else (values - low)
    return np.clip(np.floor(position / (high - low) * n), 0, n - 1).astype(np.int64)


def philadelphia(data: Path = SHARED_DATA, shape: tuple[int, int] = (60, 75)) -> Dataset:
    """Philadelphia shooting incidents by week, 2015-01-05 .. 2023-08-14 (complete weeks)."""
    raw = pd.read_csv(data / PHL_FILE, usecols=["dc_key", "date_", "lat", "lng"])
    incidents = raw.drop_duplicates("dc_key")  # one row per victim: count incidents
    located = incidents.dropna(subset=["lat", "lng"])
    day = pd.to_datetime(located["date_"].str[:10])
    lat, lon = located["lat"].to_numpy(), located["lng"].to_numpy()
    row = _cells(lat, lat.min(), lat.max(), shape[0], flip=True)
    col = _cells(lon, lon.min(), lon.max(), shape[1])
    weeks = _weeks(date(2015, 1, 5), date(2023, 8, 14))  # 2023-08-14..20 is the last full week
    crime = _grid_counts(day, row, col, weeks, shape)
    history = GridHistory(weeks, crime, _holiday_weather(weeks, shape, "PA"))
    return Dataset(
        "philadelphia",
        history,
        f"Philadelphia shooting incidents (dc_key), {shape[0]} x {shape[1]} cells over the "
        f"city's box, {len(weeks)} weeks {weeks[0]} .. {weeks[-1]}",
        dropped=int(len(incidents) - len(located)),
    )


def downtown_la(data: Path = SHARED_DATA, shape: tuple[int, int] = DTLA_SHAPE) -> Dataset:
    """Every LAPD incident in the downtown box by week, 2016-01-04 .. 2017-03-27."""
    raw = pd.read_csv(data / DTLA_FILE)
    box = DTLA_BOX
    inside = raw["lat"].between(box["lat_min"], box["lat_max"]) & raw["lon"].between(
        box["lon_min"], box["lon_max"]
    )
    points = raw[inside]
    day = pd.to_datetime(points["datetime_occ"]).dt.normalize()
    row = _cells(points["lat"].to_numpy(), box["lat_min"], box["lat_max"], shape[0], flip=True)
    col = _cells(points["lon"].to_numpy(), box["lon_min"], box["lon_max"], shape[1])
    weeks = _weeks(date(2016, 1, 4), date(2017, 3, 27))  # the file ends on Saturday 2017-04-08
    crime = _grid_counts(day, row, col, weeks, shape)
    history = GridHistory(weeks, crime, _holiday_weather(weeks, shape, "CA"))
    return Dataset(
        "downtown_la",
        history,
        f"downtown LA, every LAPD incident, {shape[0]} x {shape[1]} cells of ~165 m, "
        f"{len(weeks)} weeks {weeks[0]} .. {weeks[-1]}",
        dropped=int((~inside).sum()),
    )


def la_world(seed: int = 0, start: date = date(2019, 1, 7), weeks: int = 365) -> Dataset:
    """The LA development world (violent counts forecast; all incidents beside them)."""
    from crimejob.devworld import la_world as make_world

    history = make_world(seed=seed, start=start, weeks=weeks).history()
    return Dataset(
        "la_world",
        history,
        f"LA development world (seed {seed}), 60 x 75 cells, {weeks} weeks "
        f"{history.week_starts[0]} .. {history.week_starts[-1]}",
    )
