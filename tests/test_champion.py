"""Production is the champion: each week the contender with the best mean Poisson deviance
on recent weeks none of them was fitted to, a baseline or a network version, on a real
PostgreSQL; the decision and its numbers are stored and shown in bi."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob.devworld import la_world
from crimejob.grid import gridstore
from crimejob.grid.gridstore import load_history, store_history
from crimejob.grid.lag import run_weeks
from crimejob.job import steps
from crimejob.models.backtest import run_backtest
from crimejob.models.champion import (
    Contender,
    baseline_contenders,
    champion_decisions,
    choose,
    decide,
    network_contenders,
)
from crimejob.models.compare import newey_west_se, paired
from crimejob.models.forecasters import BASELINES, get_forecaster
from crimejob.models.training import NO_VALIDATION, TrainResult, gate_or_refuse, train
from crimejob.serving import forecast_store

HISTORY = la_world(seed=21, start=date(2021, 1, 4), weeks=40).history()
TINY = {"epochs": 2, "max_train_windows": 6, "finetune_epochs": 1, "finetune_windows": 3}
ROOT = Path(__file__).resolve().parents[1]


def week(i: int) -> date:
    return HISTORY.week_starts[i].astype("datetime64[D]").item()


@pytest.fixture
def db(clean_db, tmp_path, monkeypatch):
    """The LA world's grids in grid.weekly, read as stored (they have no raw records)."""
    monkeypatch.setenv("CRIMEJOB_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("CRIMEJOB_MODEL", raising=False)
    monkeypatch.delenv("CRIMEJOB_HYPERPARAMETERS", raising=False)
    store_history(clean_db, HISTORY)
    as_stored = lambda bind, w: load_history(bind, run_weeks(w).history_through)  # noqa: E731
    monkeypatch.setattr(forecast_store, "history_for_run", as_stored)
    monkeypatch.setattr(gridstore, "history_for_run", as_stored)
    return clean_db


# --- the rule, on numbers ------------------------------------------------------------------


def test_the_lowest_mean_wins_without_an_incumbent():
    losses = {"a": np.array([1.0, 1.2, 0.9]), "b": np.array([0.8, 0.9, 0.85])}
    winner, reason, _ = choose(losses, None, 1.0)
    assert winner == "b" and "lowest mean" in reason


def test_a_challenger_must_beat_the_incumbent_by_more_than_the_margin():
    incumbent = np.array([1.00, 1.10, 0.90, 1.05, 0.95, 1.00, 1.02, 0.98])
    noise = np.array([-0.03, 0.03, -0.02, 0.02, -0.03, 0.02, 0.01, -0.01])
    close = incumbent + noise  # lower on average, but well inside one SE
    clear = incumbent - 0.2
    assert paired(close, incumbent).diff < 0

    kept, reason, versus = choose({"inc": incumbent, "close": close}, "inc", 1.0)
    assert kept == "inc" and "not more than 1 SE" in reason
    assert -versus.diff <= versus.se
    switched, reason, versus = choose({"inc": incumbent, "clear": clear}, "inc", 1.0)
    assert switched == "clear" and "more than 1 SE" in reason
    assert versus.diff == pytest.approx(-0.2)
    # with no margin any lower mean wins
    assert choose({"inc": incumbent, "close": close}, "inc", 0.0)[0] == "close"


def test_the_paired_difference_and_its_se():
    rng = np.random.default_rng(0)
    x = rng.normal(size=4000)
    assert newey_west_se(x) == pytest.approx(x.std() / np.sqrt(4000), rel=0.1)
    assert np.isnan(newey_west_se(x[:1]))
    result = paired(x[:50] + 1.0, x[:50])
    assert (result.diff, result.weeks) == (pytest.approx(1.0), 50)
    assert result.se == pytest.approx(0.0, abs=1e-12)
    assert paired(x[:8], x[:8] + 1).beats(1.0) and not paired(x[:8] + 1, x[:8]).beats(1.0)


# --- the weekly forecast step -----------------------------------------------------------------


@pytest.mark.slow
def test_with_no_network_version_the_best_baseline_is_production_with_its_numbers(db):
    # The run for week 35 with the default 14-day lag: history through 33, horizon 3.
    out = steps.forecast(db, week(35))

    [decision] = champion_decisions(db)
    contenders = decision["details"]["contenders"]
    assert set(contenders) == set(BASELINES)
    means = {label: c["mean"]["poisson_deviance"] for label, c in contenders.items()}
    best = min(means, key=means.get)
    assert decision["champion_model"] == best == out.production_model
    assert decision["champion_version"] == "baseline" and decision["version"] is None
    assert decision["incumbent_model"] is None and decision["promoted"]
    window = decision["gate_weeks"]
    assert window == [week(i) for i in range(26, 34)]  # K = 8 newest complete weeks
    # the same numbers as the rolling-origin backtest of those weeks at the run's horizon
    again = run_backtest(HISTORY.through(week(33)), window[0], window[-1], [best, "mean_52w"],
                         horizon=3).means()  # fmt: skip
    assert means[best] == pytest.approx(again[best]["poisson_deviance"])
    assert means["mean_52w"] == pytest.approx(again["mean_52w"]["poisson_deviance"])
    assert decision["baseline_name"] == best and decision["diff_vs_baseline"] == 0.0
    for c in contenders.values():
        assert c["weeks"] == 8 and c["paired_vs_champion"]["diff"] >= 0

    forecasts = pd.read_sql(
        "SELECT model_name, is_production, production_reason FROM bi.forecasts "
        "WHERE target_week = %(t)s",
        db,
        params={"t": week(36)},
    )
    production = forecasts[forecasts["is_production"]]
    assert set(production["model_name"]) == {best} and len(production) == 4500
    assert (production["production_reason"] == decision["reason"]).all()
    assert best in decision["reason"] and "lowest mean poisson_deviance" in decision["reason"]
    assert forecasts.loc[~forecasts["is_production"], "production_reason"].isna().all()
    bi = pd.read_sql("SELECT * FROM bi.promotion_decisions WHERE kind = 'champion'", db)
    assert bi[["champion_model", "gate_weeks", "target_week"]].values.tolist() == [
        [best, 8, week(36)]
    ]

    steps.forecast(db, week(35))  # a rerun replaces the decision, never adds one
    assert len(champion_decisions(db)) == 1


@pytest.mark.slow
def test_next_week_the_incumbent_is_last_weeks_production(db):
    first = steps.forecast(db, week(35))
    steps.forecast(db, week(36))

    _, second = champion_decisions(db)
    assert second["incumbent_model"] == first.production_model
    assert second["incumbent_version"] == "baseline"
    means = {k: c["mean"]["poisson_deviance"] for k, c in second["details"]["contenders"].items()}
    if second["champion_model"] == first.production_model:
        assert not second["promoted"]
    else:  # a switch needs a clear win
        assert second["promoted"] and -second["diff_vs_incumbent"] > second["se_vs_incumbent"]
    assert means[second["champion_model"]] <= means[first.production_model]


@pytest.mark.slow
def test_a_network_version_is_a_contender_on_weeks_it_never_fitted(db):
    trained = train(db, week(29), overrides={**TINY, "horizon": 3})
    promote(db, trained.version)
    history = load_history(db, week(33))
    networks, excluded = network_contenders(db, horizon=3, data_through=week(33))
    [network] = networks
    assert (network.model_name, network.model_version) == ("rate_cnn", str(trained.version))
    assert not excluded
    # trained at another horizon: no contender, and says why
    assert network_contenders(db, horizon=1, data_through=week(33))[0] == []
    assert "3 week(s) ahead" in next(iter(network_contenders(db, 1, week(33))[1].values()))

    weak = [c for c in baseline_contenders(history, 3) if c.model_name == "last_week"]
    decision = decide(history, 3, [network, *weak], target_week=week(36))
    assert all(w > network.trained_through for w in decision.window)
    assert decision.champion.label == f"rate_cnn v{trained.version}"  # a trained network wins
    assert decision.vs_baseline.diff < 0 and decision.best_baseline == "last_week"

    # The weekly step: whichever contender is best is production, the network among them.
    steps.forecast(db, week(35))
    [stored] = champion_decisions(db)
    contenders = stored["details"]["contenders"]
    assert f"rate_cnn v{trained.version}" in contenders
    means = {k: c["mean"]["poisson_deviance"] for k, c in contenders.items()}
    best = min(means, key=means.get)
    champion = stored["champion_model"] + (
        "" if stored["champion_version"] == "baseline" else f" v{stored['champion_version']}"
    )
    assert champion == best
    production = pd.read_sql(
        "SELECT DISTINCT model_name, model_version FROM bi.forecasts WHERE is_production", db
    )
    assert production.values.tolist() == [[stored["champion_model"], stored["champion_version"]]]


@pytest.mark.slow
def test_a_network_fitted_to_most_of_the_window_takes_no_part():
    history = HISTORY.through(week(33))
    late = Contender("rate_cnn", "7", get_forecaster("mean_52w", horizon=3), week(31))
    decision = decide(history, 3, [late, *baseline_contenders(history, 3)], weeks=8, min_weeks=4)
    assert "rate_cnn v7" in decision.excluded and "only 2 of the newest 8" in \
        decision.excluded["rate_cnn v7"]  # fmt: skip
    assert len(decision.window) == 8


def test_a_contenders_forecast_from_the_same_past_is_computed_once():
    # Issue 13: the champion window's weeks are among the dispersion's; each contender
    # forecast them twice from the same weeks in every forecast step.
    from crimejob.serving.forecast_store import _SamePast

    model = get_forecaster("mean_4w", horizon=3)
    real, calls = model.predict, []
    model.predict = lambda past: calls.append(past.last_week) or real(past)
    memo = _SamePast(model)
    first = memo.predict(HISTORY.through(week(20)))
    first[:] = -1  # a caller that changes its forecast changes nobody else's
    again = memo.predict(HISTORY.through(week(20)))
    assert calls == [week(20)]
    np.testing.assert_array_equal(again, real(HISTORY.through(week(20))))
    memo.predict(HISTORY.through(week(21)))
    assert calls == [week(20), week(21)]
    assert (memo.name, memo.horizon, memo.min_history) == ("mean_4w", 3, model.min_history)


def test_too_short_a_history_is_a_clear_error(db):
    from crimejob.errors import DataError

    short = HISTORY.select(slice(0, 3))
    with pytest.raises(DataError, match="leave no week"):
        decide(short, 3, baseline_contenders(short, 3))


# --- training never crashes on missing validation ------------------------------------------


def test_a_candidate_without_validation_weeks_is_refused_not_crashed():
    nan = {"poisson_deviance": float("nan")}
    assert gate_or_refuse([], [], nan, None, {"mean_52w": nan})["reason"] == NO_VALIDATION
    assert gate_or_refuse([week(1)], [week(1)], nan, None, {})["reason"] == NO_VALIDATION
    result = TrainResult(
        "rate_cnn", week(3), "retrain", "no production version", version=1,
        validation={"poisson_deviance": None, "mae": None, "pai_5pct": None},
        decision_reason=NO_VALIDATION,
    )  # fmt: skip
    assert "poisson_deviance nan" in result.format() and NO_VALIDATION in result.format()


def test_no_fallback_model_setting_is_left():
    places = [ROOT / "README.md", ROOT / ".env.example", *ROOT.glob("docs/*.md"),
              *ROOT.glob("crimejob/**/*.py"), *ROOT.glob("dags/*.py")]  # fmt: skip
    for path in places:
        if path.is_file():
            assert "FALLBACK_MODEL" not in path.read_text(), path


@pytest.mark.slow
def test_the_cli_trains_at_the_runs_horizon(db, capsys, monkeypatch):
    from crimejob.cli import main
    from crimejob.models.registry import get_version

    monkeypatch.setenv("CRIMEJOB_HYPERPARAMETERS", json.dumps(TINY))
    code = main(["train", "--week", str(week(33)), "--mode", "retrain"])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"history through {week(31)}, forecasting 3 week(s) ahead" in printed
    assert f"train rate_cnn for {week(31)}: retrain" in printed
    assert get_version(db, "rate_cnn", 1).hyperparameters["horizon"] == 3


def promote(engine, version: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE ml.model_versions SET promoted = true WHERE version = :v"),
            {"v": version},
        )


# --- the production backtest ------------------------------------------------------------------


@pytest.mark.slow
def test_the_production_backtest_replays_the_policy_and_writes_its_rows(
    db, tmp_path, capsys, monkeypatch
):
    from crimejob.cli import main

    monkeypatch.setenv("CRIMEJOB_BACKTEST_OVERRIDES", json.dumps({"rate_cnn": TINY}))
    out = tmp_path / "production.json"
    code = main(["backtest", "--policy", "production", "--start", str(week(36)),
                 "--end", str(week(39)), "--json", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "production policy, week by week" in printed
    assert "paired difference to the best baseline" in printed

    data = json.loads(out.read_text())
    assert data["models"] == ["production", *BASELINES]
    assert data["hyperparameters"]["production"]["horizon"] == 3  # the run's horizon
    assert data["hyperparameters"]["production"]["network"] == "rate_cnn"
    rows = [r for r in data["rows"] if r["model"] == "production"]
    assert [r["target_week"] for r in rows] == [str(week(i)) for i in range(36, 40)]
    by_week = {(r["model"], r["target_week"]): r for r in data["rows"]}
    assert "rate_cnn v" in rows[0]["trained"]  # the first week retrains
    for row in rows:
        # later weeks fine-tune production, or, after a retrain the gate refused, train
        # nothing until the next retrain is due (issue 13)
        assert (
            row["champion"]
            and row["champion_reason"]
            and (
                "rate_cnn v" in row.get("trained", "")
                or row["gate"].startswith("not trained: the retrain for")
            )
        )
        assert row["gate"]
        if row["champion"] in BASELINES:  # production scored exactly as its champion
            own = by_week[(row["champion"], row["target_week"])]
            assert row["poisson_deviance"] == pytest.approx(own["poisson_deviance"])
    paired_summary = data["paired_vs_best_baseline"]
    assert paired_summary["best_baseline"] in BASELINES
    assert paired_summary["models"]["production"]["weeks"] == 4
