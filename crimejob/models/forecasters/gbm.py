"""A gradient-boosted baseline on lag and neighbourhood features (LightGBM, Poisson).

The tabular model the field (and seed project CT-Crimes) uses: one row per
cell and origin week, features computed from the history up to that week
only, target the cell's count ``horizon`` weeks later. Features:

- the cell's violent counts: the last 3 weeks, the means of 4, 13 and 52
  weeks and of all history, weeks since its last incident;
- its neighbourhood: 3 x 3 and 5 x 5 means of the same rates;
- its incidents of all kinds: means of 4, 13, 52 weeks and all history, and
  their 3 x 3 mean (the dense leading indicator);
- the city: the violent total's 4-week mean over its 52-week mean (level
  changes, the 2024 series break), the NIBRS share, the last week's mean
  temperature, and the target week's season (sine, cosine).

It trains on the newest ``train_weeks`` origins over the cells that saw any
incident (of any kind) in the history, with early stopping on the last
``validation_weeks`` origins; cells that never saw one are forecast zero.
It is a baseline, so it is not in the model registry: ``predict`` fits it
itself. The fit is anchored to the calendar: a history ending in week W is
forecast by the booster fitted on the weeks up to W's *anchor*, the newest week
at or before W whose number of weeks since 1970-01-05 is a multiple of
``refit_every`` (13: a refit a quarter; a history too short for that is fitted
whole). So it never reads a week after the history's last, and every caller
that forecasts from the same data (the backtest, the training gate, the
champion decision, the weekly forecast and its dispersion) shares one fit: a
process-wide cache keyed by the hyperparameters, the anchor and a digest of
the fitted weeks' grids holds the boosters (:data:`CACHE_SIZE` of them). A
late report that changes a fitted week changes the digest, and so refits.

In the weekly job the fitted weeks are what the run for the anchor saw: the history
through the anchor as published then (:func:`fit_histories`, set around the train and
forecast steps by :mod:`crimejob.job.steps`, in every run and backfilled week alike;
not around the model card's feedback simulation, which forecasts from simulated
counts). So the booster of an
anchor is refitted on the 13-week calendar, not every week that late reports revise
one of its fitted weeks (which, with reports trickling in for months, was every week:
two fits of a backfill week's 12 s). It reads nothing a run could not have read: the
anchor's run was before this one. Forecasts still take their features from the
caller's history, late reports included. Where no source is set (the backtest, the
research tools, tests) the fitted weeks are the caller's history through the anchor,
as before; the backtest replays one history without publication dates, so for it the
two are the same weeks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, timedelta
from typing import Any

import numpy as np
from scipy.ndimage import uniform_filter

from crimejob.grid.history import GridHistory
from crimejob.models.forecasters.base import FitReport, Forecaster

#: Boosters kept in the process-wide cache (a few data sets x a few anchors).
CACHE_SIZE = 16
#: Monday the calendar anchors count from.
EPOCH = date(1970, 1, 5)
#: Weeks between two refits (at the anchors of this calendar), by default.
REFIT_EVERY = 13
#: A fit needs at least this many origins; a shorter anchored history is fitted whole.
MIN_FIT_ORIGINS = 8

_CACHE: OrderedDict[tuple, Any] = OrderedDict()
#: How many fits the cache saved and how many it ran (benchmarks and tests read it).
CACHE_STATS = {"hits": 0, "fits": 0}

#: Where the fitted weeks come from: the history through an anchor as the run for that
#: anchor saw it, or None (then the caller's own history through the anchor).
_FIT_HISTORIES: ContextVar[Callable[[date], GridHistory | None] | None] = ContextVar(
    "lgbm_fit_histories", default=None
)


@contextmanager
def fit_histories(source: Callable[[date], GridHistory | None]) -> Iterator[None]:
    """Fit on ``source(anchor)`` (the history through ``anchor`` as the run for it saw
    it) while inside, where it has the same weeks as the caller's history through the
    anchor; the weekly job's runs (see the module docstring)."""
    token = _FIT_HISTORIES.set(source)
    try:
        yield
    finally:
        _FIT_HISTORIES.reset(token)


FEATURES = (
    "lag1", "lag2", "lag3", "mean4", "mean13", "mean52", "mean_all", "weeks_since",
    "nb3_mean13", "nb3_mean52", "nb3_mean_all", "nb5_mean52", "nb5_mean_all",
    "inc_mean4", "inc_mean13", "inc_mean52", "inc_mean_all", "nb3_inc_mean52",
    "city_trend", "nibrs_share", "temp", "season_sin", "season_cos",
)  # fmt: skip


