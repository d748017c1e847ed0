"""The 2024 NIBRS switch is a change in recording, not in crime: models that opt in read
every week at the newest series' level."""

from __future__ import annotations

import numpy as np

from crimejob.grid.history import GridHistory
from crimejob.grid.series_break import recording_factors, rescale_to_current_series, series_eras
from crimejob.models.forecasters import get_forecaster


def _history(shares: np.ndarray, levels: np.ndarray, seed: int = 0) -> GridHistory:
    """Poisson counts on a 10 x 10 grid whose city level follows ``levels`` per week."""
    rng = np.random.default_rng(seed)
    t = len(shares)
    weights = rng.gamma(0.5, 1.0, (10, 10))
    weights /= weights.sum()
    incidents = rng.poisson(levels[:, None, None] * weights[None]).astype(np.float32)
    crime = rng.binomial(incidents.astype(int), 0.15).astype(np.float32)
    weeks = np.datetime64("2023-01-02") + 7 * np.arange(t)
    weather = np.zeros((t, 10, 10, 3), np.float32)
    return GridHistory(weeks, crime, weather, incidents, shares.astype(np.float32))


def test_a_history_recorded_in_one_series_is_left_as_it_is():
    history = _history(np.zeros(60), np.full(60, 4000.0))
    assert (series_eras(history.nibrs_share) == "current").all()
    assert rescale_to_current_series(history) is history


def test_the_older_series_is_brought_to_the_newest_series_level():
    # legacy at 4,000 a week, a 20-week switch during which coverage dips, NIBRS at 3,000
    shares = np.concatenate([np.zeros(60), np.linspace(0.1, 0.9, 20), np.ones(60)])
    levels = np.concatenate([np.full(60, 4000.0), np.full(20, 2500.0), np.full(60, 3000.0)])
    history = _history(shares, levels)
    eras = series_eras(history.nibrs_share)
    assert list(eras[[0, 59, 60, 79, 80, 139]]) == [
        "older", "older", "transition", "transition", "current", "current",
    ]  # fmt: skip
    factors = recording_factors(history)
    assert np.allclose(factors[:60], 0.75, rtol=0.02)
    assert np.allclose(factors[62:78], 1.2, rtol=0.05)  # the dip is filled in
    assert (factors[80:] == 1).all()
    rescaled = rescale_to_current_series(history)
    totals = rescaled.incidents.reshape(len(history), -1).sum(axis=1)
    assert abs(totals[:60].mean() / totals[80:].mean() - 1) < 0.02


def test_long_run_means_see_the_series_and_lgbm_sees_the_share_instead():
    shares = np.concatenate([np.zeros(100), np.ones(30)])
    levels = np.concatenate([np.full(100, 4000.0), np.full(30, 2000.0)])
    history = _history(shares, levels, seed=2)
    newest_level = history.crime[100:].sum(axis=(1, 2)).mean()
    aware = get_forecaster("mean_all").predict(history).sum()
    naive = get_forecaster("mean_all", rescale_series=False).predict(history).sum()
    assert abs(aware / newest_level - 1) < 0.1  # at the NIBRS level
    assert naive / newest_level > 1.5  # the legacy weeks would pull it up
    assert get_forecaster("lgbm").hyperparameters().get("rescale_series", False) is False


def test_backtest_scores_are_reported_by_era_of_the_switch():
    from crimejob.grid.series_break import scores_by_era
    from crimejob.models.backtest import run_backtest

    shares = np.concatenate([np.zeros(40), np.linspace(0.2, 0.8, 4), np.ones(12)])
    history = _history(shares, np.full(len(shares), 3000.0), seed=3)
    result = run_backtest(history, history.week(36), history.last_week, ["mean_all"])
    by_era = scores_by_era(result.rows, history)["mean_all"]
    assert {era: v["weeks"] for era, v in by_era.items()} == {
        "older": 4, "transition": 4, "current": 12,
    }  # fmt: skip
    assert all(v["mean"] > 0 for v in by_era.values())
