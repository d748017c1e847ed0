"""Division and citywide volume: series from the grid, a blind recursive LightGBM, baselines."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from crimejob.dbcopy import copy_frame
from crimejob.devworld import la_world
from crimejob.grid.history import GridHistory
from crimejob.serving.divisions import write_volume_forecasts
from crimejob.serving.volume import (
    CITYWIDE,
    SEASON,
    VolumeLGBM,
    VolumeSeries,
    backtest_volume,
    calendar_after,
    future_calendar,
    interval_coverage,
    paired_table,
    poisson_deviance,
    seasonal_naive,
    volume_series,
)


def seasonal_series(weeks: int = 200, seed: int = 0) -> VolumeSeries:
    """Three areas, Poisson around a strong annual cycle and a holiday bump."""
    rng = np.random.default_rng(seed)
    t = np.arange(weeks)
    starts = np.datetime64("2015-01-05") + 7 * t
    cycle = 1 + 0.6 * np.sin(2 * np.pi * t / SEASON)
    holiday = (t % 13 == 0).astype(float)
    levels = np.array([20.0, 40.0, 80.0])
    mean = levels[None, :] * cycle[:, None] * (1 + 0.3 * holiday[:, None])
    counts = rng.poisson(mean).astype(float)
    return VolumeSeries(
        starts, ["A", "B", CITYWIDE], counts, np.full((weeks, 3), 60.0),
        np.zeros((weeks, 3)), holiday,
    )  # fmt: skip


def test_area_series_are_the_sums_of_their_cells_and_citywide_of_all():
    rng = np.random.default_rng(1)
    crime = rng.poisson(0.3, (10, 4, 5)).astype(np.float32)
    weather = np.zeros((10, 4, 5, 3), np.float32)
    weather[3, :, :, 2] = 1
    history = GridHistory(np.datetime64("2020-01-06") + 7 * np.arange(10), crime, weather)
    labels = np.zeros((4, 5), int)
    labels[0] = 1
    labels[1:3] = 2  # row 3 belongs to no division
    series = volume_series(history, labels, {1: "North", 2: "South"})
    assert series.names == ["North", "South", CITYWIDE]
    assert np.allclose(series.counts[:, 0], crime[:, 0].sum(axis=1))
    assert np.allclose(series.counts[:, 1], crime[:, 1:3].sum(axis=(1, 2)))
    assert np.allclose(series.counts[:, 2], crime.sum(axis=(1, 2)))
    assert series.holiday.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_the_recursive_forecast_is_blind_to_every_week_after_its_origin():
    series = seasonal_series()
    origin = 150
    model = VolumeLGBM(num_boost_round=30).fit(series.through(origin))
    first = model.predict(series.through(origin), 4, calendar_after(series, origin))
    changed = VolumeSeries(
        series.week_starts, series.names, series.counts.copy(), series.temp, series.rain,
        series.holiday,
    )  # fmt: skip
    changed.counts[origin + 1 :] *= 5
    again = model.predict(changed.through(origin), 4, calendar_after(changed, origin))
    assert first.shape == (4, 3)
    assert np.array_equal(first, again)


def test_seasonal_naive_repeats_the_week_a_year_before():
    series = seasonal_series()
    got = seasonal_naive(series, 120, 4)
    assert np.array_equal(got, series.counts[121 - SEASON : 125 - SEASON])


@pytest.mark.slow
def test_lightgbm_learns_a_seasonal_cycle_the_recent_mean_cannot_follow():
    series = seasonal_series(seed=3)
    result = backtest_volume(series, list(range(180, 195)), horizons=4)
    deviance = {m: result.losses(m, "deviance").mean() for m in result.forecasts}
    assert deviance["volume_lgbm"] < 0.7 * deviance["mean_13w"]
    assert deviance["volume_lgbm"] < deviance["seasonal_naive"]
    table = paired_table(result, "volume_lgbm", ["seasonal_naive", "mean_13w"], "deviance")
    assert len(table) == 3 * 4
    assert (table["diff"] < 0).mean() > 0.7


def test_paired_differences_are_per_origin_against_the_best_baseline():
    series = seasonal_series()
    result = backtest_volume(series, list(range(170, 180)), horizons=2)
    table = paired_table(result, "volume_lgbm", ["seasonal_naive", "mean_13w"], "mae")
    row = table[(table["area"] == "B") & (table["horizon"] == 2)].iloc[0]
    best = min(
        ("seasonal_naive", "mean_13w"), key=lambda m: result.losses(m, "mae")[:, 1, 1].mean()
    )
    diff = result.losses("volume_lgbm", "mae")[:, 1, 1] - result.losses(best, "mae")[:, 1, 1]
    assert row["best_baseline"] == best
    assert row["diff"] == pytest.approx(diff.mean())
    assert row["se"] > 0


def test_origins_without_a_year_of_training_are_refused():
    with pytest.raises(ValueError, match="a year of training"):
        backtest_volume(seasonal_series(), [60], horizons=4)


def test_poisson_deviance_of_a_zero_week_is_twice_the_forecast():
    assert poisson_deviance(np.array([2.5]), np.array([0]))[0] == pytest.approx(5.0)
    assert poisson_deviance(np.array([3.0]), np.array([3]))[0] == pytest.approx(0.0)


def test_the_calendar_ahead_knows_the_holidays_of_future_weeks():
    calendar = future_calendar(np.datetime64("2026-11-16"), 3)
    assert [calendar.holiday(k) for k in (1, 2, 3)] == [1.0, 0.0, 0.0]  # Thanksgiving 11-26


def test_the_weekly_run_writes_a_volume_forecast_for_every_division_and_the_city(clean_db):
    world = la_world(seed=2, start=date(2017, 1, 2), weeks=130)
    history = world.history()
    names = dict(zip(world.params["annual"]["area_code"], world.params["annual"]["area_name"],
                     strict=True))  # fmt: skip
    flat = world.cell_area.ravel()
    areas = pd.DataFrame({"cell_id": np.flatnonzero(flat), "area_code": flat[flat > 0]})
    areas["area_name"] = areas["area_code"].map(names)
    areas["incidents"], areas["share"] = 1, 1.0
    with clean_db.begin() as conn:
        copy_frame(conn, areas, "grid.cell_areas", list(areas.columns))
    target = history.last_week + timedelta(weeks=3)
    assert write_volume_forecasts(clean_db, history, target) == 22
    rows = pd.read_sql("SELECT * FROM bi.division_forecasts", clean_db).set_index("area_name")
    assert set(rows.index) == {*names.values(), CITYWIDE}
    assert (rows["method"] == "volume_model").all() and (rows["horizon_weeks"] == 3).all()
    recent = history.crime[-13:].sum(axis=(1, 2)).mean()
    assert 0.7 * recent < rows.loc[CITYWIDE, "predicted"] < 1.3 * recent
    assert (rows["predicted_low"] <= rows["predicted"]).all()
    assert (rows["predicted"] <= rows["predicted_high"]).all()
    # a rerun replaces the rows; too short a history writes none
    assert write_volume_forecasts(clean_db, history, target) == 22
    assert write_volume_forecasts(clean_db, history.select(slice(0, 60)), target) == 0
    assert pd.read_sql("SELECT count(*) AS n FROM ml.division_forecasts", clean_db)["n"][0] == 22


@pytest.mark.slow
def test_interval_coverage_counts_the_origins_inside_the_ninety_percent_interval():
    series = seasonal_series()
    result = backtest_volume(series, list(range(170, 190)), horizons=2)
    low = result.actual - 1
    high = result.actual + 1
    high[:5, 0, 0] = result.actual[:5, 0, 0] - 0.5  # five of twenty origins miss
    got = interval_coverage(result, "volume_lgbm", low, high)
    assert got.shape == (2, 3)
    assert got[0, 0] == 0.75 and got[1, 0] == 1.0
    nb = interval_coverage(result, "volume_lgbm")  # its own NB interval
    assert ((nb >= 0.5) & (nb <= 1.0)).all()
    assert result.dispersions["volume_lgbm"].shape == (20, 2)
