"""The LA development world: weekly grids and incident records that look like LAPD's.

Generated from the committed ``params.json`` only (see ``calibrate.py`` for
where each number comes from), so it runs where no real data is, and the same
seed always gives the same world. What it simulates, per footprint cell and
week, vectorised over the 4,500 cells:

- **where**: each area's incidents spread over its cells by the kernel density
  of real LAPD points; cells no real point reaches (ocean, mountains, other
  cities) never see an incident;
- **how many**: each area's weekly level follows the real annual counts
  2010-2022 (log-linear between mid-years), violent and all incidents; before
  2010 it holds 2010's level, after 2022 it walks on with the real year-to-year
  spread of area and city levels (**slow drift**, part 1);
- **slow drift**, part 2: each cell's rate carries a slow log-AR(1) multiplier
  (real spread between the 2011-2015 and 2020 points, two-year time scale);
- **seasonality**: the real annual harmonic of occurrence months;
- **weather**: LAX's seasonal temperature and its persistent weekly anomalies,
  winter rain, real holidays; violent incidents rise 1% per deg F of weekly
  anomaly (an assumed, literature-sized effect);
- **near-repeat**: every violent incident adds expected violent incidents to
  its cell and its 8 neighbours over the next weeks (the excess measured on
  Philadelphia's shootings), a discrete Hawkes process; the base rate is
  scaled by 1 - branching ratio so the totals stay at the real counts;
- **the 2024 break**: incidents are recorded in the legacy series until
  2024-03-07; legacy then tapers off (ends 2024-12-30) while NIBRS ramps up
  (October-December at ~68% of a normal month), then NIBRS alone at its own
  level; unrecorded incidents are lost, as in the real 2024 data;
- **late reports**: each record's report date follows the real delay
  histogram (violent incidents are reported sooner).

:func:`la_world` is the entry point; :meth:`LAWorld.history` gives the
:class:`~crimejob.grid.history.GridHistory` and :meth:`LAWorld.records` the
incident records of any weeks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import holidays
import numpy as np
import pandas as pd

from crimejob.grid.cells import COL_WIDTH, LAT_MAX, LON_MIN, N_CELLS, N_COLS, N_ROWS, ROW_HEIGHT
from crimejob.grid.history import GridHistory

PARAMS_PATH = Path(__file__).with_name("params.json")
WEEKS_PER_YEAR = 365.25 / 7
#: Violent incidents per deg F of weekly temperature anomaly (assumed).
TEMP_EFFECT_PER_F = 0.01


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def load_params(path: Path | None = None) -> dict[str, Any]:
    """The world's calibrated parameters (the committed file unless ``path`` is given)."""
    return _load(str(path or PARAMS_PATH))


def _ring(grid: np.ndarray) -> np.ndarray:
    """Sum over each cell's 8 neighbours of a (rows, cols) grid."""
    padded = np.pad(grid, 1)
    rows, cols = grid.shape
    total = -grid.copy()
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            total += padded[dr : dr + rows, dc : dc + cols]
    return total