def _window_means(cum: np.ndarray, origins: np.ndarray, window: int) -> np.ndarray:
    """Mean over the ``window`` weeks up to each origin (fewer early on), from cumsums
    ``cum`` (T+1, rows, cols); window 0 = all weeks so far."""
    end = origins + 1
    begin = np.zeros_like(end) if window == 0 else np.maximum(end - window, 0)
    return (cum[end] - cum[begin]) / (end - begin)[:, None, None]


def _box(grids: np.ndarray, size: int) -> np.ndarray:
    return uniform_filter(grids, size=(1, size, size), mode="constant")


def features(history: GridHistory, origins: np.ndarray, horizon: int) -> np.ndarray:
    """(len(origins), rows, cols, len(FEATURES)) features at each origin index."""
    crime = history.crime.astype(np.float64)
    incidents = history.incidents.astype(np.float64)
    zero = np.zeros((1, *crime.shape[1:]))
    cum = np.concatenate([zero, np.cumsum(crime, axis=0)])
    inc_cum = np.concatenate([zero, np.cumsum(incidents, axis=0)])
    n, (rows, cols) = len(origins), crime.shape[1:]

    def lag(k: int) -> np.ndarray:
        return np.where((origins - k >= 0)[:, None, None], crime[np.maximum(origins - k, 0)], 0.0)

    means = {w: _window_means(cum, origins, w) for w in (4, 13, 52, 0)}
    inc_means = {w: _window_means(inc_cum, origins, w) for w in (4, 13, 52, 0)}
    # Weeks since the cell's last incident (capped at 104).
    idx = np.arange(len(crime))[:, None, None]
    last_seen = np.maximum.accumulate(np.where(crime > 0, idx, -1), axis=0)[origins]
    since = np.where(last_seen >= 0, origins[:, None, None] - last_seen, 104).clip(max=104)

    city = crime.reshape(len(crime), -1).sum(axis=1)
    city_cum = np.concatenate([[0.0], np.cumsum(city)])
    end = origins + 1

    def city_mean(w: int) -> np.ndarray:
        begin = np.maximum(end - w, 0)
        return (city_cum[end] - city_cum[begin]) / (end - begin)

    trend = city_mean(4) / np.maximum(city_mean(52), 1e-9)
    temp = history.weather[origins, ..., 0].reshape(n, -1).mean(axis=1)
    target_day = (
        (history.week_starts[origins] + np.timedelta64(7 * horizon, "D"))
        .astype("datetime64[D]")
        .astype(object)
    )
    day_of_year = np.array([d.timetuple().tm_yday for d in target_day], np.float64)
    angle = 2 * np.pi * day_of_year / 365.25

    def city_wide(values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(values, np.float64)[:, None, None], (n, rows, cols))

    columns = [
        lag(0), lag(1), lag(2), means[4], means[13], means[52], means[0], since,
        _box(means[13], 3), _box(means[52], 3), _box(means[0], 3), _box(means[52], 5),
        _box(means[0], 5), inc_means[4], inc_means[13], inc_means[52], inc_means[0],
        _box(inc_means[52], 3), city_wide(trend), city_wide(history.nibrs_share[origins]),
        city_wide(temp), city_wide(np.sin(angle)), city_wide(np.cos(angle)),
    ]  # fmt: skip
    return np.stack(columns, axis=-1).astype(np.float32)


