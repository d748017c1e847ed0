"""Weekly violent volume per LAPD division and citywide: the CT-Crimes question.

How many violent incidents will a division, or the whole city, see in each of
the next weeks? Three answers are compared on the same weeks
(``benchmarks/bench_volume.py``):

- :class:`VolumeLGBM`: one LightGBM model (Poisson) pooled over the divisions
  and the city, on scale-free features of each series: the last four weeks and
  the week a year before the target, each relative to the series' 13-week mean;
  the 4-, 13- and 52-week means relative to it; the target week's holiday flag
  and season (both known in advance); the newest observed week's temperature
  and rain; the log of the level. The 13-week mean is the model's offset
  (``init_score``), so it learns a multiplicative correction to the recent level
  and one model serves a quiet division and the city alike.
- our cell model aggregated: a cell forecaster's grid, summed over the
  division's cells (:mod:`crimejob.serving.divisions`);
- seasonal naive: the count of the same division 52 weeks before the target.

**Blind recursive backtest** (as the CT-Crimes prototype did it): from an
origin week T the model forecasts T+1, then feeds that forecast back as if it
had been observed to forecast T+2, and so on to T+4; it never sees a count
after T (nor the weather after T: the newest observed week's weather stands in
for the weeks ahead). It is refitted at every origin on the weeks up to T only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from crimejob.grid.calendar import holiday_table
from crimejob.grid.history import GridHistory
from crimejob.models.uncertainty import Predictive, fit_dispersion

CITYWIDE = "citywide"
SEASON = 52  # weeks in a (forecasting) year
LEVEL_WEEKS = 13
MIN_WEEKS = SEASON + LEVEL_WEEKS  # history a forecast needs
FEATURES = (
    "lag1", "lag2", "lag3", "lag4", "lag_season", "mean4", "mean52", "log_level",
    "holiday", "season_sin", "season_cos", "temp", "rain",
)  # fmt: skip


@dataclass(frozen=True)
class VolumeSeries:
    """Weekly totals of several areas: ``counts[t, s]`` for week ``week_starts[t]``."""

    week_starts: np.ndarray  # (T,) datetime64[D]
    names: list[str]  # divisions, then citywide
    counts: np.ndarray  # (T, S) float64
    temp: np.ndarray  # (T, S) mean temperature over the area's cells
    rain: np.ndarray  # (T, S)
    holiday: np.ndarray  # (T,)

    def __len__(self) -> int:
        return len(self.week_starts)

    def through(self, t: int) -> VolumeSeries:
        """Weeks 0..t (what a forecast from origin t may see)."""
        keep = slice(0, t + 1)
        return VolumeSeries(
            self.week_starts[keep], self.names, self.counts[keep], self.temp[keep],
            self.rain[keep], self.holiday[keep],
        )  # fmt: skip


def volume_series(history: GridHistory, labels: np.ndarray, names: dict[int, str]) -> VolumeSeries:
    """Per division (``labels``: each cell's area code, 0 = none) and citywide: weekly
    violent totals and the mean weather over the area's cells."""
    flat_labels = np.asarray(labels).ravel()
    crime = history.crime.reshape(len(history), -1).astype(np.float64)
    weather = history.weather.reshape(len(history), -1, 3).astype(np.float64)
    masks = [flat_labels == code for code in sorted(names)]
    masks.append(np.ones(flat_labels.shape, bool))
    counts = np.stack([crime[:, m].sum(axis=1) for m in masks], axis=1)
    with warnings.catch_warnings():  # a week without weather stays NaN: LightGBM takes it
        warnings.simplefilter("ignore", RuntimeWarning)
        temp = np.stack([np.nanmean(weather[:, m, 0], axis=1) for m in masks], axis=1)
        rain = np.stack([np.nanmean(weather[:, m, 1], axis=1) for m in masks], axis=1)
        holiday = np.nan_to_num(np.nanmax(weather[:, :, 2], axis=1))
    return VolumeSeries(
        history.week_starts.copy(), [names[c] for c in sorted(names)] + [CITYWIDE],
        counts, temp, rain, holiday,
    )  # fmt: skip


def _season(week_starts: np.ndarray) -> np.ndarray:
    day = pd.DatetimeIndex(week_starts).day_of_year.to_numpy() + 3.5
    return 2 * np.pi * day / 365.25


def features(
    series: VolumeSeries, counts: np.ndarray, origin: int, target_week: np.datetime64,
    holiday: float,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(S, features) rows for forecasting the week after ``origin`` from ``counts[:origin+1]``
    (observed, or partly the model's own forecasts), and the offset log(level) per series."""
    y = counts[: origin + 1]
    level = np.maximum(y[-LEVEL_WEEKS:].mean(axis=0), 0.1)
    angle = _season(np.array([target_week]))[0]
    rows = np.column_stack(
        [
            y[-1] / level, y[-2] / level, y[-3] / level, y[-4] / level,
            y[-SEASON] / level,  # the target week a year before: index origin+1-52
            y[-4:].mean(axis=0) / level, y[-SEASON:].mean(axis=0) / level, np.log(level),
            np.full(level.shape, holiday), np.full(level.shape, np.sin(angle)),
            np.full(level.shape, np.cos(angle)),
            series.temp[min(origin, len(series) - 1)], series.rain[min(origin, len(series) - 1)],
        ]
    )  # fmt: skip
    return rows, np.log(level)


class VolumeLGBM:
    """Pooled one-step LightGBM volume model, applied recursively (see the module)."""

    name = "volume_lgbm"

    def __init__(self, **hyperparameters: Any) -> None:
        self.hp = {
            "num_boost_round": 200,
            "learning_rate": 0.03,
            "num_leaves": 7,
            "min_data_in_leaf": 40,
            "feature_fraction": 0.8,
            "lambda_l2": 1.0,
            "num_threads": 1,
            "seed": 0,
            **hyperparameters,
        }
        self.booster: lgb.Booster | None = None
        self.dispersion = 0.0  # NB2 alpha of the one-step errors

    def fit(self, series: VolumeSeries) -> VolumeLGBM:
        """Learn from every one-step pair (origin t, week t+1) inside ``series``."""
        xs, offsets, ys = [], [], []
        for t in range(MIN_WEEKS - 1, len(series) - 1):
            x, offset = features(
                series, series.counts, t, series.week_starts[t + 1], series.holiday[t + 1]
            )
            xs.append(x)
            offsets.append(offset)
            ys.append(series.counts[t + 1])
        if not xs:
            raise ValueError(f"{self.name} needs more than {MIN_WEEKS} weeks to fit")
        params = {k: v for k, v in self.hp.items() if k != "num_boost_round"}
        data = lgb.Dataset(
            np.concatenate(xs), np.concatenate(ys), init_score=np.concatenate(offsets),
            feature_name=list(FEATURES), free_raw_data=True,
        )  # fmt: skip
        self.booster = lgb.train(
            {"objective": "poisson", "verbosity": -1, **params},
            data,
            num_boost_round=int(self.hp["num_boost_round"]),
        )
        fitted = np.exp(
            self.booster.predict(np.concatenate(xs), raw_score=True) + np.concatenate(offsets)
        )
        # In-sample, so if anything too small: bi.division_scores measures the coverage.
        self.dispersion = fit_dispersion(np.concatenate(ys), fitted)
        return self

    def predict(self, series: VolumeSeries, horizons: int, calendar: CalendarAhead) -> np.ndarray:
        """(horizons, S) expected counts for the weeks after ``series``' last week, each
        forecast fed back as the next one's newest week (blind recursion)."""
        if self.booster is None:
            raise ValueError(f"{self.name} is not fitted")
        counts = series.counts.copy()
        out = []
        for step in range(horizons):
            origin = len(counts) - 1
            target = calendar.week(step + 1)
            x, offset = features(series, counts, origin, target, calendar.holiday(step + 1))
            mean = np.exp(self.booster.predict(x, raw_score=True) + offset)
            out.append(mean)
            counts = np.vstack([counts, mean])
        return np.array(out)


@dataclass(frozen=True)
class CalendarAhead:
    """What is known in advance about the weeks after an origin: dates and holidays."""

    origin_week: np.datetime64
    holidays: dict[np.datetime64, float]

    def week(self, ahead: int) -> np.datetime64:
        return self.origin_week + np.timedelta64(7 * ahead, "D")

    def holiday(self, ahead: int) -> float:
        return float(self.holidays.get(self.week(ahead), 0.0))


def calendar_after(series: VolumeSeries, origin: int) -> CalendarAhead:
    """The calendar ahead of ``origin`` (holidays are public knowledge: the whole series')."""
    holidays = dict(zip(series.week_starts, series.holiday.astype(float), strict=True))
    return CalendarAhead(series.week_starts[origin], holidays)


def future_calendar(origin_week: np.datetime64, horizons: int) -> CalendarAhead:
    """The calendar of the ``horizons`` weeks after ``origin_week`` from the holiday
    package (US federal and California, as the grid's holiday flag)."""
    origin = np.datetime64(origin_week, "D")
    weeks = [origin + np.timedelta64(7 * k, "D") for k in range(1, horizons + 1)]
    years = {int(str(w)[:4]) for w in weeks} | {int(str(weeks[-1] + 6)[:4])}
    days = pd.to_datetime(holiday_table(years)["day"]).to_numpy().astype("datetime64[D]")
    flags = {w: float(((days >= w) & (days < w + np.timedelta64(7, "D"))).any()) for w in weeks}
    return CalendarAhead(origin, flags)


def forecast_volume(
    history: GridHistory, labels: np.ndarray, names: dict[int, str], horizon: int
) -> tuple[list[str], np.ndarray, float] | None:
    """Production: each division's and the city's expected count ``horizon`` weeks after
    the history, recursively; ``(names, means, dispersion)``, or None when the history
    is too short to fit (a year and a quarter of weeks and a year of training pairs)."""
    series = volume_series(history, labels, names)
    if len(series) < MIN_WEEKS + SEASON or not names:
        return None
    model = VolumeLGBM().fit(series)
    calendar = future_calendar(series.week_starts[-1], horizon)
    means = model.predict(series, horizon, calendar)[-1]
    return series.names, means, model.dispersion


def seasonal_naive(series: VolumeSeries, origin: int, horizons: int) -> np.ndarray:
    """(horizons, S): each target week's count a year (52 weeks) before it."""
    return np.array(
        [series.counts[origin + h - SEASON] for h in range(1, horizons + 1)], np.float64
    )


def recent_mean(series: VolumeSeries, origin: int, horizons: int) -> np.ndarray:
    """(horizons, S): the 13-week mean up to the origin, for every week ahead."""
    level = series.counts[origin - LEVEL_WEEKS + 1 : origin + 1].mean(axis=0)
    return np.tile(level, (horizons, 1))


def poisson_deviance(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Elementwise Poisson deviance (0 log 0 = 0)."""
    mu = np.maximum(np.asarray(predicted, np.float64), 1e-9)
    y = np.asarray(actual, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / mu), 0.0)
    return 2 * (term - (y - mu))


@dataclass
class VolumeBacktest:
    """Forecasts of every model from each origin: ``forecasts[model]`` is (origins, H, S)."""

    origins: list[date]
    names: list[str]
    horizons: int
    forecasts: dict[str, np.ndarray]
    actual: np.ndarray  # (origins, H, S)
    #: model -> (origins, H) NB2 dispersion of its predictive distribution, where known
    dispersions: dict[str, np.ndarray] = field(default_factory=dict)

    def losses(self, model: str, metric: str) -> np.ndarray:
        """(origins, H, S) absolute error or Poisson deviance of a model."""
        pred = self.forecasts[model]
        if metric == "mae":
            return np.abs(pred - self.actual)
        if metric == "deviance":
            return poisson_deviance(pred, self.actual)
        raise ValueError(f"unknown metric {metric!r}")


def backtest_volume(
    series: VolumeSeries,
    origins: list[int],
    horizons: int = 4,
    cell_aggregates: dict[str, np.ndarray] | None = None,
    hyperparameters: dict[str, Any] | None = None,
) -> VolumeBacktest:
    """Blind recursive backtest from each origin index (its target weeks must be in
    ``series``). ``cell_aggregates[name]`` is (origins, H, S): a cell model's forecasts of
    the same weeks, made from the same origins, summed per area."""
    if min(origins) < MIN_WEEKS - 1 + SEASON - 1 or max(origins) + horizons >= len(series):
        raise ValueError("origins need a year of training weeks before them and H weeks after")
    forecasts: dict[str, list[np.ndarray]] = {"volume_lgbm": [], "seasonal_naive": [],
                                               "mean_13w": []}  # fmt: skip
    actual, dispersions = [], []
    for origin in origins:
        seen = series.through(origin)
        model = VolumeLGBM(**(hyperparameters or {})).fit(seen)
        dispersions.append(np.full(horizons, model.dispersion))
        forecasts["volume_lgbm"].append(
            model.predict(seen, horizons, calendar_after(series, origin))
        )
        forecasts["seasonal_naive"].append(seasonal_naive(series, origin, horizons))
        forecasts["mean_13w"].append(recent_mean(series, origin, horizons))
        actual.append(series.counts[origin + 1 : origin + horizons + 1])
    stacked = {name: np.array(f) for name, f in forecasts.items()}
    for name, values in (cell_aggregates or {}).items():
        stacked[name] = np.asarray(values, np.float64)
    return VolumeBacktest(
        origins=[series.week_starts[o].astype("datetime64[D]").item() for o in origins],
        names=series.names,
        horizons=horizons,
        forecasts=stacked,
        actual=np.array(actual),
        dispersions={"volume_lgbm": np.array(dispersions)},
    )


def newey_west_se(values: np.ndarray, min_lag: int = 0) -> float:
    """Standard error of a mean of weekly differences, robust to autocorrelation (Newey-West,
    Bartlett kernel, lag floor(4 (n/100)^(2/9)) but at least ``min_lag``: forecasts h weeks
    ahead from consecutive origins share h - 1 target weeks, so their errors overlap)."""
    x = np.asarray(values, np.float64)
    n = len(x)
    if n < 2:
        return float("nan")
    e = x - x.mean()
    lag = max(int(np.floor(4 * (n / 100) ** (2 / 9))), min_lag)
    variance = e @ e / n
    for k in range(1, min(lag, n - 1) + 1):
        variance += 2 * (1 - k / (lag + 1)) * (e[k:] @ e[:-k]) / n
    return float(np.sqrt(max(variance, 0.0) / n))


def interval_coverage(
    result: VolumeBacktest, model: str, low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """(H, S) share of origins whose count fell inside the model's 90% interval: ``low``,
    ``high`` (origins, H, S) when given, else the NB2 interval of its dispersions."""
    if low is None or high is None:
        mean = result.forecasts[model]
        disp = result.dispersions[model]
        low, high = np.zeros_like(mean), np.zeros_like(mean)
        for o in range(mean.shape[0]):
            for h in range(mean.shape[1]):
                lo, hi = Predictive(mean[o, h], float(disp[o, h])).interval()
                low[o, h], high[o, h] = lo, hi
    inside = (result.actual >= low) & (result.actual <= high)
    return inside.mean(axis=0)


def paired_table(result: VolumeBacktest, model: str, baselines: list[str],
                 metric: str) -> pd.DataFrame:  # fmt: skip
    """Per area and horizon: each model's mean loss, and ``model`` minus the best baseline
    (lowest mean loss there), paired by origin, with its Newey-West standard error."""
    rows = []
    means = {m: result.losses(m, metric).mean(axis=0) for m in [model, *baselines]}
    for s, area in enumerate(result.names):
        for h in range(result.horizons):
            best = min(baselines, key=lambda b: means[b][h, s])
            diff = result.losses(model, metric)[:, h, s] - result.losses(best, metric)[:, h, s]
            rows.append(
                {
                    "area": area,
                    "horizon": h + 1,
                    **{m: float(means[m][h, s]) for m in [model, *baselines]},
                    "best_baseline": best,
                    "diff": float(diff.mean()),
                    "se": newey_west_se(diff, min_lag=h),
                }
            )
    return pd.DataFrame(rows)
