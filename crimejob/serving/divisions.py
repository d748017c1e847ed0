"""Division and citywide forecasts: a cell forecast summed over each LAPD division and the city.

Analysts read LA by its 21 divisions and as a whole. A cell model's division
forecast is the sum of its cells (``grid.cell_areas``: the area most of a cell's
incidents carry), so the divisions, the city and the map always agree. The
interval is that of the summed predictive distribution
(:func:`crimejob.models.uncertainty.sum_of_cells`: cells independent NB2 given their
means, moment-matched), 90% central, as for cells.

Written with the cell forecasts, in the same transaction (``write_forecasts``),
so ``ml.division_forecasts`` never disagrees with ``ml.forecasts``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.dbcopy import copy_frame
from crimejob.grid.cells import N_CELLS
from crimejob.grid.history import GridHistory
from crimejob.models.uncertainty import Predictive, intervals_of_each, sum_of_cells

log = logging.getLogger(__name__)

CITYWIDE = "citywide"

COLUMNS = [
    "target_week", "model_name", "area_name", "area_code", "model_version", "is_production",
    "method", "predicted", "predicted_low", "predicted_high", "dispersion", "cells",
    "history_through", "horizon_weeks",
]  # fmt: skip


def division_labels(cell_areas: pd.DataFrame, n_cells: int = N_CELLS) -> np.ndarray:
    """(n_cells,) area code of each cell, 0 for cells that belong to no division."""
    labels = np.zeros(n_cells, np.int64)
    labels[cell_areas["cell_id"].to_numpy(np.int64)] = cell_areas["area_code"].to_numpy(np.int64)
    return labels


def area_names(cell_areas: pd.DataFrame) -> dict[int, str]:
    """Area code -> division name."""
    pairs = cell_areas.drop_duplicates("area_code")
    return dict(zip(pairs["area_code"].astype(int), pairs["area_name"], strict=True))


def summed_rows(predicted: np.ndarray, dispersion: float, labels: np.ndarray,
                names: dict[int, str]) -> list[dict]:  # fmt: skip
    """One row per division and one citywide row: predicted total, its 90% interval,
    the summed distribution's dispersion and the number of cells summed (the intervals
    of all the sums at once: :func:`crimejob.models.uncertainty.intervals_of_each`)."""
    means = np.maximum(np.asarray(predicted, np.float64).ravel(), 0.0)
    groups = [(names[code], code, labels == code) for code in sorted(names)]
    groups.append((CITYWIDE, None, np.ones(len(means), bool)))
    sums = [sum_of_cells(means[mask], dispersion) for _, _, mask in groups]
    low, high = intervals_of_each(
        np.array([s.mean[0] for s in sums]), np.array([s.dispersion for s in sums])
    )
    return [
        {
            "area_name": name,
            "area_code": code,
            "predicted": float(predictive.mean[0]),
            "predicted_low": int(lo),
            "predicted_high": int(hi),
            "dispersion": float(predictive.dispersion),
            "cells": int(mask.sum()),
        }
        for (name, code, mask), predictive, lo, hi in zip(groups, sums, low, high, strict=True)
    ]


def load_cell_areas_in(conn: Connection) -> pd.DataFrame:
    return pd.read_sql_query(
        sa.text("SELECT cell_id, area_code, area_name FROM grid.cell_areas"), conn
    )


def write_division_forecasts(
    conn: Connection,
    target_week: date,
    history_through: date,
    forecasts: Iterable,
) -> int:
    """Replace the sums of cell models for ``target_week`` (``forecasts``: the
    :class:`~crimejob.serving.forecast_store.ModelForecast` list written to ml.forecasts).

    Rows of volume models (method 'volume_model') for the week are left alone.
    Returns the rows written.
    """
    cell_areas = load_cell_areas_in(conn)
    labels, names = division_labels(cell_areas), area_names(cell_areas)
    rows = []
    for f in forecasts:
        for row in summed_rows(f.predicted, f.dispersion, labels, names):
            rows.append(
                {
                    **row,
                    "target_week": target_week,
                    "model_name": f.model_name,
                    "model_version": f.model_version,
                    "is_production": f.is_production,
                    "method": "sum_of_cells",
                    "history_through": history_through,
                    "horizon_weeks": (target_week - history_through).days // 7,
                }
            )
    conn.execute(
        sa.text(
            "DELETE FROM ml.division_forecasts WHERE target_week = :t AND method = 'sum_of_cells'"
        ),
        {"t": target_week},
    )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["area_code"] = frame["area_code"].astype("Int64")
    return copy_frame(conn, frame, "ml.division_forecasts", COLUMNS)


def write_volume_forecasts(engine: Engine, history: GridHistory, target_week: date) -> int:
    """Forecast each division's and the city's total for ``target_week`` with the volume
    model (:func:`crimejob.serving.volume.forecast_volume`) and replace its rows. Returns the rows
    written: 0 when no cell has a division yet or the history is too short to fit."""
    from crimejob.serving.volume import VolumeLGBM, forecast_volume

    with engine.connect() as conn:
        cell_areas = load_cell_areas_in(conn)
    names = area_names(cell_areas)
    labels = division_labels(cell_areas, history.shape[0] * history.shape[1])
    horizon = (target_week - history.last_week).days // 7
    result = forecast_volume(history, labels, names, horizon) if names else None
    if result is None:
        log.info(
            "volume model: no forecast for %s (no divisions or too little history)", target_week
        )
        return 0
    area_list, means, dispersion = result
    codes = {name: code for code, name in names.items()}
    rows = []
    for name, mean in zip(area_list, means, strict=True):
        predictive = Predictive(np.array([mean]), dispersion)
        low, high = predictive.interval()
        rows.append(
            {
                "target_week": target_week,
                "model_name": VolumeLGBM.name,
                "area_name": name,
                "area_code": codes.get(name),
                "model_version": "volume",
                "is_production": False,
                "method": "volume_model",
                "predicted": float(mean),
                "predicted_low": int(low[0]),
                "predicted_high": int(high[0]),
                "dispersion": float(dispersion),
                "cells": int((labels == codes[name]).sum()) if name in codes else len(labels),
                "history_through": history.last_week,
                "horizon_weeks": horizon,
            }
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["area_code"] = frame["area_code"].astype("Int64")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM ml.division_forecasts "
                "WHERE target_week = :t AND method = 'volume_model'"
            ),
            {"t": target_week},
        )
        return copy_frame(conn, frame, "ml.division_forecasts", COLUMNS)