class LightGBMForecaster(Forecaster):
    """Poisson gradient boosting on lag and neighbourhood features (see the module)."""

    name = "lgbm"
    min_history = 2

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        return {
            **super().default_hyperparameters(),
            "train_weeks": 104,
            "validation_weeks": 8,
            "refit_every": REFIT_EVERY,
            "num_boost_round": 400,
            "early_stopping_rounds": 30,
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": 200,
            "feature_fraction": 0.8,
            "lambda_l2": 1.0,
            "num_threads": 1,  # OpenMP threads spin on a shared, busy CPU; one is steadier
            "seed": 0,
        }

    def __init__(self, **hyperparameters: Any) -> None:
        super().__init__(**hyperparameters)
        self.booster = None
        self.fitted_through: date | None = None
        self.grid_shape: tuple[int, int] | None = None
        self.last_report = FitReport(mode="none")

    @property
    def _horizon(self) -> int:
        return int(self.hp.get("horizon", 1))

    def anchor(self, history: GridHistory) -> date:
        """The newest week the fit for ``history`` may use (see the module docstring)."""
        every = max(1, int(self.hp["refit_every"]))
        last = history.last_week
        anchor = last - timedelta(weeks=((last - EPOCH).days // 7) % every)
        fitted = history.through(anchor)
        if len(fitted) - 1 - self._horizon < MIN_FIT_ORIGINS:
            return last  # too little before the anchor: fit on the whole history
        return anchor

    def _key(self, fitted: GridHistory) -> tuple:
        digest = hashlib.blake2b(digest_size=16)
        for array in (fitted.crime, fitted.incidents, fitted.weather, fitted.nibrs_share):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(np.ascontiguousarray(fitted.week_starts).tobytes())
        hp = json.dumps(self.hp, sort_keys=True, default=str)
        return (hp, fitted.crime.shape, fitted.last_week, digest.hexdigest())

    def fitted_history(self, history: GridHistory) -> GridHistory:
        """The weeks the booster for ``history`` is fitted on: through its anchor, as the
        run for the anchor saw them when :func:`fit_histories` gives them."""
        anchor = self.anchor(history)
        fitted = history.through(anchor)
        source = _FIT_HISTORIES.get()
        published = source(anchor) if source is not None else None
        if published is not None and np.array_equal(published.week_starts, fitted.week_starts):
            return published
        return fitted

    def fit(self, history: GridHistory) -> FitReport:
        """Fit (or take from the cache) the booster for ``history``'s anchor."""
        fitted = self.fitted_history(history)
        key = self._key(fitted)
        if key in _CACHE:
            _CACHE.move_to_end(key)
            CACHE_STATS["hits"] += 1
            self.booster, self.last_report = _CACHE[key]
        else:
            CACHE_STATS["fits"] += 1
            self.booster, self.last_report = self._train(fitted)
            _CACHE[key] = (self.booster, self.last_report)
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        self.fitted_through = fitted.last_week
        self.grid_shape = history.crime.shape[1:]
        return self.last_report

    def _train(self, history: GridHistory) -> tuple[Any, FitReport]:
        """Train on the newest origins of ``history`` (targets inside it only)."""
        import lightgbm as lgb

        started = time.perf_counter()
        h = self._horizon
        last_origin = len(history) - 1 - h
        if last_origin < 0:
            return None, FitReport(mode="none", seconds=time.perf_counter() - started)
        first = max(0, last_origin - int(self.hp["train_weeks"]) + 1)
        origins = np.arange(first, last_origin + 1)
        active = history.incidents.sum(axis=0) > 0
        x = features(history, origins, h)[:, active]  # (n, active, features)
        y = history.crime[origins + h][:, active].astype(np.float64)
        n_val = min(int(self.hp["validation_weeks"]), len(origins) // 4)
        params = {
            "objective": "poisson",
            "learning_rate": self.hp["learning_rate"],
            "num_leaves": self.hp["num_leaves"],
            "min_data_in_leaf": self.hp["min_data_in_leaf"],
            "feature_fraction": self.hp["feature_fraction"],
            "lambda_l2": self.hp["lambda_l2"],
            "num_threads": self.hp["num_threads"],
            "seed": self.hp["seed"],
            "deterministic": True,
            "verbose": -1,
        }
        train = lgb.Dataset(
            x[: len(origins) - n_val].reshape(-1, len(FEATURES)),
            y[: len(origins) - n_val].ravel(),
            feature_name=list(FEATURES),
        )
        callbacks, valid_sets = [], []
        if n_val:
            valid_sets = [
                lgb.Dataset(
                    x[-n_val:].reshape(-1, len(FEATURES)), y[-n_val:].ravel(), reference=train
                )
            ]
            callbacks = [lgb.early_stopping(int(self.hp["early_stopping_rounds"]), verbose=False)]
        booster = lgb.train(
            params,
            train,
            num_boost_round=int(self.hp["num_boost_round"]),
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        weeks = [history.week(int(i) + h) for i in origins]
        return booster, FitReport(
            mode="retrain",
            train_targets=weeks[: len(weeks) - n_val],
            validation_targets=weeks[len(weeks) - n_val :],
            epochs_run=int(booster.best_iteration or booster.current_iteration()),
            seconds=time.perf_counter() - started,
        )

    def _predict(self, history: GridHistory) -> np.ndarray:
        self.fit(history)  # the cache makes this a lookup when the anchor's data is known
        active = history.incidents.sum(axis=0) > 0
        out = np.zeros(history.crime.shape[1:], np.float64)
        if self.booster is None:
            return history.crime.mean(axis=0)
        x = features(history, np.array([len(history) - 1]), self._horizon)[0][active]
        out[active] = self.booster.predict(x)
        return out