@dataclass
class LAWorld:
    """A deterministic world of ``weeks`` weeks from the Monday ``start``."""

    seed: int = 0
    start: date = date(2019, 1, 7)
    weeks: int = 365
    params: dict[str, Any] = field(default_factory=load_params, repr=False)

    def __post_init__(self) -> None:
        if self.start.weekday() != 0:
            raise ValueError(f"a world starts on a Monday, not {self.start}")
        if self.weeks < 1:
            raise ValueError("a world has at least one week")

    # --- the calendar -------------------------------------------------------------

    @cached_property
    def week_starts(self) -> np.ndarray:
        return np.datetime64(self.start, "D") + 7 * np.arange(self.weeks)

    @cached_property
    def _mid_year(self) -> np.ndarray:
        """Each week's middle as a fractional year (2019.5 = early July 2019)."""
        mid = pd.DatetimeIndex(self.week_starts + np.timedelta64(84, "h"))
        return (mid.year + (mid.day_of_year - 0.5) / 365.25).to_numpy()

    @cached_property
    def _day_of_year(self) -> np.ndarray:
        mid = pd.DatetimeIndex(self.week_starts + np.timedelta64(84, "h"))
        return mid.day_of_year.to_numpy().astype(np.float64)

    # --- the footprint ----------------------------------------------------------------

    @cached_property
    def footprint(self) -> np.ndarray:
        """(rows, cols) bool: the cells LAPD records incidents in."""
        mask = np.zeros(N_CELLS, bool)
        mask[self.params["cells"]["cell_id"]] = True
        return mask.reshape(N_ROWS, N_COLS)

    @cached_property
    def cell_area(self) -> np.ndarray:
        """(rows, cols) LAPD area code of each footprint cell, 0 elsewhere."""
        area = np.zeros(N_CELLS, np.int64)
        area[self.params["cells"]["cell_id"]] = self.params["cells"]["area"]
        return area.reshape(N_ROWS, N_COLS)

    # --- the simulation -----------------------------------------------------------------

    def _area_levels(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(weeks, areas) expected violent and other incidents a week, per area."""
        annual = self.params["annual"]
        years = np.array(annual["years"], np.float64)
        violent = np.array(annual["violent"], np.float64) / WEEKS_PER_YEAR
        other = np.array(annual["all"], np.float64) / WEEKS_PER_YEAR - violent
        last = int(years[-1])
        ahead = max(int(np.ceil(self._mid_year.max())) - last, 0)
        # After the last real year: the city and each area walk on with the real spreads.
        steps = rng.normal(0, annual["city_log_sd_per_year"], (ahead, 1)) + rng.normal(
            0, annual["area_share_log_sd_per_year"], (ahead, violent.shape[1])
        )
        walk = np.exp(np.cumsum(steps, axis=0))
        violent = np.vstack([violent, violent[-1] * walk])
        other = np.vstack([other, other[-1] * walk])
        knots = np.concatenate([years, last + 1 + np.arange(ahead)]) + 0.5
        t = np.clip(self._mid_year, knots[0], knots[-1])

        def interpolate(levels: np.ndarray) -> np.ndarray:
            logs = np.log(np.maximum(levels, 1e-6))
            return np.exp(np.stack([np.interp(t, knots, col) for col in logs.T], axis=1))

        return interpolate(violent), interpolate(other)

    def _weather(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(weeks, rows, cols, 3) weather grids and the weekly temperature anomaly."""
        w = self.params["weather"]
        n = self.weeks
        noise = rng.normal(
            0, w["weekly_anomaly_sd_f"] * np.sqrt(1 - w["weekly_anomaly_lag1"] ** 2), n
        )
        anomaly = np.zeros(n)
        anomaly[0] = rng.normal(0, w["weekly_anomaly_sd_f"])
        for i in range(1, n):
            anomaly[i] = w["weekly_anomaly_lag1"] * anomaly[i - 1] + noise[i]
        season = np.cos(2 * np.pi * (self._day_of_year - w["temp_peak_day_of_year"]) / 365.25)
        temp = w["temp_mean_f"] + w["temp_amplitude_f"] * season + anomaly
        month = pd.DatetimeIndex(self.week_starts).month.to_numpy()
        wet_p = np.where(
            np.isin(month, [11, 12, 1, 2, 3]), w["wet_week_p_nov_mar"], w["wet_week_p_apr_oct"]
        )
        rain = np.where(rng.random(n) < wet_p, rng.exponential(w["wet_week_mean_in"], n), 0.0)
        days = pd.DatetimeIndex(self.week_starts)
        calendar = holidays.country_holidays(
            "US", subdiv="CA", years=range(days.year.min(), days.year.max() + 2)
        )
        holiday = np.array(
            [any(d + timedelta(days=k) in calendar for k in range(7)) for d in days.date],
            np.float64,
        )
        # Inland (east, north) is warmer and drier than the coast.
        rows, cols = np.mgrid[0:N_ROWS, 0:N_COLS]
        inland = (cols / N_COLS - rows / N_ROWS) * 0.5
        grids = np.empty((n, N_ROWS, N_COLS, 3), np.float32)
        grids[..., 0] = temp[:, None, None] + 4 * inland[None]
        grids[..., 1] = rain[:, None, None] * (1 - 0.4 * inland[None])
        grids[..., 2] = holiday[:, None, None]
        return grids, anomaly

    def _recording(self) -> tuple[np.ndarray, np.ndarray]:
        """(weeks,) share of true incidents recorded as legacy and as NIBRS."""
        p = self.params["nibrs"]
        days = self.week_starts + np.timedelta64(3, "D")
        start = np.datetime64(p["start"], "D")
        legacy_end = np.datetime64(p["legacy_end"], "D")
        march, december = np.datetime64("2024-03-16", "D"), np.datetime64("2024-12-15", "D")
        october = np.datetime64("2024-10-01", "D")
        year_end = np.datetime64("2025-01-01", "D")
        day = (days - start).astype(np.float64)
        legacy = np.interp(
            day,
            [0.0, (march - start).astype(float), (december - start).astype(float)],
            [1.0, p["legacy_share_march_2024"], p["legacy_share_december_2024"]],
        )
        legacy = np.where(days < start, 1.0, np.where(days > legacy_end, 0.0, legacy))
        nibrs = np.interp(
            day, [0.0, (october - start).astype(float)], [0.0, p["nibrs_share_oct_dec_2024"]]
        )
        nibrs = np.where(
            days < start, 0.0, np.where(days >= year_end, p["nibrs_full_level"], nibrs)
        )
        return legacy, np.minimum(nibrs, 1.0 - legacy)

    @cached_property
    def _simulated(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        cells = self.params["cells"]
        ids = np.asarray(cells["cell_id"])
        area_index = np.searchsorted(self.params["annual"]["area_code"], cells["area"])
        violent_level, other_level = self._area_levels(rng)
        weather, anomaly = self._weather(rng)

        season = self.params["seasonality"]
        seasonal = 1 + season["amplitude"] * np.cos(
            2 * np.pi * (self._day_of_year - season["peak_day_of_year"]) / 365.25
        )
        drift_p = self.params["cell_drift"]
        rho = np.exp(-1.0 / drift_p["timescale_weeks"])
        sd = drift_p["stationary_log_sd"]
        drift = np.empty((self.weeks, len(ids)))
        drift[0] = rng.normal(0, sd, len(ids))
        shocks = rng.normal(0, sd * np.sqrt(1 - rho**2), (self.weeks, len(ids)))
        for i in range(1, self.weeks):
            drift[i] = rho * drift[i - 1] + shocks[i]
        condition = np.exp(drift - sd**2 / 2) * seasonal[:, None]

        near = self.params["near_repeat"]
        branching = near["branching_ratio"]
        profile = np.maximum(
            np.add(near["self_excess_by_week"], near["neighbour_excess_by_week"]), 0.0
        )
        kernel = branching * profile / profile.sum()  # expected offspring by weeks after
        self_share = near["self_share"]

        violent_rate = np.zeros((self.weeks, N_CELLS))
        violent_rate[:, ids] = (
            violent_level[:, area_index]
            * np.asarray(cells["violent_weight"])
            * condition
            * np.exp(TEMP_EFFECT_PER_F * anomaly)[:, None]
            * (1 - branching)
        )
        other_rate = np.zeros((self.weeks, N_CELLS))
        other_rate[:, ids] = (
            other_level[:, area_index] * np.asarray(cells["all_weight"]) * condition
        )

        footprint = self.footprint
        violent = np.zeros((self.weeks, N_ROWS, N_COLS), np.int32)
        excitation = np.zeros((len(kernel) + 1, N_ROWS, N_COLS))  # pending offspring by week
        for t in range(self.weeks):
            rate = violent_rate[t].reshape(N_ROWS, N_COLS) + excitation[0]
            violent[t] = rng.poisson(rate)
            spread = self_share * violent[t] + (1 - self_share) / 8 * _ring(violent[t])
            spread = np.where(footprint, spread, 0.0)
            excitation = np.roll(excitation, -1, axis=0)
            excitation[-1] = 0.0
            excitation[: len(kernel)] += kernel[:, None, None] * spread[None]
        other = rng.poisson(other_rate).astype(np.int32).reshape(self.weeks, N_ROWS, N_COLS)

        legacy_p, nibrs_p = self._recording()
        shape = (-1, 1, 1)

        def record(true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            legacy = rng.binomial(true, legacy_p.reshape(shape))
            rest = np.clip(nibrs_p / np.maximum(1 - legacy_p, 1e-9), 0, 1).reshape(shape)
            return legacy.astype(np.int32), rng.binomial(true - legacy, rest).astype(np.int32)

        violent_legacy, violent_nibrs = record(violent)
        other_legacy, other_nibrs = record(other)
        return {
            "violent_legacy": violent_legacy,
            "violent_nibrs": violent_nibrs,
            "other_legacy": other_legacy,
            "other_nibrs": other_nibrs,
            "weather": weather,
            "true_violent_rate": violent_rate.reshape(self.weeks, N_ROWS, N_COLS),
        }

    # --- what users get -------------------------------------------------------------------

    def history(self) -> GridHistory:
        """The weekly grids as eventually known (every late report in)."""
        s = self._simulated
        crime = (s["violent_legacy"] + s["violent_nibrs"]).astype(np.float32)
        incidents = crime + (s["other_legacy"] + s["other_nibrs"]).astype(np.float32)
        nibrs = (s["violent_nibrs"] + s["other_nibrs"]).sum(axis=(1, 2))
        total = incidents.sum(axis=(1, 2))
        share = np.where(total > 0, nibrs / np.maximum(total, 1), 0.0).astype(np.float32)
        return GridHistory(
            self.week_starts.copy(), crime, s["weather"], incidents=incidents, nibrs_share=share
        )

    def records(
        self, first_week: date | None = None, last_week: date | None = None
    ) -> pd.DataFrame:
        """One row per recorded incident that occurred in ``first_week..last_week``.

        Columns: ``record_id`` (a legacy ``dr_no`` or a NIBRS ``caseno``),
        ``series`` (legacy/nibrs), ``occurred_at``, ``reported_at`` (naive LA
        time), ``lat``, ``lon`` (4 decimals, inside the cell), ``cell_id``,
        ``area`` and ``area_name``, ``crm_cd`` (legacy) or ``nibr_code``
        (NIBRS), ``is_violent``. The same week always gives the same records,
        whichever range it is asked in, and they add up to :meth:`history`.
        """
        first = (
            0
            if first_week is None
            else int((np.datetime64(first_week, "D") - self.week_starts[0]).astype(int) // 7)
        )
        last = (
            self.weeks - 1
            if last_week is None
            else int((np.datetime64(last_week, "D") - self.week_starts[0]).astype(int) // 7)
        )
        first, last = max(first, 0), min(last, self.weeks - 1)
        parts = [self._week_records(w) for w in range(first, last + 1)]
        if not parts:
            return self._week_records(0).iloc[:0]
        return pd.concat(parts, ignore_index=True)

    def _week_records(self, w: int) -> pd.DataFrame:
        s = self._simulated
        rng = np.random.default_rng([self.seed, 1, w])
        blocks = []
        for key, series, violent in (
            ("violent_legacy", "legacy", True),
            ("other_legacy", "legacy", False),
            ("violent_nibrs", "nibrs", True),
            ("other_nibrs", "nibrs", False),
        ):
            counts = s[key][w].ravel()
            cell = np.repeat(np.arange(N_CELLS), counts)
            blocks.append(pd.DataFrame({"cell_id": cell, "series": series, "is_violent": violent}))
        frame = pd.concat(blocks, ignore_index=True)
        n = len(frame)
        p = self.params
        row, col = np.divmod(frame["cell_id"].to_numpy(), N_COLS)
        frame["lat"] = np.round(LAT_MAX - (row + rng.uniform(0.02, 0.98, n)) * ROW_HEIGHT, 4)
        frame["lon"] = np.round(LON_MIN + (col + rng.uniform(0.02, 0.98, n)) * COL_WIDTH, 4)
        hour = rng.choice(24, n, p=np.divide(p["hour_of_day"], np.sum(p["hour_of_day"])))
        minutes = np.where(hour == 12, rng.choice([0, 30], n), rng.integers(0, 60, n))
        occurred = (
            self.week_starts[w].astype("datetime64[m]")
            + rng.integers(0, 7, n) * np.timedelta64(1, "D")
            + (hour * 60 + minutes) * np.timedelta64(1, "m")
        )
        delay_p = p["report_delay"]
        edges = np.asarray(delay_p["edges_days"])
        delay = np.empty(n, np.int64)
        for kind, mask in (
            ("violent", frame["is_violent"].to_numpy()),
            ("other", ~frame["is_violent"].to_numpy()),
        ):
            probs = np.asarray(delay_p[kind]) / np.sum(delay_p[kind])
            bins = rng.choice(len(probs), mask.sum(), p=probs)
            delay[mask] = rng.integers(edges[bins], edges[bins + 1])
        day = occurred.astype("datetime64[D]")
        reported = day + delay * np.timedelta64(1, "D")
        frame["occurred_at"] = occurred.astype("datetime64[us]")
        frame["reported_at"] = reported.astype("datetime64[us]")
        frame["area"] = self.cell_area.ravel()[frame["cell_id"]]
        names = dict(zip(p["annual"]["area_code"], p["annual"]["area_name"], strict=True))
        frame["area_name"] = frame["area"].map(names)
        frame["crm_cd"] = None
        frame["nibr_code"] = None
        for series, column, violent_mix, other_mix in (
            ("legacy", "crm_cd", p["codes"]["legacy_violent"], p["codes"]["legacy_other"]),
            ("nibrs", "nibr_code", p["nibrs"]["nibrs_violent"], p["nibrs"]["nibrs_other"]),
        ):
            for violent, mix in ((True, violent_mix), (False, other_mix)):
                mask = ((frame["series"] == series) & (frame["is_violent"] == violent)).to_numpy()
                codes = np.array(list(mix))
                weights = np.array(list(mix.values()), np.float64)
                frame.loc[mask, column] = rng.choice(codes, mask.sum(), p=weights / weights.sum())
        frame["record_id"] = self._record_ids(w, frame)
        columns = [
            "record_id", "series", "occurred_at", "reported_at", "lat", "lon", "cell_id",
            "area", "area_name", "crm_cd", "nibr_code", "is_violent",
        ]  # fmt: skip
        return frame[columns]

    def _record_ids(self, w: int, frame: pd.DataFrame) -> np.ndarray:
        """Unique ids in the real formats: legacy ``dr_no`` = YY + area + 5-digit sequence,
        NIBRS ``caseno`` = YY + 6-digit sequence (a week's sequence continues the
        previous weeks' of the same year, so ids never repeat)."""
        s = self._simulated
        year = pd.DatetimeIndex(self.week_starts).year.to_numpy()
        same_year = np.flatnonzero((year == year[w]) & (np.arange(self.weeks) < w))
        yy = f"{year[w] % 100:02d}"
        ids = np.empty(len(frame), object)
        legacy = (frame["series"] == "legacy").to_numpy()
        if legacy.any():
            per_area = np.zeros(int(self.cell_area.max()) + 1, np.int64)
            area_flat = self.cell_area.ravel()
            for key in ("violent_legacy", "other_legacy"):
                before = s[key][same_year].reshape(len(same_year), N_CELLS).sum(axis=0)
                per_area += np.bincount(area_flat, weights=before, minlength=len(per_area)).astype(
                    np.int64
                )
            areas = frame.loc[legacy, "area"].to_numpy()
            order = pd.Series(areas).groupby(areas).cumcount().to_numpy()
            seq = per_area[areas] + order + 1
            ids[legacy] = [f"{yy}{a:02d}{q:05d}" for a, q in zip(areas, seq, strict=True)]
        nibrs = ~legacy
        if nibrs.any():
            before = sum(int(s[key][same_year].sum()) for key in ("violent_nibrs", "other_nibrs"))
            seq = before + np.arange(nibrs.sum()) + 1
            ids[nibrs] = [f"{yy}{q:06d}" for q in seq]
        return ids


def la_world(seed: int = 0, start: date = date(2019, 1, 7), weeks: int = 365) -> LAWorld:
    """The LA development world: ``weeks`` weeks from the Monday ``start``, seeded."""
    return LAWorld(seed=seed, start=start, weeks=weeks)
