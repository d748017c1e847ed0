"""Refit the development world's parameters from the real files in ``../shared/data``.

Run it where the shared data exists (a developer machine, CI); a user's
machine has none, and the world is then generated from the committed
``params.json`` alone::

    python -m crimejob.devworld.calibrate            # rewrites crimejob/devworld/params.json
    python -m crimejob.devworld.calibrate --data DIR --out /tmp/params.json

Every number the world uses comes from here, each from a real figure:

- ``footprint``: the cells any real LAPD point reaches (crimes of the 2011-2015
  random sample, its traffic collisions, the 2020 and 2022 portal files):
  LAPD records nothing anywhere else. Each cell's LAPD area is the most common
  area of its points.
- ``cells.all_weight``: the kernel density of the crime points (not the
  collisions), a Gaussian kernel, blended empirical-Bayes style with each
  cell's own count; the bandwidth (km) and the blend are the pair that best
  predicts held-out points (two-fold likelihood cross-validation). Kept on
  the footprint and normalised within each area.
- ``cells.violent_weight``: ``all_weight`` times the local violent share (the
  ratio of the violent points' kernel density to all points', at its own
  cross-validated bandwidth), normalised within each area.
- ``annual``: the real annual counts by year and area (violent = the FBI
  Part I violent ``crm_cd`` codes, and all incidents), 2010-2022: the world's
  totals and each area's slow drift follow them.
- ``seasonality``: the first annual harmonic of the 2011-2015 sample's
  occurrence months (day-weighted).
- ``hour_of_day``: the sample's occurrence-hour histogram.
- ``report_delay``: the report-minus-occurrence delay histogram of the two
  random portal samples (2020, 2022; reported through 2024), violent and other.
- ``cell_drift``: how much a cell's share of its area moves between the
  2011-2015 sample and the 2020/2022 files (excess over sampling noise of the
  log share ratio; 7 years apart, so it measures twice the stationary variance
  of a slow log-AR(1) multiplier). Its time scale (two years) is assumed: two
  snapshots cannot identify it.
- ``near_repeat``: measured on Philadelphia's shootings (the one complete real
  violent series here): expected extra incidents per incident in the same
  cell and in its 8 neighbours over the next weeks, beyond the cell's level
  10-30 weeks around.
- ``codes``: the real ``crm_cd`` mix of the 2020-2022 annual counts.
- ``nibrs``: the 2024 switch, from the figures in the data README: legacy
  rows 16.3k in March 2024 and 4.7k in December against a normal month (2022
  all incidents / 12); NIBRS from 2024-03-07, October-December at 60-75% of a
  normal month; about 423,000 NIBRS incidents (``caseno``) from 2024-03-07 to
  late September 2026, which sets NIBRS's full level against legacy's. The
  NIBRS offense mix maps the legacy violent codes to their NIBRS offenses.
- ``weather``: LAX daily normals and 2023 departures (temperature harmonic,
  weekly anomaly spread and persistence, rain by season).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from crimejob.grid.cells import COL_WIDTH, N_COLS, N_ROWS, ROW_HEIGHT, cell_of
from crimejob.ingest.sources.lapd import LEGACY_VIOLENT_CODES

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
PARAMS_PATH = Path(__file__).with_name("params.json")

ERA_SAMPLE = "lapd_2010era_random_sample_2011-2015_noWestLA.csv.gz"
PORTAL_FILES = (
    "lapd_legacy_prefix10000_2020_noWestLA.csv.gz",
    "lapd_legacy_prefix6007_2020_noWestLA.csv.gz",
    "lapd_legacy_sample874_2020_portalformat.csv.gz",
    "lapd_legacy_sample1000_2022.csv.gz",
)
RANDOM_SAMPLES = (
    "lapd_legacy_sample874_2020_portalformat.csv.gz",
    "lapd_legacy_sample1000_2022.csv.gz",
)
ANNUAL_FILES = (
    "lapd_annual_counts_area_crmcd_2010-2019.csv.gz",
    "lapd_annual_counts_area_crmcd_2020-2022.csv.gz",
)
PHL_FILE = "phl_shooting_victims_2015-01-01_2023-08-22.csv.gz"
LAX_FILE = "lax_LAXthr_2023_daily_normals_departures.json.gz"

# Cell size in km (north-south, east-west) at LA's latitude.
CELL_KM = (ROW_HEIGHT * 111.0, COL_WIDTH * 111.0 * np.cos(np.radians(34.02)))
BANDWIDTHS_KM = (0.15, 0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0)
# Weight of the kernel density against a cell's own count (0 = raw counts).
PRIORS = (0.5, 1.0, 2.0, 4.0, 8.0, np.inf)
# The 2011-2015 sample names offenses, not codes: these words mark the violent ones.
_VIOLENT_WORDS = re.compile(
    r"HOMICIDE|MANSLAUGHTER|RAPE|ROBBERY|AGGRAVATED ASSAULT|ASSAULT WITH DEADLY|BRANDISH|"
    r"SEXUAL PENETRATION|ORAL COPULATION|SODOMY|SHOTS FIRED"
)
DELAY_EDGES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 31, 61, 121, 366, 731, 1461)


def _points(data: Path) -> pd.DataFrame:
    """Every real LAPD point with a location: lat, lon, area name, violent, kind, file."""
    era = pd.read_csv(data / ERA_SAMPLE)
    frames = [
        pd.DataFrame(
            {
                "lat": era["lat"],
                "lon": era["lon"],
                "area_name": era["AREA.NAME"],
                "violent": era["CrmCd.Desc"].fillna("").str.contains(_VIOLENT_WORDS),
                "collision": era["CrmCd.Desc"].eq("TRAFFIC DR #"),
                "month": pd.to_datetime(era["date_occ"]).dt.month,
                "hour": pd.to_numeric(era["time_occ_hhmm"], errors="coerce") // 100,
                "file": ERA_SAMPLE,
            }
        )
    ]
    for name in PORTAL_FILES:
        raw = pd.read_csv(data / name, dtype=str)
        frames.append(
            pd.DataFrame(
                {
                    "lat": raw["LAT"].astype(float),
                    "lon": raw["LON"].astype(float),
                    "area_name": raw["AREA NAME"],
                    "violent": raw["Crm Cd"].str.strip().isin(LEGACY_VIOLENT_CODES),
                    "collision": False,
                    "month": np.nan,
                    "hour": np.nan,
                    "file": name,
                }
            )
        )
    points = pd.concat(frames, ignore_index=True)
    points["cell"], _ = cell_of(points["lat"], points["lon"])
    return points[points["cell"] >= 0].reset_index(drop=True)


def _annual(data: Path) -> pd.DataFrame:
    """Real annual counts: one row per year x area, violent and all incidents."""
    frames = []
    for name in ANNUAL_FILES:
        frame = pd.read_csv(data / name, dtype=str)
        frame.columns = [c.strip() for c in frame.columns]
        frames.append(frame)
    counts = pd.concat(frames, ignore_index=True)
    counts["year"] = counts["DATE OCC"].astype(int)
    counts["area"] = counts["AREA"].astype(int)
    counts["count"] = counts["DR_NO"].astype(int)
    counts["violent"] = counts["Crm Cd"].str.strip().isin(LEGACY_VIOLENT_CODES)
    return counts


def _density(counts: np.ndarray, bandwidth_km: float) -> np.ndarray:
    """Gaussian kernel density of binned points on the grid (cells are not square)."""
    sigma = (bandwidth_km / CELL_KM[0], bandwidth_km / CELL_KM[1])
    return gaussian_filter(counts.astype(np.float64), sigma, mode="constant")


def _binned(cells: np.ndarray) -> np.ndarray:
    return np.bincount(cells, minlength=N_ROWS * N_COLS).reshape(N_ROWS, N_COLS)


def _smoothed(
    counts: np.ndarray, mask: np.ndarray, bandwidth_km: float, prior: float
) -> np.ndarray:
    """Empirical-Bayes blend of a cell's own count and its kernel density (``prior``
    pseudo-weeks of the density: 0 = raw counts, large = the pure density), on ``mask``."""
    density = np.where(mask, _density(counts, bandwidth_km), 0.0)
    density *= counts.sum() / density.sum()
    if np.isinf(prior):
        return density
    return np.where(mask, (counts + prior * density) / (1.0 + prior), 0.0)


def _cv_bandwidth(
    cells: np.ndarray, mask: np.ndarray, base: np.ndarray | None, seed: int, priors=(np.inf,)
) -> dict:
    """Two-fold likelihood cross-validation of the kernel bandwidth (and blend).

    Without ``base``: the held-out points' log-likelihood under the smoothed
    counts of the other half, kept on ``mask``. With ``base`` (the all-points
    intensity): the model is ``base`` times the ratio of this half's density to
    the all points' density at the same bandwidth (a smooth local share).
    """
    rng = np.random.default_rng(seed)
    fold = rng.random(len(cells)) < 0.5
    scores = {}
    for h in BANDWIDTHS_KM:
        for prior in priors:
            total = 0.0
            for train in (fold, ~fold):
                counts = _binned(cells[train]).astype(np.float64)
                if base is None:
                    dens = _smoothed(counts, mask, h, prior)
                else:
                    dens = base * _density(counts, h) / np.maximum(_density(base, h), 1e-12)
                    dens = np.where(mask, dens, 0.0)
                prob = dens / dens.sum()
                total += float(np.log(np.maximum(prob.ravel()[cells[~train]], 1e-9)).sum())
            scores[(h, prior)] = total
    best_h, best_prior = max(scores, key=scores.get)
    out = {
        "bandwidth_km": best_h,
        "cv_loglik": {f"{h} km, prior {p}": round(v, 1) for (h, p), v in scores.items()},
    }
    if base is None:
        out["prior_weight"] = best_prior if np.isfinite(best_prior) else "inf"
    return out


def _spatial(points: pd.DataFrame, annual: pd.DataFrame) -> dict[str, Any]:
    crimes = points[~points["collision"]]
    footprint = _binned(points["cell"].to_numpy()) > 0
    all_cv = _cv_bandwidth(crimes["cell"].to_numpy(), footprint, None, seed=1, priors=PRIORS)
    prior = float(all_cv["prior_weight"])
    all_density = _smoothed(
        _binned(crimes["cell"].to_numpy()).astype(np.float64),
        footprint,
        all_cv["bandwidth_km"],
        prior,
    )
    violent_cells = crimes.loc[crimes["violent"], "cell"].to_numpy()
    crime_counts = _binned(crimes["cell"].to_numpy()).astype(np.float64)
    share_cv = _cv_bandwidth(violent_cells, footprint, all_density, seed=2)
    h = share_cv["bandwidth_km"]
    share = _density(_binned(violent_cells), h) / np.maximum(_density(crime_counts, h), 1e-12)
    violent_density = all_density * share

    names = annual.drop_duplicates("area").set_index("AREA NAME")["area"]
    cell_area = (
        points.assign(area=points["area_name"].str.strip().map(names))
        .groupby("cell")["area"]
        .agg(lambda a: int(a.mode().iloc[0]))
    )
    cells = np.flatnonzero(footprint.ravel())
    area = cell_area.reindex(cells).to_numpy(int)
    all_w = all_density.ravel()[cells]
    vio_w = violent_density.ravel()[cells]
    # Normalised within each area: the annual counts say how much each area gets.
    for a in np.unique(area):
        inside = area == a
        all_w[inside] /= all_w[inside].sum()
        vio_w[inside] /= vio_w[inside].sum()
    return {
        "cells": {
            "cell_id": cells.tolist(),
            "area": area.tolist(),
            "all_weight": [float(f"{w:.4g}") for w in all_w],
            "violent_weight": [float(f"{w:.4g}") for w in vio_w],
        },
        "kernel": {
            "all": all_cv,
            "violent_share": share_cv,
            "points": int(len(crimes)),
            "violent_points": int(len(violent_cells)),
            "collision_points": int(points["collision"].sum()),
        },
    }


def _annual_table(annual: pd.DataFrame) -> dict[str, Any]:
    years = sorted(annual["year"].unique())
    areas = annual.drop_duplicates("area").sort_values("area")
    table = annual.pivot_table(index="year", columns="area", values="count", aggfunc="sum")
    violent = annual[annual["violent"]].pivot_table(
        index="year", columns="area", values="count", aggfunc="sum"
    )
    # How much an area's share of the city drifts from one year to the next (log sd).
    share = np.log(violent.div(violent.sum(axis=1), axis=0))
    return {
        "years": [int(y) for y in years],
        "area_code": areas["area"].astype(int).tolist(),
        "area_name": areas["AREA NAME"].str.strip().tolist(),
        "all": table.reindex(columns=areas["area"]).fillna(0).astype(int).to_numpy().tolist(),
        "violent": violent.reindex(columns=areas["area"]).fillna(0).astype(int).to_numpy().tolist(),
        "area_share_log_sd_per_year": round(float(share.diff().stack().std()), 4),
        "city_log_sd_per_year": round(float(np.log(violent.sum(axis=1)).diff().std()), 4),
    }


def _codes(annual: pd.DataFrame, top: int = 40) -> dict[str, Any]:
    recent = annual[annual["year"] >= 2020]
    mix = recent.groupby(["Crm Cd", "violent"])["count"].sum().reset_index()
    mix["Crm Cd"] = mix["Crm Cd"].str.strip()
    out = {}
    for violent, name in ((True, "legacy_violent"), (False, "legacy_other")):
        part = mix[mix["violent"] == violent].nlargest(top, "count")
        out[name] = {
            code: round(c / part["count"].sum(), 5)
            for code, c in zip(part["Crm Cd"], part["count"], strict=True)
        }
    return out


def _seasonality(points: pd.DataFrame) -> dict[str, Any]:
    era = points[(points["file"] == ERA_SAMPLE) & ~points["collision"]]
    months = era["month"].value_counts().sort_index().reindex(range(1, 13), fill_value=0)
    days = np.array([31, 28.25, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    rate = months.to_numpy() / days
    rate = rate / rate.mean()
    mid_day = np.cumsum(days) - days / 2
    angle = 2 * np.pi * mid_day / 365.25
    a, b = 2 * np.mean((rate - 1) * np.cos(angle)), 2 * np.mean((rate - 1) * np.sin(angle))
    hours = era["hour"].dropna().astype(int).value_counts().reindex(range(24), fill_value=0)
    return {
        "seasonality": {
            "amplitude": round(float(np.hypot(a, b)), 4),
            "peak_day_of_year": round(float(np.degrees(np.arctan2(b, a)) % 360 * 365.25 / 360), 1),
            "monthly_relative_rate": [round(float(r), 3) for r in rate],
        },
        "hour_of_day": [round(float(h), 4) for h in hours / hours.sum()],
    }


def _delays(data: Path) -> dict[str, Any]:
    frames = [pd.read_csv(data / name, dtype=str) for name in RANDOM_SAMPLES]
    raw = pd.concat(frames, ignore_index=True)
    reported = pd.to_datetime(raw["Date Rptd"], format="mixed")
    occurred = pd.to_datetime(raw["DATE OCC"], format="mixed")
    delay = (reported - occurred).dt.days.clip(lower=0, upper=DELAY_EDGES[-1] - 1)
    violent = raw["Crm Cd"].str.strip().isin(LEGACY_VIOLENT_CODES)
    out: dict[str, Any] = {"edges_days": list(DELAY_EDGES), "rows": int(len(raw))}
    for name, part in (("violent", delay[violent]), ("other", delay[~violent])):
        hist, _ = np.histogram(part, bins=DELAY_EDGES)
        out[name] = [round(float(p), 4) for p in hist / hist.sum()]
    return out


def _cell_drift(points: pd.DataFrame, timescale_weeks: float = 104.0) -> dict[str, Any]:
    """Stationary sd of a cell's slow log multiplier, from the two eras of real points."""
    crimes = points[~points["collision"]]
    later = crimes["file"] != ERA_SAMPLE
    num = den = 0.0
    for _, area in crimes.groupby("area_name"):
        counts = pd.concat(
            [area.loc[~later, "cell"].value_counts(), area.loc[later, "cell"].value_counts()],
            axis=1,
        ).fillna(0.0)
        counts.columns = ["early", "late"]
        n_early, n_late = counts.sum()
        if min(n_early, n_late) < 200:
            continue  # too few points to see drift through the sampling noise
        both = counts["early"] + counts["late"]
        q = n_late / (n_early + n_late)
        expected, variance = both * q, both * q * (1 - q)
        # (late - expected) is about both * q * (1 - q) * delta, delta the log share ratio.
        excess = ((counts["late"] - expected) ** 2 - variance) / (both * q * (1 - q)) ** 2
        keep = both >= 10
        num += float((excess[keep] * both[keep]).sum())
        den += float(both[keep].sum())
    delta_var = max(num / den, 0.0)
    return {
        "log_ratio_var_between_eras": round(delta_var, 4),
        "stationary_log_sd": round(float(np.sqrt(delta_var / 2.0)), 4),
        "timescale_weeks": timescale_weeks,
    }


