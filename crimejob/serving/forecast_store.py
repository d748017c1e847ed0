"""Forecast next week for all 4,500 cells and write it, replacing any earlier forecast.

Every contender's forecast is written (each baseline, and each network's
production version at the run's horizon), so the scoreboard compares them on
the same actuals; the champion (:mod:`crimejob.models.champion`: the best mean Poisson
deviance on recent weeks none of them was fitted to) is flagged
``is_production``, and its decision is stored with its numbers
(``ml.promotion_decisions``, ``bi.forecasts.production_reason``). No model is
production by default: the same rule chooses on the first run.

The run for week W forecasts W+1 from the newest complete week (``crimejob.grid.lag``)
at an explicit horizon: every forecaster predicts ``horizon`` weeks past its
history, and each row records ``history_through`` and ``horizon_weeks``.

Each cell's row also carries its predictive distribution (``prob_any``, the 90%
interval ``predicted_low``..``predicted_high``, the forecast's ``dispersion``:
:mod:`crimejob.models.uncertainty`) and its hotspot flags at 1% and 5% of the area
(:func:`crimejob.models.metrics.flag_weights`: a zero forecast is never flagged, cells
tied at the boundary share the slots left). Tied cells share a rank.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crimejob.dbcopy import copy_frame
from crimejob.errors import DataError
from crimejob.grid.cells import N_CELLS
from crimejob.grid.gridstore import history_for_run
from crimejob.grid.history import GridHistory
from crimejob.models.champion import ChampionDecision
from crimejob.models.champion import record as record_champion
from crimejob.models.metrics import BUDGETS, budget_cells, flag_weights
from crimejob.models.uncertainty import Predictive, dispersion_from_history
from crimejob.serving.category_forecasts import write_category_forecasts
from crimejob.serving.divisions import write_division_forecasts, write_volume_forecasts

BASELINE_VERSION = "baseline"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelForecast:
    model_name: str
    model_version: str
    is_production: bool
    predicted: np.ndarray  # (4500,) by cell_id
    dispersion: float = 0.0  # NB2 alpha of the predictive distribution; 0 = Poisson


def rank_cells(predicted: np.ndarray) -> np.ndarray:
    """Rank 1 = highest prediction; tied cells share the best rank of their tie (1, 2, 2, 4).

    No cell_id order decides anything: every zero forecast shares the last rank.
    """
    values = np.asarray(predicted, np.float64)
    higher = np.sort(-values)
    return np.searchsorted(higher, -values, side="left").astype(np.int64) + 1


def cell_columns(predicted: np.ndarray, dispersion: float) -> dict[str, np.ndarray]:
    """Rank, predictive distribution and hotspot flags of each cell of one forecast."""
    predictive = Predictive(predicted, dispersion)
    low, high = predictive.interval()
    columns = {
        "rank": rank_cells(predicted),
        "prob_any": predictive.prob_any(),
        "predicted_low": low.astype(np.int64),
        "predicted_high": high.astype(np.int64),
        "dispersion": float(dispersion),
    }
    for label in ("1pct", "5pct"):
        columns[f"flag_{label}"] = flag_weights(
            predicted, budget_cells(len(predicted), BUDGETS[label])
        )
    return columns


class _SamePast:
    """A forecaster whose forecasts from a past it has forecast from are remembered.

    Within one forecast step every past is ``history.through(week)`` of the same
    history, and the champion window's weeks (8) are among the dispersion's (13):
    each contender forecast them twice from the same weeks. Forecasts read nothing but
    the past (:meth:`Forecaster.predict`) and are deterministic, so the second is the
    first; each caller gets its own copy. Everything else is the forecaster's.
    """

    def __init__(self, forecaster) -> None:
        self._forecaster = forecaster
        self._forecasts: dict[tuple, np.ndarray] = {}

    def __getattr__(self, name: str):
        return getattr(self._forecaster, name)

    def predict(self, past: GridHistory) -> np.ndarray:
        key = (len(past), past.week_starts[0].item(), past.last_week) if len(past) else None
        if key is None:
            return self._forecaster.predict(past)
        if key not in self._forecasts:
            self._forecasts[key] = self._forecaster.predict(past)
        return self._forecasts[key].copy()


def forecast_contenders(
    engine: Engine, history: GridHistory, horizon: int = 1, target_week: date | None = None
) -> tuple[list[ModelForecast], ChampionDecision]:
    """Every contender's forecast for the week ``horizon`` weeks after ``history.last_week``,
    the champion's flagged production, and the champion decision.

    A network version trained for another horizon (the lag setting changed since) is no
    contender: its forecast would be for another week. ``target_week`` (the forecast's
    week) finds the incumbent: the model production for the week before.
    """
    from crimejob.models.champion import (
        baseline_contenders,
        decide,
        network_contenders,
        previous_production,
    )

    networks, excluded = network_contenders(engine, horizon, history.last_week)
    contenders = networks + baseline_contenders(history, horizon)
    for contender in contenders:
        contender.forecaster = _SamePast(contender.forecaster)
    incumbent = previous_production(engine, target_week) if target_week else None
    decision = decide(history, horizon, contenders, incumbent, target_week, excluded=excluded)
    results = []
    for contender in contenders:
        model = contender.forecaster
        results.append(
            ModelForecast(
                contender.model_name,
                contender.model_version,
                contender.label == decision.champion.label,
                model.predict(history).reshape(N_CELLS).astype(np.float64),
                dispersion_from_history(model, history),
            )
        )
    return results, decision


def make_forecasts(engine: Engine, history: GridHistory, horizon: int = 1) -> list[ModelForecast]:
    """The forecasts of :func:`forecast_contenders`, the champion's flagged production."""
    return forecast_contenders(engine, history, horizon)[0]


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
                "is_production": f.is_production,
                "history_through": history_through,
                "run_id": run_id,
                "horizon_weeks": (target_week - history_through).days // 7,
                **cell_columns(f.predicted, f.dispersion),
            }
        )
        for f in forecasts
    ]
    frame = pd.concat(frames, ignore_index=True)
    frame["run_id"] = frame["run_id"].astype("Int64")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM ml.forecasts WHERE target_week = :t"), {"t": target_week})
        copy_frame(conn, frame, "ml.forecasts", list(frame.columns))
        write_division_forecasts(conn, target_week, history_through, forecasts)
    return len(frame)


def forecast_next_week(engine: Engine, week: date, run_id: int | None = None) -> dict:
    """Forecast ``week + 7 days`` from the history the run for ``week`` may see: the weeks
    complete after the publication lag, at horizon (target - history_through) weeks."""
    from crimejob.grid.lag import run_weeks

    plan = run_weeks(week)
    history = history_for_run(engine, week)
    if len(history) == 0:
        raise DataError(
            f"no grid rows up to {plan.history_through} (the newest week complete after the "
            f"{plan.lag_days}-day publication lag): run ingest and aggregate first"
        )
    target = plan.target_week
    forecasts, decision = forecast_contenders(engine, history, plan.horizon, target)
    rows = write_forecasts(engine, target, history.last_week, forecasts, run_id=run_id)
    with engine.begin() as conn:
        record_champion(conn, decision)
    write_volume_forecasts(engine, history, target)
    write_category_forecasts(engine, history.week_starts, target)
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
        "production_reason": decision.reason,
    }
