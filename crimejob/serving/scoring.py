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

from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crimejob.dbcopy import copy_frame
from crimejob.grid.cells import N_CELLS
from crimejob.models.metrics import METRIC_KEYS, score_forecast
from crimejob.serving.accountability import (
    disparity,
    load_areas,
    previous_forecast,
    scores_by_area,
    week_extras,
)

_FORECASTS = sa.text(
    """
    SELECT model_name, model_version, is_production, history_through, cell_id, predicted,
           predicted_low, predicted_high, dispersion
    FROM ml.forecasts WHERE target_week = :week ORDER BY model_name, cell_id
    """
)
_ACTUALS = sa.text(
    "SELECT cell_id, violent_count FROM grid.weekly WHERE week_start = :week ORDER BY cell_id"
)
_ACTIVE = sa.text(
    """
    SELECT cell_id FROM grid.weekly
    WHERE week_start <= :through
    GROUP BY cell_id HAVING sum(incident_count) > 0
    """
)
SCORE_COLUMNS = tuple(k for k in METRIC_KEYS if k != "actual_total")

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


def active_cells(conn, through: date) -> np.ndarray:
    """Boolean mask of cells with any incident in the history up to ``through``."""
    mask = np.zeros(N_CELLS, dtype=bool)
    ids = [r.cell_id for r in conn.execute(_ACTIVE, {"through": through})]
    mask[ids] = True
    return mask


def score_target_week(engine: Engine, week: date) -> dict:
    """Write errors and scores of every forecast for ``week``; a no-op when there is none."""
    with engine.begin() as conn:
        forecasts = pd.read_sql_query(_FORECASTS, conn, params={"week": week})
        if forecasts.empty:
            return {"week": str(week), "scored_models": [], "note": "no forecast for this week"}
        actual_rows = pd.read_sql_query(_ACTUALS, conn, params={"week": week})
        if len(actual_rows) != N_CELLS:
            return {"week": str(week), "scored_models": [], "note": "week not aggregated yet"}
        actual = actual_rows["violent_count"].to_numpy()
        areas = load_areas(conn)
        errors, scores, area_frames = [], [], []
        masks: dict[date, np.ndarray] = {}  # models forecast from the same history_through
        for model_name, rows in forecasts.groupby("model_name", sort=True):
            predicted = rows["predicted"].to_numpy()
            through = rows["history_through"].iloc[0]
            if through not in masks:
                masks[through] = active_cells(conn, through)
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
                previous_forecast(conn, week, model_name, N_CELLS),
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
        conn.execute(sa.text("DELETE FROM ml.forecast_errors WHERE target_week = :w"), {"w": week})
        conn.execute(sa.text("DELETE FROM ml.forecast_scores WHERE target_week = :w"), {"w": week})
        conn.execute(
            sa.text("DELETE FROM ml.forecast_scores_by_area WHERE target_week = :w"), {"w": week}
        )
        error_frame = pd.concat(errors, ignore_index=True)
        copy_frame(conn, error_frame, "ml.forecast_errors", list(error_frame.columns))
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
    results = [score_target_week(engine, week) for week in weeks]
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
