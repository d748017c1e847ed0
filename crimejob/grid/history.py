"""Weekly grids as arrays: what every forecaster reads.

A :class:`GridHistory` holds consecutive weeks, oldest first, on one grid of
``rows x cols`` cells (production: the 60 x 75 LA grid; a benchmark may use
another, e.g. a downtown box on finer cells). For week ``week_starts[t]``:

- ``crime[t]``: the (rows, cols) violent-count grid, what is forecast;
- ``incidents[t]``: incidents of all kinds (violent included), a dense leading
  indicator of the sparse violent counts (equal to ``crime`` for data sets that
  only hold violent incidents);
- ``weather[t]``: (rows, cols, 3) features in the prototype's order: mean
  temperature (deg F), total rain (inches), holiday indicator;
- ``nibrs_share[t]``: the share of the week's incidents recorded under NIBRS
  (0 = the legacy LAPD series, 1 = NIBRS; LAPD switched on 2024-03-07). The two
  are different series, so a level change at the switch is not a change in crime.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

WEATHER_FEATURES = ("mean_temp_f", "total_rain_in", "holiday")


@dataclass(frozen=True)
class GridHistory:
    week_starts: np.ndarray  # (T,) datetime64[D], consecutive Mondays
    crime: np.ndarray  # (T, rows, cols) float32 violent counts
    weather: np.ndarray  # (T, rows, cols, 3) float32
    incidents: np.ndarray | None = None  # (T, rows, cols) float32; None = same as crime
    nibrs_share: np.ndarray | None = None  # (T,) float32 in [0, 1]; None = all legacy

    def __post_init__(self) -> None:
        t = len(self.week_starts)
        if self.crime.ndim != 3 or len(self.crime) != t:
            raise ValueError(f"crime grid has shape {self.crime.shape}, want ({t}, rows, cols)")
        rows, cols = self.crime.shape[1:]
        if self.weather.shape != (t, rows, cols, len(WEATHER_FEATURES)):
            raise ValueError(
                f"weather grid has shape {self.weather.shape}, want ({t}, {rows}, {cols}, 3)"
            )
        if self.incidents is None:
            object.__setattr__(self, "incidents", self.crime)
        elif self.incidents.shape != self.crime.shape:
            raise ValueError(
                f"incident grid has shape {self.incidents.shape}, want {self.crime.shape}"
            )
        if self.nibrs_share is None:
            object.__setattr__(self, "nibrs_share", np.zeros(t, np.float32))
        elif np.shape(self.nibrs_share) != (t,):
            raise ValueError(f"nibrs_share has shape {np.shape(self.nibrs_share)}, want ({t},)")
        if t > 1 and np.any(np.diff(self.week_starts).astype(int) != 7):
            raise ValueError("weeks in a GridHistory must be consecutive")

    def __len__(self) -> int:
        return len(self.week_starts)

    @property
    def shape(self) -> tuple[int, int]:
        """The grid: (rows, cols)."""
        return self.crime.shape[1], self.crime.shape[2]

    @property
    def last_week(self) -> date:
        return self.week_starts[-1].astype("datetime64[D]").item()

    @property
    def target_week(self) -> date:
        """The week after the last: a one-week-ahead forecast's target."""
        return self.last_week + timedelta(weeks=1)

    def week(self, index: int) -> date:
        """The week_start of row ``index`` as a date."""
        return self.week_starts[index].astype("datetime64[D]").item()

    def select(self, keep: np.ndarray | slice) -> GridHistory:
        """The rows ``keep`` (a boolean mask or a slice of consecutive weeks)."""
        return GridHistory(
            self.week_starts[keep],
            self.crime[keep],
            self.weather[keep],
            self.incidents[keep],
            self.nibrs_share[keep],
        )

    def through(self, week: date) -> GridHistory:
        """The history up to and including ``week``: what a forecaster for later weeks may see."""
        return self.select(self.week_starts <= np.datetime64(week, "D"))

    def index_of(self, week: date) -> int:
        hits = np.flatnonzero(self.week_starts == np.datetime64(week, "D"))
        if len(hits) == 0:
            raise KeyError(f"week {week} is not in this history")
        return int(hits[0])
