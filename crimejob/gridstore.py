"""Read grid rows from Postgres into a :class:`~crimejob.history.GridHistory`."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.grid import N_CELLS, N_COLS, N_ROWS
from crimejob.history import WEATHER_FEATURES, GridHistory

_QUERY = sa.text(
    """
    SELECT week_start, cell_id, violent_count, mean_temp_f, total_rain_in, holiday
    FROM grid.weekly
    WHERE week_start <= :through AND (CAST(:since AS date) IS NULL OR week_start >= :since)
    ORDER BY week_start, cell_id
    """
)


def load_history(
    bind: Engine | Connection, through: date, since: date | None = None
) -> GridHistory:
    """Every aggregated week up to ``through`` (and from ``since``), as arrays.

    Never reads a week after ``through``: this is where leakage is prevented.
    Weeks must be dense (4,500 rows each) and consecutive; a gap is an error
    rather than a silent shift of the time axis. Missing weather is filled
    with the week's mean over cells, then with 0.
    """
    frame = pd.read_sql_query(_QUERY, bind, params={"through": through, "since": since})
    if frame.empty:
        return GridHistory(
            np.array([], dtype="datetime64[D]"),
            np.zeros((0, N_ROWS, N_COLS), np.float32),
            np.zeros((0, N_ROWS, N_COLS, len(WEATHER_FEATURES)), np.float32),
        )
    weeks = pd.to_datetime(frame["week_start"]).to_numpy().astype("datetime64[D]")
    unique_weeks = np.unique(weeks)
    if len(frame) != len(unique_weeks) * N_CELLS:
        counts = pd.Series(weeks).value_counts()
        bad = counts[counts != N_CELLS]
        raise ValueError(f"grid.weekly is not dense for weeks {list(bad.index[:5])}")
    t = len(unique_weeks)
    crime = frame["violent_count"].to_numpy(np.float32).reshape(t, N_ROWS, N_COLS)
    weather = frame[list(WEATHER_FEATURES)].to_numpy(np.float64).reshape(t, N_CELLS, 3)
    week_mean = np.nanmean(np.where(np.isnan(weather), np.nan, weather), axis=1, keepdims=True)
    weather = np.where(np.isnan(weather), week_mean, weather)
    weather = np.nan_to_num(weather, nan=0.0).astype(np.float32).reshape(t, N_ROWS, N_COLS, 3)
    return GridHistory(unique_weeks, crime, weather)
