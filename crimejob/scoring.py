"""Score forecasts once their week has happened: per-cell errors and the week's metrics.

Every model that forecast the week (the production model and each baseline) is
scored on the same actuals, so ``bi.forecast_scores`` is an honest scoreboard.
Rescoring a week replaces its rows in one transaction.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crimejob.dbcopy import copy_frame
from crimejob.grid import N_CELLS
from crimejob.metrics import METRIC_KEYS, score_forecast

_FORECASTS = sa.text(
    """
    SELECT model_name, model_version, is_production, history_through, cell_id, predicted
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
        errors, scores = [], []
        for model_name, rows in forecasts.groupby("model_name", sort=True):
            predicted = rows["predicted"].to_numpy()
            through = rows["history_through"].iloc[0]
            active = active_cells(conn, through)
            metrics = score_forecast(predicted, actual, active)
            first = rows.iloc[0]
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
                }
            )
        conn.execute(sa.text("DELETE FROM ml.forecast_errors WHERE target_week = :w"), {"w": week})
        conn.execute(sa.text("DELETE FROM ml.forecast_scores WHERE target_week = :w"), {"w": week})
        error_frame = pd.concat(errors, ignore_index=True)
        copy_frame(conn, error_frame, "ml.forecast_errors", list(error_frame.columns))
        score_frame = pd.DataFrame(scores)
        copy_frame(conn, score_frame, "ml.forecast_scores", list(score_frame.columns))
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