# NIBRS offense of each legacy violent code (FBI crosswalk: robbery 120, aggravated
# assault 13A, rape 11A, sodomy 11B, sexual assault with an object 11C, murder 09A).
LEGACY_TO_NIBRS = {
    "110": "09A", "113": "09A", "121": "11A", "122": "11A", "815": "11C", "820": "11B",
    "821": "11B", "210": "120", "220": "120", "230": "13A", "231": "13A", "235": "13A",
    "236": "13A", "250": "13A", "251": "13A", "761": "13A", "926": "13A",
}  # fmt: skip
# Non-violent NIBRS offenses with shares of the non-violent NIBRS rows (an assumption:
# no real NIBRS row file could be brought here; the codes are real NIBRS codes).
NIBRS_OTHER = {
    "13B": 0.18, "240": 0.12, "290": 0.13, "23F": 0.08, "23H": 0.10, "220": 0.07,
    "26A": 0.06, "13C": 0.06, "23C": 0.05, "90Z": 0.07, "35A": 0.03, "23D": 0.02,
    "250": 0.01, "520": 0.02,
}  # fmt: skip


def _nibrs(annual: pd.DataFrame, codes: dict[str, Any]) -> dict[str, Any]:
    """The 2024 legacy-to-NIBRS switch, from the real figures the data README states."""
    normal_month = annual.loc[annual["year"] == 2022, "count"].sum() / 12.0
    mean_year = annual.loc[annual["year"] >= 2020].groupby("year")["count"].sum().mean()
    # NIBRS incidents 2024-03-07 .. 2026-09-20 = full level x (2024's ramp: 0 -> 0.675 by
    # October, then 0.675; 2025 whole; 2026 to September 20).
    ramp_years = (0.675 / 2) * (208 / 365.25) + 0.675 * (92 / 365.25)
    full_year = 423_000 / (ramp_years + 1.0 + 263 / 365.25)
    violent: dict[str, float] = {}
    for code, share in codes["legacy_violent"].items():
        nibr = LEGACY_TO_NIBRS[code]
        violent[nibr] = round(violent.get(nibr, 0.0) + share, 5)
    return {
        "start": "2024-03-07",
        "legacy_end": "2024-12-30",
        "legacy_share_march_2024": round(16_300 / normal_month, 3),
        "legacy_share_december_2024": round(4_700 / normal_month, 3),
        "nibrs_share_oct_dec_2024": 0.675,
        "nibrs_full_level": round(float(full_year / mean_year), 3),
        "nibrs_violent": violent,
        "nibrs_other": NIBRS_OTHER,
    }


