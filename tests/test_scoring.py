"""Scoring with the publication lag: a target week is scored once its data is complete, and
scored again when late reports (or a rewritten forecast) change it; never before."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crimejob.dbcopy import copy_frame
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


def _stored(engine) -> dict[str, pd.DataFrame]:
    """Every scoring table's rows but their scored_at, in key order."""
    return {
        table: pd.read_sql(f"SELECT * FROM {table} ORDER BY {keys}", engine).drop(
            columns="scored_at"
        )
        for table, keys in (
            ("ml.forecast_errors", "target_week, model_name, cell_id"),
            ("ml.forecast_scores", "target_week, model_name"),
            ("ml.forecast_scores_by_area", "target_week, model_name, area_code"),
        )
    }


def test_an_incremental_rescore_writes_what_a_full_rescore_writes(clean_db):
    """A revised week whose forecasts did not change rewrites only the error rows of the
    cells whose count moved; every table must equal a rescore from nothing."""
    world = la_world(seed=3, start=FIRST, weeks=8).history()
    store_history(clean_db, world)
    weeks = [w.astype("datetime64[D]").item() for w in world.week_starts]
    cells = np.arange(2400)
    areas = pd.DataFrame(
        {"cell_id": cells, "area_code": 1 + cells // 800, "incidents": 1, "share": 1.0}
    ).assign(area_name=lambda f: "area " + f["area_code"].astype(str))
    with clean_db.begin() as conn:
        copy_frame(conn, areas, "grid.cell_areas", list(areas.columns))
    rng = np.random.default_rng(7)
    for target in weeks[3:7]:  # weeks[3] is the previous week of weeks[4]'s stability
        write_forecasts(clean_db, target, target - timedelta(weeks=3), [
            ModelForecast("conv", "2", True, rng.gamma(0.4, 0.5, N_CELLS), 0.3),
            ModelForecast("lgbm", "baseline", False, rng.gamma(0.4, 0.5, N_CELLS), 0.1),
            ModelForecast("mean_4w", "baseline", False, np.full(N_CELLS, 0.2)),
        ])  # fmt: skip
    score_complete_weeks(clean_db, weeks[6])
    before = pd.read_sql(
        "SELECT target_week, model_name, cell_id, scored_at FROM ml.forecast_errors", clean_db
    )

    # late reports: weeks[4] and weeks[5] change in a few cells (one count falls to zero,
    # an empty cell gets its first incidents), weeks[6]'s lgbm forecast is rewritten
    revised = world.crime.copy()
    revised[4, 10, 10] += 3
    busiest = int(revised[5].argmax())
    revised[5].flat[busiest] = 0
    revised[5, 0, 0] += 2
    world.crime[:] = revised
    world.incidents[:] = np.maximum(world.incidents, revised)
    store_history(clean_db, world.through(weeks[6]))
    write_forecasts(clean_db, weeks[6], weeks[3], [
        ModelForecast("conv", "2", True, rng.gamma(0.4, 0.5, N_CELLS), 0.3),
        ModelForecast("lgbm", "baseline", False, rng.gamma(0.4, 0.5, N_CELLS), 0.1),
        ModelForecast("mean_4w", "baseline", False, np.full(N_CELLS, 0.2)),
    ])  # fmt: skip
    assert weeks_to_score(clean_db, weeks[6])[-3:] == weeks[4:7]
    score_complete_weeks(clean_db, weeks[6])
    incremental = _stored(clean_db)

    # only the moved cells of weeks[4] and weeks[5] were rewritten; all of weeks[6]
    after = pd.read_sql(
        "SELECT target_week, model_name, cell_id, scored_at FROM ml.forecast_errors", clean_db
    ).merge(before, on=["target_week", "model_name", "cell_id"], suffixes=("", "_before"))
    rewritten = after[after["scored_at"] != after["scored_at_before"]]
    moved = {(weeks[4], 10 * 75 + 10), (weeks[5], busiest), (weeks[5], 0)}
    old = rewritten[rewritten["target_week"] != weeks[6]]
    assert set(zip(old["target_week"], old["cell_id"], strict=True)) == moved
    assert len(old) == 3 * len(moved)
    assert (rewritten["target_week"] == weeks[6]).sum() == 3 * N_CELLS

    with clean_db.begin() as conn:
        for table in ("ml.forecast_errors", "ml.forecast_scores", "ml.forecast_scores_by_area"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    score_complete_weeks(clean_db, weeks[6])
    full = _stored(clean_db)
    for table, frame in full.items():
        pd.testing.assert_frame_equal(incremental[table], frame, check_exact=True, obj=table)
    # the errors carry the forecasts' predictions bit for bit (the incremental path's test)
    with clean_db.connect() as conn:
        assert conn.execute(
            sa.text(
                "SELECT count(*) FROM ml.forecast_errors AS e JOIN ml.forecasts AS f "
                "USING (target_week, model_name, cell_id) WHERE e.predicted = f.predicted "
                "AND e.error = e.predicted - e.actual"
            )
        ).scalar_one() == len(full["ml.forecast_errors"])


def test_the_first_incident_weeks_give_the_active_cells_of_every_week(clean_db):
    from crimejob.models.metrics import active_cells
    from crimejob.serving.scoring import first_incident_weeks

    world = la_world(seed=3, start=FIRST, weeks=8).history()
    world.incidents[:, :, :] = 0
    world.incidents[2, 5, 5] = world.incidents[4, 7, 7] = world.incidents[4, 5, 5] = 1
    store_history(clean_db, world)
    with clean_db.connect() as conn:
        first = first_incident_weeks(conn)
    # the models' own definition: any incident in the history up to the week
    for i, week in enumerate(world.week_starts.astype("datetime64[D]")):
        expected = active_cells(world.incidents[: i + 1]).ravel()
        np.testing.assert_array_equal(first <= week, expected)
