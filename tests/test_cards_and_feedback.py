"""Model cards, the bi views that say which model and why, and the feedback-loop check."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob.cli import main
from crimejob.devworld import la_world
from crimejob.grid.cells import N_CELLS
from crimejob.grid.gridstore import store_history
from crimejob.grid.history import GridHistory
from crimejob.models.forecasters import get_forecaster
from crimejob.models.forecasters.baselines import LastWeek
from crimejob.models.forecasters.gbm import CACHE_STATS, EPOCH
from crimejob.runs import finish_run, start_run
from crimejob.serving.feedback import World, format_check, run_check, simulate
from crimejob.serving.forecast_store import ModelForecast, write_forecasts
from crimejob.serving.scoring import score_target_week

WEEK = date(2024, 1, 1)


def _small_history(rate: np.ndarray, weeks: int = 30, seed: int = 0) -> GridHistory:
    rng = np.random.default_rng(seed)
    crime = rng.poisson(rate, (weeks, *rate.shape)).astype(np.float32)
    starts = np.datetime64(date(2023, 1, 2), "D") + 7 * np.arange(weeks)
    return GridHistory(starts, crime, np.zeros((weeks, *rate.shape, 3), np.float32))


def test_patrols_that_feed_the_model_make_its_flags_stick():
    # 20 x 20 cells; the hotspots slide from the left half to the right half
    start = np.full((20, 20), 0.05)
    start[:, :10] += np.linspace(0.0, 2.0, 10)
    end = np.fliplr(start)
    world = World(start, end, report_rate=0.5, discovery=0.9)
    history = _small_history(start * 0.5)
    model = get_forecaster("mean_13w")

    fed = [simulate(model, history, world, "all_records", weeks=30, seed=s) for s in range(3)]
    clean = [simulate(model, history, world, "public_only", weeks=30, seed=s) for s in range(3)]

    stuck_fed = np.mean([r.summary()["stuck"] for r in fed])
    stuck_clean = np.mean([r.summary()["stuck"] for r in clean])
    assert stuck_fed > stuck_clean
    # the model is given more per incident where it flagged, only when police records feed it
    assert fed[0].summary()["recorded_lift"] > 1.3
    assert clean[0].summary()["recorded_lift"] == pytest.approx(1.0, abs=0.15)


def test_the_window_slides_at_the_anchors_so_lgbm_refits_only_there():
    # the records' window drops old weeks only on lgbm's 13-week calendar, so the weeks
    # through each anchor stay the same until the next: one fit per anchor, as weekly
    rate = np.random.default_rng(3).gamma(0.5, 0.5, (20, 20))
    history = _small_history(rate, weeks=30)
    world = World(rate * 2, np.fliplr(rate * 2))
    seen: list[tuple] = []

    class Recording(LastWeek):
        def _predict(self, records: GridHistory) -> np.ndarray:
            seen.append((records.week_starts[0], len(records)))
            return super()._predict(records)

    simulate(Recording(), history, world, "all_records", weeks=30, keep_weeks=24)
    lengths = [n for _, n in seen]
    assert max(lengths) > 24 and min(lengths) >= 24
    assert max(lengths) <= 24 + 12
    for (before, _), (start, n) in zip(seen, seen[1:], strict=False):  # moves on the calendar
        if start != before:
            last = (start + np.timedelta64(7 * (n - 1), "D")).astype(object)
            assert (last - EPOCH).days // 7 % 13 == 0

    lgbm = get_forecaster("lgbm")
    fits = CACHE_STATS["fits"]
    simulate(lgbm, history, world, "all_records", weeks=30, keep_weeks=24)
    forecast_from = [history.last_week + timedelta(weeks=i) for i in range(30)]
    anchors = {w - timedelta(weeks=(w - EPOCH).days // 7 % 13) for w in forecast_from}
    assert CACHE_STATS["fits"] - fits == len(anchors)


def test_the_check_reports_every_model_under_both_designs():
    rate = np.random.default_rng(2).gamma(0.5, 0.5, (20, 20))
    rows = run_check({"mean_4w": get_forecaster("mean_4w")}, _small_history(rate), weeks=6)

    assert [(r["model"], r["design"]) for r in rows] == [
        ("mean_4w", "all_records"),
        ("mean_4w", "public_only"),
    ]
    assert "release wk" in format_check(rows)


@pytest.fixture
def production_weeks(clean_db):
    """Ten weeks of grid rows, two scored weeks with a production baseline and others."""
    history = la_world(seed=4, start=WEEK - timedelta(weeks=9), weeks=10).history()
    store_history(clean_db, history)
    with clean_db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO grid.cell_areas (cell_id, area_code, area_name, incidents, share) "
                "SELECT cell_id, 1 + (cell_id % 75) / 38, "
                "CASE WHEN cell_id % 75 < 38 THEN 'Central' ELSE 'Rampart' END, 1, 1.0 "
                "FROM grid.cells"
            )
        )
    for target in (WEEK - timedelta(weeks=1), WEEK):
        index = history.index_of(target)
        past = history.select(slice(0, index))
        forecasts = []
        for name in ("mean_4w", "last_week", "ewma"):
            model = get_forecaster(name)
            forecasts.append(
                ModelForecast(name, "baseline", name == "mean_4w",
                              model.predict(past).ravel().astype(float), 0.2)
            )  # fmt: skip
        write_forecasts(clean_db, target, past.last_week, forecasts)
        score_target_week(clean_db, target)
        run = start_run(clean_db, "weekly", target - timedelta(weeks=1))
        finish_run(clean_db, run, "succeeded")
    return clean_db


def test_crimejob_card_writes_the_production_models_card(production_weeks, tmp_path, capsys):
    out = tmp_path / "card.md"

    assert main(["card", "--out", str(out), "--store"]) == 0

    card = out.read_text()
    assert card.startswith("# Model card: mean_4w (baseline)")
    for heading in ("Intended use", "Out of scope", "Data and known breaks",
                    "Metrics against every baseline", "Errors by division", "Calibration",
                    "Stability", "Feedback loop"):  # fmt: skip
        assert f"## {heading}" in card
    assert "NIBRS" in card and "publication lag" in card
    assert "| last_week |" in card and "| ewma |" in card  # every baseline, paired
    assert "| Central |" in card and "| Rampart |" in card
    assert "all_records" in card and "public_only" in card
    capsys.readouterr()
    assert main(["card"]) == 0  # without --out: printed
    assert capsys.readouterr().out.startswith("# Model card: mean_4w (baseline)")
    stored = pd.read_sql("SELECT * FROM bi.model_cards", production_weeks)
    assert stored["model_name"].tolist() == ["mean_4w"] and stored["card"][0] == card


@pytest.mark.slow
def test_a_change_of_production_stores_the_new_models_card(production_weeks, tmp_path, monkeypatch):
    from crimejob.serving.cards import refresh_production_card

    monkeypatch.setenv("CRIMEJOB_MODEL_DIR", str(tmp_path / "models"))
    engine = production_weeks

    first = refresh_production_card(engine, WEEK)
    again = refresh_production_card(engine, WEEK)
    # ewma becomes production for the week after: a promotion
    ahead = WEEK + timedelta(weeks=1)
    predicted = np.full(N_CELLS, 0.4)
    write_forecasts(engine, ahead, WEEK, [
        ModelForecast("ewma", "baseline", True, predicted, 0.1),
        ModelForecast("mean_4w", "baseline", False, predicted, 0.1),
    ])  # fmt: skip
    promoted = refresh_production_card(engine, ahead)

    assert first["card"].endswith("models/baselines/mean_4w.card.md")
    assert again == {"card": "unchanged"}
    assert promoted["card"].endswith("models/baselines/ewma.card.md")
    cards = pd.read_sql("SELECT * FROM bi.model_cards ORDER BY model_name", engine)
    assert cards["model_name"].tolist() == ["ewma", "mean_4w"]
    assert cards["card"][0].startswith("# Model card: ewma (baseline)")
    assert (tmp_path / "models" / "baselines" / "ewma.card.md").read_text() == cards["card"][0]


def test_week_status_says_which_weeks_are_complete(production_weeks):
    status = pd.read_sql(
        "SELECT * FROM bi.week_status WHERE last_run_id IS NOT NULL ORDER BY week_start",
        production_weeks,
    )

    assert status["complete"].tolist() == [True, True]
    assert status["forecast_model"].tolist() == ["mean_4w", "mean_4w"]
    # runs for the two weeks before WEEK forecast WEEK - 1 and WEEK, which were scored:
    # the first run's own week was never forecast, so never scored
    assert status["scored_at"].notna().tolist() == [False, True]
    runs = pd.read_sql("SELECT * FROM bi.runs", production_weeks)
    assert (runs["status"] == "succeeded").all() and (runs["seconds"] >= 0).all()


@pytest.mark.slow
def test_model_version_and_decision_views_carry_the_numbers(clean_db, tmp_path, monkeypatch):
    from crimejob.models.training import train

    monkeypatch.setenv("CRIMEJOB_MODEL_DIR", str(tmp_path / "models"))
    history = la_world(seed=9, start=date(2021, 1, 4), weeks=40).history()
    store_history(clean_db, history)
    result = train(
        clean_db,
        history.last_week,
        model_name="rate_cnn",
        overrides={"epochs": 1, "max_train_windows": 8},
    )

    versions = pd.read_sql("SELECT * FROM bi.model_versions", clean_db)
    decisions = pd.read_sql("SELECT * FROM bi.promotion_decisions", clean_db)
    assert versions["version"].tolist() == [result.version]
    assert versions["validation_poisson_deviance"].notna().all()
    assert decisions["candidate_score"].notna().all() and decisions["baseline_name"].notna().all()
    assert decisions["margin_vs_baseline"][0] == pytest.approx(
        decisions["candidate_score"][0] - decisions["baseline_score"][0]
    )
    from crimejob.serving.cards import build_card

    card = build_card(clean_db, "rate_cnn", str(result.version)).text
    assert f"# Model card: rate_cnn v{result.version}" in card
    assert "**Why it is production.**" in card and decisions["reason"][0] in card
    assert "| mean_52w |" in card  # every contender's numbers on the weeks compared


@pytest.mark.parametrize(
    "view", ["bi.model_versions", "bi.promotion_decisions", "bi.runs", "bi.week_status",
             "bi.model_cards"],
)  # fmt: skip
def test_the_bi_role_reads_the_new_views(database_url, clean_db, view):
    url = sa.engine.make_url(database_url).set(username="crimejob_bi", password=None)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"SELECT * FROM {view} LIMIT 1")).all()
    finally:
        engine.dispose()


def test_zero_forecasts_stay_out_of_the_capture_of_a_stored_week(clean_db):
    predicted = np.zeros(N_CELLS)
    predicted[:10] = 1.0
    write_forecasts(clean_db, WEEK, WEEK - timedelta(weeks=1),
                    [ModelForecast("m", "1", True, predicted, 0.0)])  # fmt: skip

    flags = pd.read_sql("SELECT sum(flag_5pct) AS s, count(*) FILTER (WHERE flag_5pct > 0) AS n "
                        "FROM ml.forecasts", clean_db)  # fmt: skip

    assert flags["n"][0] == 10 and flags["s"][0] == pytest.approx(10)


@pytest.mark.slow
def test_a_backfills_card_takes_a_recent_feedback_check_from_the_stored_card(
    production_weeks, tmp_path, monkeypatch
):
    from crimejob.serving.cards import (
        FEEDBACK_REUSE_WEEKS,
        build_card,
        refresh_backfill_cards,
        refresh_production_card,
    )

    monkeypatch.setenv("CRIMEJOB_MODEL_DIR", str(tmp_path / "models"))
    engine = production_weeks
    refresh_production_card(engine, WEEK)  # mean_4w's card, its check run on the counts now
    first = pd.read_sql("SELECT * FROM ml.model_cards", engine).iloc[0]
    assert first["feedback_through"] == WEEK and "through " + str(WEEK) in first["card"]

    # a backfill: production goes to ewma and back to mean_4w; a week more of counts
    history = la_world(seed=4, start=WEEK - timedelta(weeks=9), weeks=11).history()
    store_history(engine, history)
    ahead, back = WEEK + timedelta(weeks=1), WEEK + timedelta(weeks=2)
    for target, production in ((ahead, "ewma"), (back, "mean_4w")):
        write_forecasts(engine, target, target - timedelta(weeks=1), [
            ModelForecast(name, "baseline", name == production, np.full(N_CELLS, 0.4), 0.1)
            for name in ("ewma", "mean_4w")
        ])  # fmt: skip
    refresh_backfill_cards(engine, [ahead, back])

    card = pd.read_sql("SELECT * FROM ml.model_cards", engine).iloc[0]
    assert card["model_name"] == "mean_4w" and card["generated_at"] > first["generated_at"]
    # the check is the stored one, said to be; every other section is built now
    assert card["feedback"] == first["feedback"] and card["feedback_through"] == WEEK
    assert card["feedback"] in card["card"] and "previous card" in card["card"]
    fresh = build_card(engine, "mean_4w", "baseline")
    assert fresh.feedback.through == ahead
    strip = lambda text: text.split("## Feedback loop")[0].split("\n", 3)[3]  # noqa: E731
    assert strip(card["card"]) == strip(fresh.text)  # all but the "Generated ..." line

    # a check calibrated more than FEEDBACK_REUSE_WEEKS before the newest counts is rerun
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE ml.model_cards SET feedback_through = :t"),
            {"t": ahead - timedelta(weeks=FEEDBACK_REUSE_WEEKS + 1)},
        )
    refresh_backfill_cards(engine, [ahead, back])
    rerun = pd.read_sql("SELECT * FROM ml.model_cards", engine).iloc[0]
    assert rerun["feedback_through"] == ahead and "previous card" not in rerun["card"]
