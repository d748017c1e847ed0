"""Score forecasts once their week is complete: per-cell errors and the week's metrics.

Every model that forecast the week (the production model and each baseline) is
scored on the same actuals, so ``bi.forecast_scores`` is an honest scoreboard.
Rescoring a week replaces its rows in one transaction.

A target week is scored only once its data is complete after the publication lag
(the weekly run passes its ``history_through``, see ``crimejob.grid.lag``), and scored
again whenever its counts change later (late reports re-aggregate the week:
``grid.weeks.aggregated_at`` moves past ``scored_at``) or its forecasts are
rewritten, so the scoreboard follows the best counts known.

Beside the metrics, each model's week gets its error in every LAPD division
(``ml.forecast_scores_by_area``), the disparity across divisions, the stability of
its flags against its previous week and the coverage of its 90% intervals
(:mod:`crimejob.serving.accountability`).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crimejob.dbcopy import copy_frame, read_query
from crimejob.grid.cells import N_CELLS
from crimejob.models.metrics import METRIC_KEYS, score_forecast
from crimejob.serving.accountability import (
    AreaCells,
    area_cells,
    disparity,
    load_areas,
    scores_by_area,
    week_extras,
)

# Every forecast of the weeks scored and of the weeks before them (the stability's
# previous forecasts), read once per batch of weeks through COPY: the floats as stored
# (PostgreSQL writes the shortest exact text, pandas' reader parses it back exactly),
# NULL intervals as NaN, booleans as 0/1.
_FORECASTS = (
    "SELECT target_week, model_name, model_version, is_production::int AS is_production, "
    "history_through, cell_id, predicted, predicted_low, predicted_high, dispersion "
    "FROM ml.forecasts WHERE target_week = ANY(%(weeks)s::date[]) "
    "ORDER BY target_week, model_name, cell_id"
)
_FORECAST_DTYPES = {
    "target_week": str,
    "model_name": str,
    "model_version": str,
    "is_production": np.int64,
    "history_through": str,
    "cell_id": np.int64,
    "predicted": np.float64,
    "predicted_low": np.float64,
    "predicted_high": np.float64,
    "dispersion": np.float64,
}
_ACTUALS = (
    "SELECT week_start, cell_id, violent_count FROM grid.weekly "
    "WHERE week_start = ANY(%(weeks)s::date[]) ORDER BY week_start, cell_id"
)
# Each cell's first week with an incident: a cell is active as of ``through`` when that
# week is on or before it (counts are never negative, so this is "the sum of its counts
# up to ``through`` is positive"), one grouping for every ``through`` of a score step.
_FIRST_INCIDENT = sa.text(
    "SELECT cell_id, min(week_start) AS first_week FROM grid.weekly "
    "WHERE incident_count > 0 GROUP BY cell_id"
)
# The stored errors of the weeks scored, to find those a rescore has to rewrite.
_ERRORS = (
    "SELECT target_week, model_name, cell_id, model_version, "
    "is_production::int AS is_production, predicted, actual "
    "FROM ml.forecast_errors WHERE target_week = ANY(%(weeks)s::date[]) "
    "ORDER BY target_week, model_name, cell_id"
)
# The error rows whose count moved, keyed by their whole primary key (a join to the
# week's grid rows let a planner with stale statistics scan the week's 40,500 error
# rows once per cell); the error subtracted in double precision, as numpy does.
_UPDATE_ACTUALS = sa.text(
    """
    UPDATE ml.forecast_errors AS e
    SET actual = c.actual, error = e.predicted - c.actual, scored_at = now()
    FROM unnest(CAST(:models AS text[]), CAST(:cells AS integer[]), CAST(:actuals AS integer[]))
         AS c (model_name, cell_id, actual)
    WHERE e.target_week = :week AND e.model_name = c.model_name AND e.cell_id = c.cell_id
    """
)
SCORE_COLUMNS = tuple(k for k in METRIC_KEYS if k != "actual_total")
#: Target weeks scored in one transaction (their forecasts are read at once).
BATCH_WEEKS = 8

# Target weeks up to :through with a forecast, aggregated, and never scored or scored
# before their counts (aggregated_at) or forecasts (created_at) last changed.
_TO_SCORE = sa.text(
    """
    SELECT f.target_week
    FROM (SELECT target_week, max(created_at) AS created_at FROM ml.forecasts
          WHERE target_week <= :through GROUP BY target_week) AS f
    JOIN grid.weeks AS g ON g.week_start = f.target_week
    LEFT JOIN (SELECT target_week, min(scored_at) AS scored_at FROM ml.forecast_scores
               GROUP BY target_week) AS s USING (target_week)
    WHERE s.scored_at IS NULL OR g.aggregated_at > s.scored_at OR f.created_at > s.scored_at
    ORDER BY f.target_week
    """
)


def first_incident_weeks(conn) -> np.ndarray:
    """Each cell's first week with an incident (``datetime64[D]``; NaT: none yet), so
    that ``first <= through`` is the active-cell mask of
    :func:`crimejob.models.metrics.active_cells` for every ``through`` at once."""
    first = np.full(N_CELLS, np.datetime64("NaT"), "datetime64[D]")
    rows = conn.execute(_FIRST_INCIDENT).all()
    if rows:
        ids = np.array([r.cell_id for r in rows], np.int64)
        first[ids] = np.array([r.first_week for r in rows], "datetime64[D]")
    return first


def _dates(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column).dt.date


def _read_forecasts(conn, weeks: list[date]) -> pd.DataFrame:
    frame = read_query(
        conn,
        _FORECASTS,
        {"weeks": weeks},
        dtype=_FORECAST_DTYPES,
        keep_default_na=False,
        na_values={"predicted_low": [""], "predicted_high": [""], "dispersion": [""]},
    )
    frame["target_week"] = _dates(frame["target_week"])
    frame["history_through"] = _dates(frame["history_through"])
    frame["is_production"] = frame["is_production"].astype(bool)
    return frame


def _read_actuals(conn, weeks: list[date]) -> dict[date, np.ndarray]:
    rows = read_query(conn, _ACTUALS, {"weeks": weeks}, dtype={"week_start": str})
    rows["week_start"] = _dates(rows["week_start"])
    return {
        week: group["violent_count"].to_numpy()
        for week, group in rows.groupby("week_start", sort=False)
        if len(group) == N_CELLS
    }


def _read_errors(conn, weeks: list[date]) -> pd.DataFrame:
    frame = read_query(
        conn,
        _ERRORS,
        {"weeks": weeks},
        dtype={"target_week": str, "model_name": str, "model_version": str},
        keep_default_na=False,
    )
    frame["target_week"] = _dates(frame["target_week"])
    frame["is_production"] = frame["is_production"].astype(bool)
    return frame


def _same_forecasts(stored: pd.DataFrame, forecasts: pd.DataFrame) -> bool:
    """Whether ``stored`` (a week's error rows) are one per row of ``forecasts`` (the
    week's forecasts, in the same key order) with the same version, production flag and
    prediction: then only their actual counts can be out of date."""
    return len(stored) == len(forecasts) and all(
        np.array_equal(stored[column].to_numpy(), forecasts[column].to_numpy())
        for column in ("model_name", "cell_id", "model_version", "is_production", "predicted")
    )


def score_target_week(engine: Engine, week: date) -> dict:
    """Write errors and scores of every forecast for ``week``; a no-op when there is none."""
    with engine.begin() as conn:
        return _score_weeks(conn, [week])[0]


def _score_weeks(conn, weeks: list[date]) -> list[dict]:
    """Score ``weeks`` in the transaction ``conn``: their forecasts, the forecasts of the
    weeks before them, their actuals and the active cells read once for all of them."""
    before = [w - timedelta(weeks=1) for w in weeks]
    forecasts = _read_forecasts(conn, sorted(set(weeks) | set(before)))
    by_week = dict(tuple(forecasts.groupby("target_week", sort=False)))
    actuals = _read_actuals(conn, weeks)
    first_incident = first_incident_weeks(conn)
    areas = area_cells(load_areas(conn))
    stored = dict(tuple(_read_errors(conn, weeks).groupby("target_week", sort=False)))
    return [
        _score_week(conn, week, by_week, actuals.get(week), first_incident, areas, stored)
        for week in weeks
    ]


def _score_week(
    conn,
    week: date,
    by_week: dict[date, pd.DataFrame],
    actual: np.ndarray | None,
    first_incident: np.ndarray,
    areas: AreaCells,
    stored_errors: dict[date, pd.DataFrame],
) -> dict:
    forecasts = by_week.get(week)
    if forecasts is None or forecasts.empty:
        return {"week": str(week), "scored_models": [], "note": "no forecast for this week"}
    if actual is None:
        return {"week": str(week), "scored_models": [], "note": "week not aggregated yet"}
    previous_week = by_week.get(week - timedelta(weeks=1))
    previous = (
        {}
        if previous_week is None
        else {
            name: rows["predicted"].to_numpy(np.float64)
            for name, rows in previous_week.groupby("model_name", sort=False)
            if len(rows) == N_CELLS
        }
    )
    errors, scores, area_frames = [], [], []
    masks: dict[date, np.ndarray] = {}  # models forecast from the same history_through
    for model_name, rows in forecasts.groupby("model_name", sort=True):
        predicted = rows["predicted"].to_numpy()
        through = rows["history_through"].iloc[0]
        if through not in masks:
            masks[through] = first_incident <= np.datetime64(through, "D")
        active = masks[through].copy()
        metrics = score_forecast(predicted, actual, active)
        first = rows.iloc[0]
        has_interval = rows["predicted_low"].notna().all() and pd.notna(first.dispersion)
        low = rows["predicted_low"].to_numpy(np.float64) if has_interval else None
        high = rows["predicted_high"].to_numpy(np.float64) if has_interval else None
        extras = week_extras(
            predicted,
            actual,
            active,
            previous.get(model_name),
            float(first.dispersion) if has_interval else None,
            low,
            high,
        )
        by_area = scores_by_area(predicted, actual, areas, low, high)
        area_frames.append(
            by_area.assign(
                target_week=week,
                model_name=model_name,
                model_version=first.model_version,
                is_production=bool(first.is_production),
            )
        )
        errors.append(
            pd.DataFrame(
                {
                    "target_week": week,
                    "model_name": model_name,
                    "cell_id": rows["cell_id"].to_numpy(),
                    "model_version": first.model_version,
                    "is_production": bool(first.is_production),
                    "predicted": predicted,
                    "actual": actual,
                    "error": predicted - actual,
                }
            )
        )
        scores.append(
            {
                "target_week": week,
                "model_name": model_name,
                "model_version": first.model_version,
                "is_production": bool(first.is_production),
                **{k: metrics.get(k) for k in SCORE_COLUMNS},
                "actual_total": int(actual.sum()),
                "active_cells": int(active.sum()),
                **extras,
                **disparity(by_area),
            }
        )
    stored = stored_errors.get(week)
    if stored is not None and _same_forecasts(stored, forecasts):
        # the stored errors are these forecasts' errors: rewrite the cells whose count moved
        expected = actual[stored["cell_id"].to_numpy()]
        moved = stored["actual"].to_numpy() != expected
        if moved.any():
            conn.execute(
                _UPDATE_ACTUALS,
                {
                    "week": week,
                    "models": stored["model_name"].to_numpy()[moved].tolist(),
                    "cells": stored["cell_id"].to_numpy()[moved].tolist(),
                    "actuals": expected[moved].tolist(),
                },
            )
    else:
        conn.execute(sa.text("DELETE FROM ml.forecast_errors WHERE target_week = :w"), {"w": week})
        error_frame = pd.concat(errors, ignore_index=True)
        copy_frame(conn, error_frame, "ml.forecast_errors", list(error_frame.columns))
    conn.execute(sa.text("DELETE FROM ml.forecast_scores WHERE target_week = :w"), {"w": week})
    conn.execute(
        sa.text("DELETE FROM ml.forecast_scores_by_area WHERE target_week = :w"), {"w": week}
    )
    score_frame = pd.DataFrame(scores)
    copy_frame(conn, score_frame, "ml.forecast_scores", list(score_frame.columns))
    area_frame = pd.concat(area_frames, ignore_index=True)
    if not area_frame.empty:
        copy_frame(conn, area_frame, "ml.forecast_scores_by_area", list(area_frame.columns))
    production = [s for s in scores if s["is_production"]]
    return {
        "week": str(week),
        "scored_models": [s["model_name"] for s in scores],
        "actual_total": int(actual.sum()),
        "production": (
            {k: production[0][k] for k in ("model_name", "mae", "poisson_deviance", "pai_5pct")}
            if production
            else None
        ),
    }


def weeks_to_score(engine: Engine, through: date) -> list[date]:
    """Complete target weeks (up to ``through``) whose scores are missing or out of date."""
    with engine.connect() as conn:
        return [r.target_week for r in conn.execute(_TO_SCORE, {"through": through})]


def score_complete_weeks(engine: Engine, through: date) -> dict:
    """Score (or rescore) every target week up to ``through`` that needs it.

    Returns the weeks scored and, like :func:`score_target_week`, the newest one's
    models and production scores.
    """
    weeks = weeks_to_score(engine, through)
    results = []
    for first in range(0, len(weeks), BATCH_WEEKS):
        with engine.begin() as conn:
            results += _score_weeks(conn, weeks[first : first + BATCH_WEEKS])
    scored = [r for r in results if r["scored_models"]]
    out = {
        "history_through": str(through),
        "scored_weeks": [r["week"] for r in scored],
        "scored_models": scored[-1]["scored_models"] if scored else [],
        "production": scored[-1]["production"] if scored else None,
    }
    if scored:
        out["week"] = scored[-1]["week"]
        out["actual_total"] = scored[-1]["actual_total"]
    else:
        out["note"] = f"no complete target week (through {through}) left to score"
    return out
