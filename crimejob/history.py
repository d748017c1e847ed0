"""Weekly grids as arrays: what every forecaster reads.

A :class:`GridHistory` holds consecutive weeks, oldest first. ``crime[t]`` is the
(60, 75) violent-count grid of ``week_starts[t]``; ``weather[t]`` its
(60, 75, 3) features in the prototype's order: mean temperature (deg F), total
rain (inches), holiday indicator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from crimejob.grid import N_COLS, N_ROWS

WEATHER_FEATURES = ("mean_temp_f", "total_rain_in", "holiday")


@dataclass(frozen=True)
class GridHistory:
    week_starts: np.ndarray  # (T,) datetime64[D], consecutive Mondays
    crime: np.ndarray  # (T, 60, 75) float32 violent counts
    weather: np.ndarray  # (T, 60, 75, 3) float32

    def __post_init__(self) -> None:
        t = len(self.week_starts)
        if self.crime.shape != (t, N_ROWS, N_COLS):
            raise ValueError(f"crime grid has shape {self.crime.shape}, want ({t}, 60, 75)")
        if self.weather.shape != (t, N_ROWS, N_COLS, len(WEATHER_FEATURES)):
            raise ValueError(f"weather grid has shape {self.weather.shape}, want ({t}, 60, 75, 3)")
        if t > 1 and np.any(np.diff(self.week_starts).astype(int) != 7):
            raise ValueError("weeks in a GridHistory must be consecutive")

    def __len__(self) -> int:
        return len(self.week_starts)

    @property
    def last_week(self) -> date:
        return self.week_starts[-1].astype("datetime64[D]").item()

    @property
    def target_week(self) -> date:
        """The week a forecast from this history is for: the one after the last."""
        return self.last_week + timedelta(weeks=1)

    def through(self, week: date) -> GridHistory:
        """The history up to and including ``week``: what a forecaster for week+1 may see."""
        keep = self.week_starts <= np.datetime64(week, "D")
        return GridHistory(self.week_starts[keep], self.crime[keep], self.weather[keep])

    def index_of(self, week: date) -> int:
        hits = np.flatnonzero(self.week_starts == np.datetime64(week, "D"))
        if len(hits) == 0:
            raise KeyError(f"week {week} is not in this history")
        return int(hits[0])
