"""Pictures for people: a week's forecast, actual and error maps, and the scoreboard over time.

Maps use a log colour scale (a handful of hotspots would otherwise wash every
other cell into one colour), draw the LAPD division boundaries
(``grid.cell_areas``) and outline the flagged cells: the 5% budget of
:func:`crimejob.models.metrics.flag_weights`, where a zero forecast is never flagged
and cells tied at the boundary are all outlined. Beside the maps, the week's
capture curve: the share of incidents in the flagged cells as the flagged share
of the area grows, for the production model, every baseline and the best
possible flags.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure  # drawn without pyplot: no display, no global state
from sqlalchemy.engine import Engine

from crimejob.errors import DataError
from crimejob.grid.cells import (
    COL_WIDTH,
    LAT_MAX,
    LAT_MIN,
    LON_MAX,
    LON_MIN,
    N_CELLS,
    N_COLS,
    N_ROWS,
    ROW_HEIGHT,
)
from crimejob.models.metrics import budget_cells, flag_weights

FLAG_SHARE = 0.05
#: The lowest value the log colour scale shows; lower (and zero) forecasts share its colour.
COLOUR_FLOOR = 0.01
#: Area shares the capture curve is drawn at (0 to 20% of the cells).
CAPTURE_SHARES = np.linspace(0.0, 0.20, 81)
_EXTENT = (LON_MIN, LON_MAX, LAT_MIN, LAT_MAX)


def outline_segments(mask: np.ndarray) -> np.ndarray:
    """Line segments (lon, lat) along every edge between a flagged and an unflagged cell."""
    padded = np.pad(mask.astype(bool), 1)
    lon_edges = LON_MIN + np.arange(N_COLS + 1) * COL_WIDTH
    lat_edges = LAT_MAX - np.arange(N_ROWS + 1) * ROW_HEIGHT
    # horizontal edges: between row r-1 and r (r = 0..60), along column c
    rows, cols = np.nonzero(padded[:-1, 1:-1] != padded[1:, 1:-1])
    horizontal = np.stack(
        [
            np.stack([lon_edges[cols], lat_edges[rows]], -1),
            np.stack([lon_edges[cols + 1], lat_edges[rows]], -1),
        ],
        1,
    )
    # vertical edges: between column c-1 and c (c = 0..75), along row r
    rows, cols = np.nonzero(padded[1:-1, :-1] != padded[1:-1, 1:])
    vertical = np.stack(
        [
            np.stack([lon_edges[cols], lat_edges[rows]], -1),
            np.stack([lon_edges[cols], lat_edges[rows + 1]], -1),
        ],
        1,
    )
    return np.concatenate([horizontal, vertical]).reshape(-1, 2, 2)


def label_segments(labels: np.ndarray, none: int = -1) -> np.ndarray:
    """Line segments (lon, lat) along every edge between cells of different labels
    (e.g. LAPD divisions), where at least one side has a label other than ``none``."""
    padded = np.pad(np.asarray(labels), 1, constant_values=none)
    lon_edges = LON_MIN + np.arange(N_COLS + 1) * COL_WIDTH
    lat_edges = LAT_MAX - np.arange(N_ROWS + 1) * ROW_HEIGHT
    above, below = padded[:-1, 1:-1], padded[1:, 1:-1]
    rows, cols = np.nonzero((above != below) & ((above != none) | (below != none)))
    horizontal = np.stack(
        [
            np.stack([lon_edges[cols], lat_edges[rows]], -1),
            np.stack([lon_edges[cols + 1], lat_edges[rows]], -1),
        ],
        1,
    )
    left, right = padded[1:-1, :-1], padded[1:-1, 1:]
    rows, cols = np.nonzero((left != right) & ((left != none) | (right != none)))
    vertical = np.stack(
        [
            np.stack([lon_edges[cols], lat_edges[rows]], -1),
            np.stack([lon_edges[cols], lat_edges[rows + 1]], -1),
        ],
        1,
    )
    return np.concatenate([horizontal, vertical]).reshape(-1, 2, 2)


_WEEK_CELLS = sa.text(
    """
    SELECT f.cell_id, c.row, c.col, f.predicted, f.rank, f.prob_any, f.predicted_low,
           f.predicted_high, f.flag_5pct, f.model_name, f.model_version,
           w.violent_count AS actual, a.area_code, a.area_name
    FROM ml.forecasts AS f
    JOIN grid.cells AS c USING (cell_id)
    LEFT JOIN grid.weekly AS w ON w.week_start = f.target_week AND w.cell_id = f.cell_id
    LEFT JOIN grid.cell_areas AS a ON a.cell_id = f.cell_id
    WHERE f.target_week = :w AND f.is_production
    ORDER BY f.cell_id
    """
)


def week_cells(engine: Engine, week: date) -> tuple[pd.DataFrame, dict]:
    """The production forecast of ``week``, one row per cell, with the actual count (NaN
    until the week is aggregated) and the division; and which model made it."""
    with engine.connect() as conn:
        cells = pd.read_sql_query(_WEEK_CELLS, conn, params={"w": week})
    if len(cells) != N_CELLS:
        raise DataError(f"no production forecast for week {week}")
    if cells["flag_5pct"].isna().any():  # written before flags were stored
        cells["flag_5pct"] = flag_weights(
            cells["predicted"].to_numpy(), budget_cells(N_CELLS, FLAG_SHARE)
        )
    version = cells["model_version"].iloc[0]
    name = cells["model_name"].iloc[0]
    label = f"{name} (baseline)" if version == "baseline" else f"{name} v{version}"
    return cells, {"model": label, "model_name": name, "model_version": version}


def capture_curve(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Share of the incidents in the flagged cells at each of :data:`CAPTURE_SHARES`."""
    total = float(np.sum(actual))
    if total <= 0:
        return np.full(len(CAPTURE_SHARES), np.nan)
    n = np.size(predicted)
    flat = np.asarray(actual, np.float64).ravel()
    return np.array(
        [
            flag_weights(predicted, int(round(share * n))) @ flat / total if share > 0 else 0.0
            for share in CAPTURE_SHARES
        ]
    )


