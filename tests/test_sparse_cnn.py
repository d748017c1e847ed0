"""sparse_cnn: the contract, the shrunk offset it starts from, artifacts, and that it learns."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest

from crimejob.devworld import la_world
from crimejob.grid.gridstore import store_history
from crimejob.grid.history import GridHistory
from crimejob.models.forecasters import available, get_forecaster
from crimejob.models.forecasters.sparse_cnn import (
    CORRECTION_SCALES,
    MAP_FEATURES,
    booster_rates,
    choose_offset,
    rate_inputs,
    recent_offset,
)
from crimejob.models.metrics import active_cells, mean_scores, score_forecast
from crimejob.models.registry import get_version, load_forecaster
from crimejob.models.training import train

TINY = {"epochs": 2, "max_train_windows": 6, "finetune_epochs": 1, "finetune_windows": 3}


@pytest.fixture(scope="module")
def history():
    return la_world(seed=4, start=date(2021, 1, 4), weeks=40).history()


def last(history) -> np.ndarray:
    return np.array([len(history) - 1])


def test_it_is_a_network_by_name_and_untrained_it_forecasts_the_shrunk_offset(history):
    assert "sparse_cnn" in available()
    forecaster = get_forecaster("sparse_cnn", epochs=0, offset="recent")
    forecaster.fit(history)

    recent, _ = rate_inputs(history, last(history), horizon=1)
    predicted = forecaster.predict(history)

    assert predicted.shape == history.shape and predicted.dtype == np.float32
    assert np.all(predicted >= 0)
    np.testing.assert_allclose(predicted, recent[0], rtol=1e-5, atol=1e-7)

    # offset="blend": the mean of the recent rate and the booster's forecast, which is
    # exactly what the lgbm baseline forecasts from the same weeks.
    booster = booster_rates(history, last(history), horizon=1)
    np.testing.assert_allclose(
        booster[0], get_forecaster("lgbm").predict(history), rtol=1e-5, atol=1e-7
    )
    blend = get_forecaster("sparse_cnn", epochs=0)  # the default offset is the blend
    blend.fit(history)
    np.testing.assert_allclose(
        blend.predict(history), 0.5 * (recent[0] + booster[0]), rtol=1e-5, atol=1e-7
    )


def test_the_offset_shrinks_sparse_cells_toward_their_neighbourhood_and_keeps_the_level(history):
    offset, maps = rate_inputs(history, last(history), horizon=1)
    raw = history.crime.mean(axis=0)
    seen = history.incidents.sum(axis=0) > 0

    # The level is kept: shrinkage moves incidents between cells, it does not lose them.
    assert offset[0].sum() == pytest.approx(raw.sum(), rel=0.1)
    # A cell seen once in 40 weeks is pulled toward its neighbours, not kept at 1/40 ...
    once = seen & (history.crime.sum(axis=0) == 1)
    assert np.mean(np.abs(offset[0][once] - raw[once])) > 0.005
    # ... and cells no incident of any kind ever reached (outside LAPD) get almost nothing.
    assert offset[0][~seen].sum() < 0.02 * offset[0].sum()
    assert maps.shape == (1, *history.shape, len(MAP_FEATURES))
    np.testing.assert_array_equal(maps[0, ..., MAP_FEATURES.index("footprint")], seen)


def test_the_nibrs_switch_is_an_input_not_a_drop_in_crime(history):
    before = replace(history, nibrs_share=np.zeros(len(history), np.float32))
    after = replace(history, nibrs_share=np.r_[np.zeros(30), np.ones(10)].astype(np.float32))
    column = MAP_FEATURES.index("nibrs_shift")

    _, plain = rate_inputs(before, last(history), horizon=1)
    _, switched = rate_inputs(after, last(history), horizon=1)

    assert plain[0, 0, 0, column] == 0.0
    assert switched[0, 0, 0, column] == pytest.approx(1.0 - 10 / 40)


@pytest.mark.slow
def test_horizon_sets_the_target_week_and_the_season_it_reads(history):
    one = get_forecaster("sparse_cnn", epochs=0)
    three = get_forecaster("sparse_cnn", epochs=0, horizon=3)
    assert three.target_week(history) == history.last_week + timedelta(weeks=3)

    _, maps1 = rate_inputs(history, last(history), horizon=1)
    _, maps3 = rate_inputs(history, last(history), horizon=3)
    season = MAP_FEATURES.index("season_sin")
    assert maps1[0, 0, 0, season] != maps3[0, 0, 0, season]

    report = three.fit(history)
    one.fit(history)
    # Targets are 3 weeks after each window's end: the newest target is the last week.
    assert max(report.validation_targets) == history.last_week
    assert three.predict(history).shape == one.predict(history).shape


def _drifting(weeks: int = 200, change: int = 120, seed: int = 0) -> GridHistory:
    """Poisson counts on a small grid whose hot half and cold half swap at ``change``:
    all incidents at 6x the violent rate, so the leading indicator is informative."""
    rng = np.random.default_rng(seed)
    rows, cols = 12, 16
    rate = np.full((weeks, rows, cols), 0.05)
    rate[:change, :, : cols // 2] = 0.5
    rate[change:, :, cols // 2 :] = 0.5
    crime = rng.poisson(rate).astype(np.float32)
    incidents = crime + rng.poisson(5 * rate).astype(np.float32)
    starts = np.datetime64("2020-01-06") + 7 * np.arange(weeks)
    weather = np.zeros((weeks, rows, cols, 3), np.float32)
    return GridHistory(starts, crime, weather, incidents)


def test_in_a_drifting_world_the_offset_follows_the_recent_rate():
    history = _drifting()
    end = np.array([len(history) - 1])
    choice = choose_offset(history)
    recent, _ = rate_inputs(history, end, horizon=1)
    longrun, _ = rate_inputs(history, end, horizon=1, offset_kind="longrun")
    truth = np.full(history.shape, 0.05)
    truth[:, 8:] = 0.5

    # The held-out newest weeks say the world moved: recent weeks weigh more.
    assert choice["half_life"] > 0
    # The recent offset is far closer to today's rates than the all-history one,
    # and it keeps the recent level (the all-history rate is between the regimes).
    assert np.abs(recent[0] - truth).mean() < 0.5 * np.abs(longrun[0] - truth).mean()
    assert recent[0].sum() == pytest.approx(truth.sum(), rel=0.15)
    np.testing.assert_allclose(recent[0], recent_offset(history, end, choice)[0], rtol=1e-6)


def test_the_offset_of_week_t_reads_no_later_week(history):
    t = 30
    offset, maps = rate_inputs(history, np.array([t]), horizon=1)
    booster = booster_rates(history, np.array([t]), horizon=1)
    changed = replace(history, crime=history.crime.copy(), incidents=history.incidents.copy())
    changed.crime[t + 1 :] += 5.0
    changed.incidents[t + 1 :] += 50.0
    offset2, maps2 = rate_inputs(changed, np.array([t]), horizon=1)

    np.testing.assert_array_equal(offset, offset2)
    np.testing.assert_array_equal(maps, maps2)
    np.testing.assert_array_equal(booster, booster_rates(changed, np.array([t]), horizon=1))
    # ... while a late report in a week it did read is seen (the cache key holds it).
    changed.crime[t] += 1.0
    changed.incidents[t] += 1.0
    assert not np.array_equal(booster, booster_rates(changed, np.array([t]), horizon=1))


def test_the_ablation_switches_change_what_they_name_and_nothing_else(history):
    end = last(history)
    _, maps = rate_inputs(history, end, horizon=1)
    longrun_offset, longrun_maps = rate_inputs(history, end, horizon=1, offset_kind="longrun")
    # "longrun" is the first design's offset, which the recent design keeps as a map.
    np.testing.assert_allclose(
        np.log(longrun_offset[0] + 1e-3), maps[0, ..., MAP_FEATURES.index("log_longrun")],
        rtol=1e-5,
    )  # fmt: skip
    np.testing.assert_array_equal(maps[..., 1:], longrun_maps[..., 1:])

    plain = get_forecaster("sparse_cnn", epochs=0, offset="recent")
    without = get_forecaster("sparse_cnn", epochs=0, offset="recent", incident_channel=False)
    a, b = plain.model_inputs(history, end), without.model_inputs(history, end)
    assert a["counts"][..., 1].sum() > 0 and b["counts"][..., 1].sum() == 0
    np.testing.assert_array_equal(a["counts"][..., 0], b["counts"][..., 0])
    np.testing.assert_array_equal(a["offset"], b["offset"])
    with pytest.raises(ValueError, match="offset_kind"):
        rate_inputs(history, end, horizon=1, offset_kind="newest")
    with pytest.raises(ValueError, match="booster"):
        rate_inputs(history, end, horizon=1, offset_kind="blend")


@pytest.mark.slow
def test_the_gate_keeps_the_correction_only_where_it_pays_on_unseen_weeks(history, tmp_path):
    offset_only = get_forecaster("sparse_cnn", epochs=0)
    offset_only.fit(history)
    forecaster = get_forecaster("sparse_cnn", **TINY)
    report = forecaster.fit(history.through(history.week(len(history) - 2)))
    gate = report.details
    # The gate's windows are the newest validation targets, held out of early stopping.
    assert gate["gate_weeks"] == 3
    assert gate["gate_last_target"] == max(report.validation_targets).isoformat()
    assert gate["correction_scale"] in CORRECTION_SCALES
    assert set(gate["gate_deviance_by_scale"]) == {f"{a:g}" for a in CORRECTION_SCALES}

    # A correction that doubles every rate and more is worse than the offset on unseen
    # weeks: the gate drops it and the forecast is the offset alone.
    bias = forecaster.model.get_layer("delta_linear").bias
    bias.assign(np.ones(bias.shape, np.float32))
    report = forecaster.update(history)
    assert history.last_week.isoformat() in forecaster._rate_layer().evidence
    assert report.details["correction_scale"] == 0.0
    deviance = report.details["gate_deviance_by_scale"]
    assert deviance["0"] < deviance["1"]
    np.testing.assert_allclose(
        forecaster.predict(history), offset_only.predict(history), rtol=1e-5, atol=1e-7
    )

    # The decision and its evidence travel with the saved version.
    reloaded = get_forecaster("sparse_cnn", **TINY).load(forecaster.save(tmp_path / "g.keras"))
    assert reloaded.correction_scale == 0.0
    assert reloaded._rate_layer().evidence == forecaster._rate_layer().evidence


@pytest.mark.slow
def test_outside_the_footprint_it_forecasts_essentially_zero_after_training(history):
    forecaster = get_forecaster("sparse_cnn", **TINY)
    forecaster.fit(history)
    predicted = forecaster.predict(history)
    outside = ~(history.incidents.sum(axis=0) > 0)

    assert predicted[outside].sum() < 0.02 * predicted.sum()
    assert predicted[outside].max() < 0.02


@pytest.mark.slow
def test_fits_are_deterministic_and_a_saved_model_reloads_as_one_keras_file(history, tmp_path):
    first = get_forecaster("sparse_cnn", **TINY)
    second = get_forecaster("sparse_cnn", **TINY)
    first.fit(history)
    second.fit(history)
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    path = first.save(tmp_path / "sparse.keras")
    reloaded = get_forecaster("sparse_cnn", **TINY).load(path)
    np.testing.assert_array_equal(reloaded.predict(history), first.predict(history))

    before = [w.copy() for w in first.model.get_weights()]
    report = first.update(history)
    assert report.mode == "finetune"
    assert max(np.abs(a - b).max() for a, b in zip(before, first.model.get_weights(), strict=True))


@pytest.mark.slow
def test_the_weekly_training_registers_a_version_the_registry_loads(
    clean_db, tmp_path, monkeypatch
):
    monkeypatch.setenv("CRIMEJOB_MODEL_DIR", str(tmp_path / "models"))
    history = la_world(seed=21, start=date(2021, 1, 4), weeks=34).history()
    store_history(clean_db, history)

    result = train(clean_db, history.last_week, model_name="sparse_cnn", overrides=TINY)
    stored = get_version(clean_db, "sparse_cnn", result.version)
    loaded = load_forecaster(stored)

    assert stored.artifact_path.endswith(".keras")
    assert loaded.predict(history).shape == history.shape


@pytest.mark.slow
def test_trained_on_the_la_world_it_beats_mean_52w_and_lgbm_and_not_its_own_offset():
    """Sparse LA-like counts, unseen weeks: the network beats the long-run mean and the
    booster it blends with, and its gated correction never costs against its offset."""
    history = la_world(seed=11, start=date(2020, 1, 6), weeks=130).history()
    split = 110
    trained = get_forecaster("sparse_cnn", epochs=4, max_train_windows=52)
    # its own offset: the same windows (whose boosters the fit above has made) untrained
    offset_only = get_forecaster("sparse_cnn", epochs=0, max_train_windows=52)
    train_history = history.through(history.week(split - 1))
    report = trained.fit(train_history)
    offset_only.fit(train_history)

    def backtest(forecaster):
        rows = []
        for i in range(split, len(history)):
            past = history.through(history.week(i - 1))
            predicted = forecaster.predict(past)
            rows.append(score_forecast(predicted, history.crime[i], active_cells(past.incidents)))
        return mean_scores(rows)

    ours, offset = backtest(trained), backtest(offset_only)
    mean_52w = backtest(get_forecaster("mean_52w"))
    lgbm = backtest(get_forecaster("lgbm"))

    assert ours["poisson_deviance"] < mean_52w["poisson_deviance"]
    assert ours["poisson_deviance"] < lgbm["poisson_deviance"]
    assert ours["pei_5pct"] > mean_52w["pei_5pct"] - 0.01
    # The gate kept the correction here (measured: scale 1 after 4 epochs, 0.25 after 8) and
    # it did not cost.
    assert report.details["correction_scale"] > 0
    assert ours["poisson_deviance"] <= offset["poisson_deviance"]
