"""Forecast next week for all 4,500 cells and write it, replacing any earlier forecast.

The production model's forecast is flagged ``is_production``; every baseline's
forecast for the same week is written beside it, so the scoreboard compares
them on the same actuals. When no trained version has been promoted yet, the
fallback baseline (``CRIMEJOB_FALLBACK_MODEL``, default ``mean_13w``) is
production: analysts always get a forecast, and it says which model made it.

The run for week W forecasts W+1 from the newest complete week (``crimejob.lag``)
at an explicit horizon: every forecaster predicts ``horizon`` weeks past its
history, and each row records ``history_through`` and ``horizon_weeks``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crimejob.dbcopy import copy_frame
from crimejob.errors import DataError
from crimejob.grid import N_CELLS
from crimejob.gridstore import history_for_run
from crimejob.history import GridHistory

BASELINE_VERSION = "baseline"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelForecast:
    model_name: str
    model_version: str
    is_production: bool
    predicted: np.ndarray  # (4500,) by cell_id


def fallback_model() -> str:
    return os.environ.get("CRIMEJOB_FALLBACK_MODEL", "mean_13w")


def rank_cells(predicted: np.ndarray) -> np.ndarray:
    """Rank 1 = highest prediction; ties broken by cell_id, lower first."""
    order = np.lexsort((np.arange(len(predicted)), -predicted))
    rank = np.empty(len(predicted), dtype=np.int64)
    rank[order] = np.arange(1, len(predicted) + 1)
    return rank


def make_forecasts(
    engine: Engine, history: GridHistory, horizon: int = 1
) -> list[ModelForecast]:
    """The production model's forecast and every baseline's, for the week ``horizon``
    weeks after ``history.last_week``.

    A production version trained for another horizon (the lag setting changed since)
    is not used: its forecast would be for another week. The fallback baseline stands
    in until a version trained at this horizon is promoted.
    """
    from crimejob.forecasters import BASELINES, get_forecaster
    from crimejob.registry import load_forecaster, production_version

    production = production_version(engine)
    results: list[ModelForecast] = []
    if production is not None:
        model = load_forecaster(production)
        trained_for = int(model.hyperparameters().get("horizon", 1))
        if trained_for != horizon:
            log.warning(
                "production %s forecasts %d week(s) ahead, this run needs %d: %s stands in",
                production.label, trained_for, horizon, fallback_model(),
            )  # fmt: skip
            production = None
        else:
            results.append(
                ModelForecast(
                    production.model_name,
                    str(production.version),
                    True,
                    model.predict(history).reshape(N_CELLS).astype(np.float64),
                )
            )
    fallback = fallback_model()
    for name in BASELINES:
        forecaster = get_forecaster(name, horizon=horizon)
        if len(history) < forecaster.min_history:
            continue
        forecaster.fit(history)
        results.append(
            ModelForecast(
                name,
                BASELINE_VERSION,
                production is None and name == fallback,
                forecaster.predict(history).reshape(N_CELLS).astype(np.float64),
            )
        )
    return results


def write_forecasts(
    engine: Engine,
    target_week: date,
    history_through: date,
    forecasts: list[ModelForecast],
    run_id: int | None = None,
) -> int:
    """Replace every forecast for ``target_week`` in one transaction (no mixed rows);
    ``horizon_weeks`` is the weeks from ``history_through`` to ``target_week``."""
    frames = [
        pd.DataFrame(
            {
                "target_week": target_week,
                "model_name": f.model_name,
                "cell_id": np.arange(N_CELLS),
                "model_version": f.model_version,
                "predicted": f.predicted,
                "rank": rank_cells(f.predicted),
                "is_production": f.is_production,
                "history_through": history_through,
                "run_id": run_id,
                "horizon_weeks": (target_week - history_through).days // 7,
            }
        )
        for f in forecasts
    ]
    frame = pd.concat(frames, ignore_index=True)
    frame["run_id"] = frame["run_id"].astype("Int64")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM ml.forecasts WHERE target_week = :t"), {"t": target_week})
        copy_frame(conn, frame, "ml.forecasts", list(frame.columns))
    return len(frame)


def forecast_next_week(engine: Engine, week: date, run_id: int | None = None) -> dict:
    """Forecast ``week + 7 days`` from the history the run for ``week`` may see: the weeks
    complete after the publication lag, at horizon (target - history_through) weeks."""
    from crimejob.lag import run_weeks

    plan = run_weeks(week)
    history = history_for_run(engine, week)
    if len(history) == 0:
        raise DataError(
            f"no grid rows up to {plan.history_through} (the newest week complete after the "
            f"{plan.lag_days}-day publication lag): run ingest and aggregate first"
        )
    target = plan.target_week
    forecasts = make_forecasts(engine, history, plan.horizon)
    if not any(f.is_production for f in forecasts):
        raise DataError(
            f"no production model could forecast {target} from {len(history)} weeks of history"
        )
    rows = write_forecasts(engine, target, history.last_week, forecasts, run_id=run_id)
    production = next(f for f in forecasts if f.is_production)
    return {
        "target_week": str(target),
        "history_through": str(history.last_week),
        "horizon_weeks": plan.horizon,
        "history_weeks": len(history),
        "rows": rows,
        "models": [f.model_name for f in forecasts],
        "production_model": production.model_name,
        "production_version": production.model_version,
        "predicted_total": round(float(production.predicted.sum()), 3),
    }
