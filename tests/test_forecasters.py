"""The forecaster contract and the baselines, on grids whose answers are known."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from crimejob.devworld import la_world
from crimejob.errors import DataError
from crimejob.grid.history import GridHistory
from crimejob.models.forecasters import (
    BASELINES,
    DEFAULT_MODEL,
    available,
    default_model,
    get_forecaster,
)


def ramp_history(weeks: int) -> GridHistory:
    """Week t has t incidents in every cell: every baseline's answer is arithmetic."""
    starts = np.array(
        [date(2023, 1, 2) + timedelta(weeks=i) for i in range(weeks)], "datetime64[D]"
    )
    crime = np.broadcast_to(np.arange(weeks, dtype=np.float32)[:, None, None], (weeks, 60, 75))
    return GridHistory(starts, crime.copy(), np.zeros((weeks, 60, 75, 3), np.float32))


def test_every_name_is_available_and_an_unknown_one_is_refused():
    assert set(BASELINES) == {
        "last_week", "mean_4w", "mean_13w", "mean_52w", "ewma",
        "mean_all", "kde_mean", "incident_share", "lgbm",
    }  # fmt: skip
    assert set(available()) == set(BASELINES) | {"seed_cnn", "rate_cnn", "sparse_cnn"}
    assert DEFAULT_MODEL == "rate_cnn"
    with pytest.raises(ValueError, match="unknown model 'prophet'"):
        get_forecaster("prophet")
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        get_forecaster("mean_4w", window=3)


def test_the_default_model_follows_crimejob_model(monkeypatch):
    monkeypatch.delenv("CRIMEJOB_MODEL", raising=False)
    assert default_model() == "rate_cnn"
    monkeypatch.setenv("CRIMEJOB_MODEL", "seed_cnn")
    assert default_model() == "seed_cnn"
    monkeypatch.setenv("CRIMEJOB_MODEL", "nope")
    with pytest.raises(ValueError, match="CRIMEJOB_MODEL"):
        default_model()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("last_week", 59.0),
        ("mean_4w", (56 + 57 + 58 + 59) / 4),
        ("mean_13w", sum(range(47, 60)) / 13),
        ("mean_52w", sum(range(8, 60)) / 52),
    ],
)
def test_baselines_predict_from_the_last_weeks(name, expected):
    forecast = get_forecaster(name).predict(ramp_history(60))

    assert forecast.shape == (60, 75) and forecast.dtype == np.float32
    assert np.allclose(forecast, expected)


def test_means_use_the_weeks_there_are_when_the_history_is_short():
    assert np.allclose(get_forecaster("mean_52w").predict(ramp_history(10)), 4.5)


def test_ewma_weighs_recent_weeks_by_their_half_life():
    history = ramp_history(3)
    history.crime[:] = 0
    history.crime[-1] = 8  # weeks 0, 0, 8 with weights 1/4, 1/2, 1

    forecast = get_forecaster("ewma", halflife_weeks=1.0).predict(history)

    assert np.allclose(forecast, 8 / 1.75)


def test_forecasts_are_non_negative_and_need_enough_history():
    history = la_world(seed=5, start=date(2021, 1, 4), weeks=12).history()
    for name in BASELINES:
        forecast = get_forecaster(name).predict(history)
        assert forecast.shape == (60, 75) and forecast.min() >= 0

    with pytest.raises(DataError, match="needs 1 weeks"):
        get_forecaster("last_week").predict(history.through(date(2000, 1, 3)))


def test_a_history_may_lie_on_any_grid_and_fills_in_incidents_and_the_series():
    crime = np.ones((3, 4, 5), np.float32)
    history = GridHistory(
        np.array(["2024-01-01", "2024-01-08", "2024-01-15"], "datetime64[D]"),
        crime,
        np.zeros((3, 4, 5, 3), np.float32),
    )

    assert history.shape == (4, 5)
    assert history.incidents is history.crime  # violent-only data: all incidents = violent
    assert history.nibrs_share.tolist() == [0.0, 0.0, 0.0]
    assert get_forecaster("mean_4w").predict(history).shape == (4, 5)
    with pytest.raises(ValueError, match="incident grid"):
        GridHistory(history.week_starts, crime, history.weather, np.ones((3, 4, 4), np.float32))


def test_a_forecaster_with_horizon_h_forecasts_h_weeks_after_the_history():
    history = ramp_history(weeks=6)
    assert get_forecaster("mean_4w").target_week(history) == history.target_week
    three_ahead = get_forecaster("mean_4w", horizon=3)
    assert three_ahead.target_week(history) == history.last_week + timedelta(weeks=3)
