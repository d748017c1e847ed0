"""The rolling-origin backtest: same weeks for every model, no peeking at the future."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pytest

from crimejob.cli import main
from crimejob.devworld import la_world
from crimejob.errors import DataError
from crimejob.grid.gridstore import store_history
from crimejob.grid.history import GridHistory
from crimejob.models.backtest import run_backtest, run_backtest_from_db
from crimejob.models.forecasters import BASELINES
from crimejob.models.metrics import METRIC_KEYS

TINY = {"epochs": 1, "max_train_windows": 3, "finetune_epochs": 1, "finetune_windows": 2}


@pytest.fixture(scope="module")
def history() -> GridHistory:
    return la_world(seed=7, start=date(2021, 1, 4), weeks=24).history()


def week(history: GridHistory, i: int):
    return history.week_starts[i].astype("datetime64[D]").item()


@pytest.mark.slow
def test_every_model_is_scored_on_the_same_weeks_in_the_table_and_the_json(history):
    models = [*BASELINES, "rate_cnn"]
    result = run_backtest(history, week(history, 18), week(history, 23), models, {"rate_cnn": TINY})

    assert len(result.target_weeks) == 6
    assert len(result.rows) == 6 * len(models)
    for model in models:
        assert [r["target_week"] for r in result.rows if r["model"] == model] == result.target_weeks
    table = result.format_table()
    assert all(f"\n{model} " in table for model in models)
    assert '"finetune_epochs": 1' in table  # the reduced budget is printed, not hidden
    data = json.loads(json.dumps(result.to_json()))
    assert set(data["means"]) == set(models)
    assert set(data["means"]["mean_4w"]) == set(METRIC_KEYS)
    assert len(data["rows"]) == len(result.rows)
    first = [r for r in result.rows if r["model"] == "mean_4w"][0]
    expected_mae = np.abs(history.crime[14:18].mean(0) - history.crime[18]).mean()
    assert first["mae"] == pytest.approx(expected_mae, rel=1e-5)


@pytest.mark.slow
def test_a_forecast_for_week_w_never_reads_week_w_or_later(history):
    """Plant a huge count in one week: only forecasts for later weeks may change."""
    planted_at = 20
    crime = history.crime.copy()
    crime[planted_at, 30, 30] = 1000.0
    planted = GridHistory(history.week_starts, crime, history.weather)
    models = ["last_week", "mean_4w", "ewma", "rate_cnn"]
    # targets 17..20 come before the planted week, 21 after it: a network's fit per target
    # is most of the cost, so no more weeks than that
    start, end = week(history, 17), week(history, 21)

    clean = run_backtest(history, start, end, models, {"rate_cnn": TINY}, keep_predictions=True)
    dirty = run_backtest(planted, start, end, models, {"rate_cnn": TINY}, keep_predictions=True)

    upto = planted_at - 17 + 1  # targets 17..20 were forecast before week 20 was known
    for model in models:
        np.testing.assert_array_equal(
            clean.predictions[model][:upto], dirty.predictions[model][:upto], err_msg=model
        )
    # The planted value is visible once it is in the past: the test can tell.
    assert dirty.predictions["mean_4w"][upto, 30, 30] > clean.predictions["mean_4w"][upto, 30, 30]
    assert not np.array_equal(
        clean.predictions["rate_cnn"][upto:], dirty.predictions["rate_cnn"][upto:]
    )


def test_a_target_week_without_grid_rows_is_an_error(history):
    with pytest.raises(DataError, match="no grid rows for target week"):
        run_backtest(
            history, week(history, 20), week(history, 23) + timedelta(weeks=2), ["mean_4w"]
        )
    with pytest.raises(ValueError, match="at least one model"):
        run_backtest(history, week(history, 20), week(history, 23), [])


@pytest.mark.slow
def test_from_the_database_it_matches_the_in_memory_backtest_and_ignores_later_weeks(
    clean_db, history
):
    store_history(clean_db, history)
    # Weeks after the end of the backtest exist in the database but must not matter.
    later = la_world(seed=99, start=week(history, 23) + timedelta(weeks=1), weeks=4).history()
    later.crime[:] = 500.0
    store_history(clean_db, later)
    start, end = week(history, 16), week(history, 23)

    from_db = run_backtest_from_db(clean_db, start, end, ["mean_13w", "ewma"])
    in_memory = run_backtest(history, start, end, ["mean_13w", "ewma"])

    assert from_db.target_weeks == in_memory.target_weeks
    for a, b in zip(from_db.rows, in_memory.rows, strict=True):
        assert a["model"] == b["model"] and a["target_week"] == b["target_week"]
        assert a["poisson_deviance"] == pytest.approx(b["poisson_deviance"], rel=1e-6)
        assert a["pai_5pct"] == pytest.approx(b["pai_5pct"], rel=1e-6, nan_ok=True)


@pytest.mark.slow
def test_the_cli_prints_all_models_and_writes_json(
    clean_db, history, tmp_path, capsys, monkeypatch
):
    store_history(clean_db, history)
    monkeypatch.setenv("CRIMEJOB_BACKTEST_OVERRIDES", json.dumps({"mean_4w": {"weeks": 3}}))
    out = tmp_path / "backtest.json"
    start, end = week(history, 20), week(history, 23)

    code = main(
        [
            "backtest",
            "--start",
            str(start),
            "--end",
            str(end),
            "--models",
            "last_week,mean_4w,mean_52w",
            "--json",
            str(out),
        ]
    )

    printed = capsys.readouterr().out
    assert code == 0
    assert "4 target weeks" in printed
    for model in ("last_week", "mean_4w", "mean_52w"):
        assert f"\n{model} " in printed
    assert '"weeks": 3' in printed  # the override from the environment was used
    data = json.loads(out.read_text())
    assert len(data["rows"]) == 3 * 4 and data["target_weeks"][0] == str(start)


def test_at_horizon_h_a_model_sees_only_the_weeks_up_to_h_before_its_target(history):
    target = week(history, 20)
    result = run_backtest(history, target, target, ["last_week"], horizon=3)

    (row,) = result.rows
    # last_week at horizon 3 forecasts week 20 with the counts of week 17
    expected = np.abs(history.crime[17] - history.crime[20]).mean()
    assert row["mae"] == pytest.approx(expected, rel=1e-5)
