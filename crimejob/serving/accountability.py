"""What a scored week says beyond the citywide metrics: error by division, how unequal
it is across divisions, how stable the flags are, and whether the intervals held.

- **By division.** Each LAPD division (``grid.cell_areas``: the area most of a
  cell's incidents carry; cells LAPD never recorded belong to none) is scored
  like a small city of its own with :func:`crimejob.models.metrics.score_forecast`:
  MAE and Poisson deviance over its cells, and the hotspot metrics at *its own*
  5% budget (5% of its cells, at least one), so a division is judged on where
  the forecast would send its own patrols, not on its share of a citywide list.
  A division with no incident that week has undefined hit rate, PAI and PEI.
- **Disparity.** Over the divisions of the week, the spread (max - min) of
  PEI at 5% (divisions with at least one incident) and of the mean Poisson
  deviance per cell, and the division with the worst deviance. Deviance grows
  with a division's crime level, so compare a model's spread with the
  baselines' on the same week (every model is scored on the same divisions),
  not with zero.
- **Stability.** The weighted Jaccard overlap of this week's flagged cells with
  the same model's flags of the week before, at 1% and 5%
  (:func:`crimejob.models.metrics.flag_jaccard`).
- **Coverage.** The share of cells inside their 90% interval (all cells, and
  the active ones), and the randomised-PIT coverage of the active cells
  (:mod:`crimejob.models.uncertainty`: 90% expected when calibrated).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crimejob.models.metrics import (
    BUDGETS,
    flag_jaccard,
    hotspot_metrics,
    poisson_deviance_per_cell,
)
from crimejob.models.uncertainty import Predictive, interval_coverage, pit_coverage

AREA_COLUMNS = (
    "area_code",
    "area_name",
    "cells",
    "mae",
    "poisson_deviance",
    "hit_rate_5pct",
    "pai_5pct",
    "pei_5pct",
    "actual_total",
    "predicted_total",
    "coverage_90",
)


def load_areas(conn: Connection) -> pd.DataFrame:
    """``grid.cell_areas``: cell_id, area_code, area_name (no row: no division)."""
    return pd.read_sql_query(
        sa.text("SELECT cell_id, area_code, area_name FROM grid.cell_areas ORDER BY cell_id"),
        conn,
    )


AreaCells = list[tuple[int, str, np.ndarray]]


def area_cells(areas: pd.DataFrame) -> AreaCells:
    """Each division's (area_code, area_name, cell ids), in code order: grouped once for
    every forecast a score step scores."""
    return [
        (int(code), name, cells["cell_id"].to_numpy())
        for (code, name), cells in areas.groupby(["area_code", "area_name"], sort=True)
    ]


def scores_by_area(
    predicted: np.ndarray,
    actual: np.ndarray,
    areas: pd.DataFrame | AreaCells,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per division: its errors and hotspot metrics at its own 5% budget (the
    numbers :func:`crimejob.models.metrics.score_forecast` gives on its cells)."""
    pred = np.asarray(predicted, np.float64).ravel()
    act = np.asarray(actual, np.float64).ravel()
    deviance = poisson_deviance_per_cell(pred, act)
    groups = area_cells(areas) if isinstance(areas, pd.DataFrame) else areas
    rows = []
    for code, name, idx in groups:
        p, a = pred[idx], act[idx]
        hotspots = hotspot_metrics(p, a, {"5pct": BUDGETS["5pct"]})
        rows.append(
            (
                code,
                name,
                int(idx.size),
                float(np.abs(p - a).mean()),
                float(deviance[idx].mean()),
                hotspots["hit_rate_5pct"],
                hotspots["pai_5pct"],
                hotspots["pei_5pct"],
                int(a.sum()),
                float(p.sum()),
                (
                    interval_coverage(a, low[idx], high[idx])
                    if low is not None and high is not None
                    else float("nan")
                ),
            )
        )
    return pd.DataFrame(rows, columns=list(AREA_COLUMNS))


def disparity(by_area: pd.DataFrame) -> dict[str, Any]:
    """Spread across divisions of PEI at 5% and of the mean Poisson deviance."""
    out: dict[str, Any] = {
        "area_pei_5pct_spread": float("nan"),
        "area_deviance_spread": float("nan"),
        "area_worst_deviance": None,
    }
    if by_area.empty:
        return out
    pei = by_area["pei_5pct"].dropna()
    if len(pei) >= 2:
        out["area_pei_5pct_spread"] = float(pei.max() - pei.min())
    if len(by_area) >= 2:
        out["area_deviance_spread"] = float(
            by_area["poisson_deviance"].max() - by_area["poisson_deviance"].min()
        )
    out["area_worst_deviance"] = str(by_area.loc[by_area["poisson_deviance"].idxmax(), "area_name"])
    return out


def week_extras(
    predicted: np.ndarray,
    actual: np.ndarray,
    active: np.ndarray,
    previous: np.ndarray | None,
    dispersion: float | None,
    low: np.ndarray | None,
    high: np.ndarray | None,
) -> dict[str, Any]:
    """Stability and coverage of one model's forecast of one week (NaN where undefined)."""
    nan = float("nan")
    out: dict[str, Any] = {
        "jaccard_1pct": nan,
        "jaccard_5pct": nan,
        "coverage_90": nan,
        "pit_coverage_90": nan,
        "coverage_90_active": nan,
        "dispersion": nan if dispersion is None else float(dispersion),
    }
    if previous is not None:
        out["jaccard_1pct"] = flag_jaccard(previous, predicted, 0.01)
        out["jaccard_5pct"] = flag_jaccard(previous, predicted, 0.05)
    if dispersion is not None and low is not None and high is not None:
        mask = np.asarray(active, bool)
        out["coverage_90"] = interval_coverage(actual, low, high)
        if mask.any():
            out["coverage_90_active"] = interval_coverage(actual[mask], low[mask], high[mask])
            out["pit_coverage_90"] = pit_coverage(
                actual[mask], Predictive(predicted[mask], dispersion)
            )
    return out