def near_repeat_excess(counts: np.ndarray, horizon: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Expected extra incidents per incident, in its own cell and in its 8 neighbours,
    1..``horizon`` weeks later, beyond the cells' level 10-30 weeks before and after.

    ``counts`` is (weeks, rows, cols). Each incident weighs one. A cell's
    expected count in week w+k is its level in the weeks 10-30 before and
    after (so slow drift does not count) times the city's count in w+k over
    the city's level in those weeks (so seasons do not count either).
    """
    y = np.asarray(counts, np.float64)
    t = len(y)
    ring = _ring_sum(y)
    cum = np.concatenate([np.zeros((1, *y.shape[1:])), np.cumsum(y, axis=0)])
    city = y.reshape(t, -1).sum(axis=1)
    self_excess, ring_excess = np.zeros(horizon), np.zeros(horizon)
    incidents = 0.0
    for w in range(30, t - 30):
        weight = y[w]
        if not weight.any():
            continue
        level = (cum[w - 10] - cum[w - 30] + cum[w + 31] - cum[w + 11]) / 40.0
        city_level = level.sum()
        if city_level <= 0:
            continue
        ring_level = _ring_sum(level[None])[0]
        incidents += weight.sum()
        for k in range(1, horizon + 1):
            season = city[w + k] / city_level
            self_excess[k - 1] += (weight * (y[w + k] - season * level)).sum()
            ring_excess[k - 1] += (weight * (ring[w + k] - season * ring_level)).sum()
    return self_excess / max(incidents, 1.0), ring_excess / max(incidents, 1.0)


def _near_repeat(data: Path, horizon: int = 6) -> dict[str, Any]:
    """The near-repeat excess of Philadelphia's shootings on 60 x 75 cells over the city."""
    phl = pd.read_csv(data / PHL_FILE, usecols=["dc_key", "date_", "lat", "lng"])
    phl = phl.dropna(subset=["lat", "lng"]).drop_duplicates("dc_key")
    day = pd.to_datetime(phl["date_"].str[:10])
    week = ((day - day.min()).dt.days // 7).to_numpy()
    lat, lon = phl["lat"].to_numpy(), phl["lng"].to_numpy()
    row = np.clip(((lat.max() - lat) / np.ptp(lat) * N_ROWS).astype(int), 0, N_ROWS - 1)
    col = np.clip(((lon - lon.min()) / np.ptp(lon) * N_COLS).astype(int), 0, N_COLS - 1)
    y = np.zeros((int(week.max()) + 1, N_ROWS, N_COLS))
    np.add.at(y, (week, row, col), 1.0)
    self_excess, ring_excess = near_repeat_excess(y, horizon)
    total = self_excess.sum() + ring_excess.sum()
    return {
        "source": "Philadelphia shooting victims 2015-2023, incidents by dc_key, 60 x 75 cells",
        "self_excess_by_week": [round(float(v), 4) for v in self_excess],
        "neighbour_excess_by_week": [round(float(v), 4) for v in ring_excess],
        "branching_ratio": round(float(max(total, 0.0)), 4),
        "self_share": round(float(np.clip(self_excess.sum() / max(total, 1e-9), 0.05, 0.95)), 3),
        "weeks": horizon,
    }


def _ring_sum(grids: np.ndarray) -> np.ndarray:
    """Sum over each cell's 8 neighbours, for (T, rows, cols) grids."""
    padded = np.pad(grids, ((0, 0), (1, 1), (1, 1)))
    rows, cols = grids.shape[1:]
    return sum(
        padded[:, 1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]
        for dr in (-1, 0, 1)
        for dc in (-1, 0, 1)
        if (dr, dc) != (0, 0)
    )


def _weather(data: Path) -> dict[str, Any]:
    daily = pd.read_json(data / LAX_FILE)
    daily["date"] = pd.to_datetime(daily["date"])
    daily["value"] = daily["normal_value"] + daily["dfn"]
    avg = daily[daily["value_variable"] == "avgt"].set_index("date").sort_index()
    angle = 2 * np.pi * avg.index.day_of_year.to_numpy() / 365.25
    design = np.column_stack([np.ones(len(avg)), np.cos(angle), np.sin(angle)])
    coef, *_ = np.linalg.lstsq(design, avg["normal_value"].to_numpy(), rcond=None)
    weekly_anomaly = avg["dfn"].resample("W-SUN").mean()
    anomaly = weekly_anomaly.to_numpy()
    precip = daily[daily["value_variable"] == "precip"].set_index("date")["value"].clip(lower=0)
    weekly_rain = precip.resample("W-SUN").sum()
    wet = weekly_rain > 0.05
    wet_season = weekly_rain.index.month.isin([11, 12, 1, 2, 3])
    return {
        "temp_mean_f": round(float(coef[0]), 2),
        "temp_amplitude_f": round(float(np.hypot(coef[1], coef[2])), 2),
        "temp_peak_day_of_year": round(
            float(np.degrees(np.arctan2(coef[2], coef[1])) % 360 * 365.25 / 360), 1
        ),
        "weekly_anomaly_sd_f": round(float(anomaly.std()), 2),
        "weekly_anomaly_lag1": round(float(np.corrcoef(anomaly[:-1], anomaly[1:])[0, 1]), 3),
        "wet_week_p_nov_mar": round(float(wet[wet_season].mean()), 3),
        "wet_week_p_apr_oct": round(float(wet[~wet_season].mean()), 3),
        "wet_week_mean_in": round(float(weekly_rain[wet].mean()), 3),
    }


def calibrate(data: Path = DEFAULT_DATA) -> dict[str, Any]:
    """Every parameter of the world, refitted from the real files in ``data``."""
    points = _points(data)
    annual = _annual(data)
    params: dict[str, Any] = {
        "about": "crimejob LA development world parameters; refit with "
        "`python -m crimejob.devworld.calibrate` (see crimejob/devworld/calibrate.py)",
        "grid": {"rows": N_ROWS, "cols": N_COLS, "cell_km": [round(k, 3) for k in CELL_KM]},
        **_spatial(points, annual),
        "annual": _annual_table(annual),
        "codes": (codes := _codes(annual)),
        "nibrs": _nibrs(annual, codes),
        **_seasonality(points),
        "report_delay": _delays(data),
        "cell_drift": _cell_drift(points),
        "near_repeat": _near_repeat(data),
        "weather": _weather(data),
    }
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=PARAMS_PATH, help="where to write params")
    args = parser.parse_args(argv)
    if not (args.data / ERA_SAMPLE).exists():
        parser.error(f"{args.data} has no {ERA_SAMPLE}: calibration needs the shared data")
    params = calibrate(args.data)
    args.out.write_text(json.dumps(params, indent=1) + "\n")
    kernel = params["kernel"]
    print(
        f"wrote {args.out}: {len(params['cells']['cell_id'])} footprint cells, "
        f"bandwidth {kernel['all']['bandwidth_km']} km (violent share "
        f"{kernel['violent_share']['bandwidth_km']} km), near-repeat branching ratio "
        f"{params['near_repeat']['branching_ratio']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
