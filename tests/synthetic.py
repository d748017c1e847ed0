"""Synthetic weekly grids written straight into grid.weekly, for tests of what reads them."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crimejob.dbcopy import copy_frame
from crimejob.grid import N_CELLS


def cell_rates(seed: int = 0) -> np.ndarray:
    """Persistent LA-like rates: a few hotspots over a low background, mean ~0.5."""
    rng = np.random.default_rng(seed)
    rows, cols = np.divmod(np.arange(N_CELLS), 75)
    rate = np.full(N_CELLS, 0.05)
    for _ in range(12):
        r0, c0 = rng.uniform(5, 55), rng.uniform(5, 70)
        rate += rng.uniform(1, 4) * np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / 18)
    return rate * (0.5 / rate.mean())


def write_weeks(
    engine: sa.Engine, first_week: date, n_weeks: int, seed: int = 0, rates=None
) -> list[date]:
    """Write ``n_weeks`` dense weeks of Poisson counts and weather; returns the week starts."""
    rng = np.random.default_rng(seed)
    rates = cell_rates(seed) if rates is None else rates
    weeks = [first_week + timedelta(weeks=i) for i in range(n_weeks)]
    frames, summaries = [], []
    for week in weeks:
        temp = 60 + 15 * np.sin(2 * np.pi * week.timetuple().tm_yday / 365)
        counts = rng.poisson(rates * (1 + (temp - 60) / 60))
        frames.append(
            pd.DataFrame(
                {
                    "week_start": week,
                    "cell_id": np.arange(N_CELLS),
                    "violent_count": counts,
                    "incident_count": counts * 3,
                    "mean_temp_f": temp + rng.normal(0, 1, N_CELLS),
                    "total_rain_in": np.abs(rng.normal(0.1, 0.1, N_CELLS)),
                    "holiday": int(week.month == 12 and week.day >= 22),
                }
            )
        )
        summaries.append((week, int(counts.sum())))
    frame = pd.concat(frames, ignore_index=True)
    weeks_frame = pd.DataFrame(
        {
            "week_start": [w for w, _ in summaries],
            "series": "legacy",
            "incident_total": [t * 3 for _, t in summaries],
            "violent_total": [t for _, t in summaries],
        }
    )
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM grid.weekly WHERE week_start = ANY(:w)"), {"w": weeks})
        conn.execute(sa.text("DELETE FROM grid.weeks WHERE week_start = ANY(:w)"), {"w": weeks})
        copy_frame(conn, frame, "grid.weekly", list(frame.columns))
        copy_frame(conn, weeks_frame, "grid.weeks", list(weeks_frame.columns))
    return weeks
