"""Scoring with the publication lag: a target week is scored once its data is complete, and
scored again when late reports (or a rewritten forecast) change it; never before."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crimejob.devworld import la_world
from crimejob.grid.cells import N_CELLS
from crimejob.grid.gridstore import store_history
from crimejob.serving.forecast_store import ModelForecast, write_forecasts
from crimejob.serving.scoring import score_complete_weeks, weeks_to_score

FIRST = date(2026, 6, 1)


def _setup(engine) -> list[date]:
    history = la_world(seed=3, start=FIRST, weeks=8).history()
    store_history(engine, history)
    weeks = [w.astype("datetime64[D]").item() for w in history.week_starts]
    # the runs for weeks[4] and weeks[5] forecast weeks[5] and weeks[6] at horizon 3
    for target in weeks[5:7]:
        flat = np.full(N_CELLS, 0.1)
        write_forecasts(
            engine, target, target - timedelta(weeks=3),
            [ModelForecast("mean_13w", "baseline", True, flat)],
        )  # fmt: skip
    return weeks


def _scores(engine) -> pd.DataFrame:
    return pd.read_sql(
        "SELECT target_week, model_name, actual_total, scored_at FROM ml.forecast_scores "
        "ORDER BY target_week",
        engine,
    )


def test_a_week_is_scored_only_once_it_is_complete(clean_db):
    weeks = _setup(clean_db)
    # the run for weeks[6] (lag 14): complete through weeks[4]: nothing to score yet
    assert score_complete_weeks(clean_db, weeks[4])["scored_weeks"] == []
    assert _scores(clean_db).empty
    # the run a week later: weeks[5] is complete and scored, weeks[6] still waits
    out = score_complete_weeks(clean_db, weeks[5])
    assert out["scored_weeks"] == [str(weeks[5])]
    scores = _scores(clean_db)
    assert scores["target_week"].tolist() == [weeks[5]]
    with clean_db.connect() as conn:
        actual = conn.execute(
            sa.text("SELECT violent_total FROM grid.weeks WHERE week_start = :w"), {"w": weeks[5]}
        ).scalar_one()
    assert scores["actual_total"].iloc[0] == actual


def test_scores_are_revised_when_late_reports_change_the_week(clean_db):
    weeks = _setup(clean_db)
    score_complete_weeks(clean_db, weeks[6])
    first = _scores(clean_db)
    assert first["target_week"].tolist() == weeks[5:7]
    # nothing changed: nothing is scored again
    assert weeks_to_score(clean_db, weeks[6]) == []
    assert score_complete_weeks(clean_db, weeks[6])["scored_weeks"] == []
    # late reports add three incidents to weeks[5]: it is re-aggregated, then rescored
    history = la_world(seed=3, start=FIRST, weeks=8).history()
    history.crime[5, 10, 10] += 3
    store_history(clean_db, history.through(weeks[5]))
    assert weeks_to_score(clean_db, weeks[6]) == [weeks[5]]
    score_complete_weeks(clean_db, weeks[6])
    revised = _scores(clean_db).set_index("target_week")
    assert revised.loc[weeks[5], "actual_total"] == first["actual_total"].iloc[0] + 3
    assert revised.loc[weeks[5], "scored_at"] > first["scored_at"].iloc[0]
    assert revised.loc[weeks[6], "scored_at"] == first["scored_at"].iloc[1]  # untouched


def test_a_rewritten_forecast_is_rescored(clean_db):
    weeks = _setup(clean_db)
    score_complete_weeks(clean_db, weeks[6])
    write_forecasts(
        clean_db, weeks[6], weeks[3],
        [ModelForecast("mean_13w", "baseline", True, np.full(N_CELLS, 0.2))],
    )  # fmt: skip
    assert weeks_to_score(clean_db, weeks[6]) == [weeks[6]]