def _week_forecasts(engine: Engine, week: date) -> dict[str, np.ndarray]:
    frame = pd.read_sql_query(
        sa.text(
            "SELECT model_name, is_production, predicted FROM ml.forecasts "
            "WHERE target_week = :w ORDER BY model_name, cell_id"
        ),
        engine,
        params={"w": week},
    )
    out = {}
    for (name, production), rows in frame.groupby(["model_name", "is_production"], sort=True):
        out[f"{name} (production)" if production else name] = rows["predicted"].to_numpy()
    return out


def _draw_capture(ax, engine: Engine, week: date, observed: np.ndarray) -> None:
    x = 100 * CAPTURE_SHARES
    for label, predicted in _week_forecasts(engine, week).items():
        production = label.endswith("(production)")
        ax.plot(
            x,
            100 * capture_curve(predicted, observed),
            label=label,
            **({"color": "black", "linewidth": 2.4} if production else {"linewidth": 1.0}),
        )
    ax.plot(
        x,
        100 * capture_curve(observed, observed),
        linestyle=":",
        color="grey",
        label="best possible",
    )
    ax.axvline(100 * FLAG_SHARE, color="red", linewidth=0.8, linestyle="--")
    ax.set_xlabel("share of the area flagged (% of cells)")
    ax.set_ylabel("share of the week's incidents in flagged cells (%)")
    ax.set_title("capture curve")
    ax.set_xlim(0, x[-1])
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def plot_week(engine: Engine, week: date, out: Path) -> Path:
    """Forecast, actual and absolute error maps (log colour scale, divisions drawn, the
    flagged 5% outlined) and the capture curve of every model that forecast the week."""
    cells, meta = week_cells(engine, week)
    with engine.connect() as conn:
        scores = pd.read_sql_query(
            sa.text("SELECT * FROM ml.forecast_scores WHERE target_week = :w AND is_production"),
            conn,
            params={"w": week},
        )
    predicted = cells["predicted"].to_numpy().reshape(N_ROWS, N_COLS)
    flagged = (cells["flag_5pct"].to_numpy() > 0).reshape(N_ROWS, N_COLS)
    divisions = cells["area_code"].fillna(-1).to_numpy().astype(int).reshape(N_ROWS, N_COLS)
    division_edges = label_segments(divisions)
    model = meta["model"]
    has_actual = bool(cells["actual"].notna().all())
    panels = [("forecast", predicted, "viridis")]
    if has_actual:
        observed = cells["actual"].to_numpy().reshape(N_ROWS, N_COLS).astype(float)
        error = np.abs(predicted - observed)
        panels += [("actual", observed, "viridis"), ("|error|", error, "magma")]
    vmax = max(float(np.max(np.concatenate([p[1].ravel() for p in panels[:2]]))), 1.0)

    fig = Figure(figsize=(5.2 * (len(panels) + has_actual), 5.4))
    axes = fig.subplots(1, len(panels) + has_actual, squeeze=False)[0]
    for ax, (label, grid_values, cmap) in zip(axes, panels, strict=False):
        top = vmax if label != "|error|" else max(float(grid_values.max()), 1.0)
        image = ax.imshow(
            np.maximum(grid_values, COLOUR_FLOOR),
            extent=_EXTENT,
            origin="upper",
            cmap=cmap,
            norm=LogNorm(vmin=COLOUR_FLOOR, vmax=top, clip=True),
            aspect="auto",
        )
        ax.add_collection(LineCollection(division_edges, colors="white", linewidths=0.6, alpha=0.8))
        ax.add_collection(LineCollection(outline_segments(flagged), colors="red", linewidths=0.9))
        ax.set_title(f"{label} (log scale; {COLOUR_FLOOR:g} or less: darkest)")
        ax.set_xlabel("longitude")
        fig.colorbar(image, ax=ax, shrink=0.8)
    axes[0].set_ylabel("latitude")
    if has_actual:
        _draw_capture(axes[-1], engine, week, observed)
    title = (
        f"Violent incidents, week of {week} - {model} (red: the {int(flagged.sum())} cells "
        "flagged at 5%, zero forecasts never; white: LAPD divisions)"
    )
    if not scores.empty:
        s = scores.iloc[0]
        title += (
            f"\nMAE {s.mae:.3f}  RMSE {s.rmse:.3f}  Poisson dev {s.poisson_deviance:.3f}  "
            f"hit rate 5% {s.hit_rate_5pct:.2f}  PAI 5% {s.pai_5pct:.2f}  "
            f"PEI 5% {s.pei_5pct:.2f}  actual total {s.actual_total}"
        )
    elif not has_actual:
        title += "\n(the week has not happened yet: forecast only)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def plot_scores(engine: Engine, out: Path) -> Path:
    """Weekly MAE and PAI at 5% of the production model against every baseline."""
    scores = pd.read_sql_query(
        "SELECT target_week, model_name, is_production, mae, pai_5pct "
        "FROM ml.forecast_scores ORDER BY target_week",
        engine,
    )
    if scores.empty:
        raise DataError("no scored weeks yet: run the weekly job for two weeks first")
    fig = Figure(figsize=(10, 7))
    ax_mae, ax_pai = fig.subplots(2, 1, sharex=True)
    for name, rows in scores.groupby("model_name"):
        production = rows["is_production"].any()
        style = {"linewidth": 2.4, "color": "black"} if production else {"linewidth": 1.0}
        label = f"{name} (production)" if production else name
        weeks = pd.to_datetime(rows["target_week"])
        ax_mae.plot(weeks, rows["mae"], marker=".", label=label, **style)
        ax_pai.plot(weeks, rows["pai_5pct"], marker=".", label=label, **style)
    span = pd.to_datetime(scores["target_week"])
    ax_pai.set_xlim(span.min() - pd.Timedelta(days=7), span.max() + pd.Timedelta(days=7))
    ax_mae.set_ylabel("MAE per cell-week (lower is better)")
    ax_pai.set_ylabel("PAI at 5% of cells (higher is better)")
    ax_pai.set_xlabel("target week")
    ax_mae.legend(fontsize=8, ncol=2)
    fig.suptitle("crimejob weekly scoreboard: production model against baselines")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
