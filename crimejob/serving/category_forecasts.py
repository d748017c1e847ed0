"""The weekly crime-type mix and severity forecast: ``ml.category_forecasts`` per cell.

The weekly run calls :func:`write_category_forecasts` after the cell forecasts:
the category counts of the history's weeks (``grid.weekly_categories``) feed
:class:`crimejob.serving.typemix.ShrunkMix` (each cell's mix shrunk towards its
division's, ``grid.cell_areas``), whose expected counts per category and cell
are written with each category's harm weight (``bi.severity_forecasts`` sums
them). The mix and level are means over the history, so the forecast is the
same at any horizon; the rows record the horizon of the run.
"""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crimejob.dbcopy import copy_frame, read_query
from crimejob.grid.categories import CATEGORIES
from crimejob.grid.cells import N_CELLS
from crimejob.serving.divisions import division_labels, load_cell_areas_in
from crimejob.serving.severity import HARM_WEIGHTS
from crimejob.serving.typemix import CategoryHistory, ShrunkMix

log = logging.getLogger(__name__)

COLUMNS = [
    "target_week", "model_name", "cell_id", "category", "expected", "probability",
    "harm_weight_days", "history_through", "horizon_weeks",
]  # fmt: skip


def load_category_history(engine: Engine, week_starts: np.ndarray) -> CategoryHistory:
    """``grid.weekly_categories`` of the given consecutive weeks as (T, C, 4500) counts.

    Read through ``COPY`` (:func:`crimejob.dbcopy.read_query`), each row's week as its
    index from the server: a year of weeks is some 10^5 rows, a tuple each through
    ``read_sql_query`` (a backfill week's forecast step spent 0.16 s on it)."""
    first = week_starts[0].astype("datetime64[D]").item()
    last = week_starts[-1].astype("datetime64[D]").item()
    with engine.connect() as conn:
        rows = read_query(
            conn,
            "SELECT (week_start - %(first)s::date) / 7 AS week, cell_id, category, incidents "
            "FROM grid.weekly_categories WHERE week_start BETWEEN %(first)s AND %(last)s",
            {"first": first, "last": last},
            dtype={"week": np.int64, "cell_id": np.int64, "category": str, "incidents": np.int64},
        )
    counts = np.zeros((len(week_starts), len(CATEGORIES), N_CELLS), np.float32)
    if len(rows):
        category = rows["category"].map({c: i for i, c in enumerate(CATEGORIES)}).to_numpy()
        week, cell = rows["week"].to_numpy(), rows["cell_id"].to_numpy()
        np.add.at(counts, (week, category, cell), rows["incidents"].to_numpy())
    return CategoryHistory(np.asarray(week_starts, "datetime64[D]"), counts)


def write_category_forecasts(engine: Engine, week_starts: np.ndarray, target_week: date) -> int:
    """Forecast every cell's category counts for ``target_week`` from the weeks
    ``week_starts`` and replace that week's rows. Returns the rows written (0 when the
    history holds no categorised incident)."""
    history = load_category_history(engine, week_starts)
    if history.counts.sum() == 0:
        log.info("type mix: no categorised incidents up to %s, nothing forecast", week_starts[-1])
        return 0
    with engine.connect() as conn:
        labels = division_labels(load_cell_areas_in(conn))
    model = ShrunkMix(labels).fit(history)
    mix, expected = model.mix(history), model.predict(history)
    cells = np.flatnonzero(expected.sum(axis=0) > 0)
    through = history.week_starts[-1].astype("datetime64[D]").item()
    frame = pd.DataFrame(
        {
            "target_week": target_week,
            "model_name": model.name,
            "cell_id": np.tile(cells, len(CATEGORIES)),
            "category": np.repeat(CATEGORIES, len(cells)),
            "expected": expected[:, cells].ravel(),
            "probability": np.clip(mix[:, cells].ravel(), 0.0, 1.0),
            "harm_weight_days": np.repeat([HARM_WEIGHTS[c].days for c in CATEGORIES], len(cells)),
            "history_through": through,
            "horizon_weeks": (target_week - through).days // 7,
        }
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM ml.category_forecasts WHERE target_week = :t"), {"t": target_week}
        )
        return copy_frame(conn, frame, "ml.category_forecasts", COLUMNS)
