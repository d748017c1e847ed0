"""Pictures for people: a week's forecast, actual and error maps, and the scoreboard over time."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure  # drawn without pyplot: no display, no global state
from sqlalchemy.engine import Engine

from crimejob.errors import DataError
from crimejob.grid import (
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

FLAG_SHARE = 0.05
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


def _production_forecast(conn, week: date) -> pd.DataFrame:
    return pd.read_sql_query(
        sa.text(
            "SELECT cell_id, predicted, rank, model_name, model_version FROM ml.forecasts "
            "WHERE target_week = :w AND is_production ORDER BY cell_id"
        ),
        conn,
        params={"w": week},
    )


def plot_week(engine: Engine, week: date, out: Path) -> Path:
    """Forecast, actual and absolute error side by side; the flagged 5% cells outlined."""
    with engine.connect() as conn:
        forecast = _production_forecast(conn, week)
        if len(forecast) != N_CELLS:
            raise DataError(f"no production forecast for week {week}")
        actual = pd.read_sql_query(
            sa.text(
                "SELECT cell_id, violent_count FROM grid.weekly WHERE week_start = :w "
                "ORDER BY cell_id"
            ),
            conn,
            params={"w": week},
        )
        scores = pd.read_sql_query(
            sa.text("SELECT * FROM ml.forecast_scores WHERE target_week = :w AND is_production"),
            conn,
            params={"w": week},
        )
    predicted = forecast["predicted"].to_numpy().reshape(N_ROWS, N_COLS)
    flagged = (forecast["rank"].to_numpy() <= round(FLAG_SHARE * N_CELLS)).reshape(N_ROWS, N_COLS)
    version = forecast["model_version"].iloc[0]
    model = forecast["model_name"].iloc[0] + (
        " (baseline)" if version == "baseline" else f" v{version}"
    )
    has_actual = len(actual) == N_CELLS
    panels = [("forecast", predicted, "viridis")]
    if has_actual:
        observed = actual["violent_count"].to_numpy().reshape(N_ROWS, N_COLS).astype(float)
        error = np.abs(predicted - observed)
        panels += [("actual", observed, "viridis"), ("|error|", error, "magma")]
    vmax = max(float(np.percentile(np.concatenate([p[1].ravel() for p in panels[:2]]), 99.5)), 1.0)

    fig = Figure(figsize=(5.2 * len(panels), 5.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (label, grid_values, cmap) in zip(axes[0], panels, strict=True):
        image = ax.imshow(
            grid_values,
            extent=_EXTENT,
            origin="upper",
            cmap=cmap,
            vmin=0,
            vmax=vmax if label != "|error|" else None,
            aspect="auto",
        )
        ax.add_collection(LineCollection(outline_segments(flagged), colors="red", linewidths=0.9))
        ax.set_title(label)
        ax.set_xlabel("longitude")
        fig.colorbar(image, ax=ax, shrink=0.8)
    axes[0][0].set_ylabel("latitude")
    title = f"Violent incidents, week of {week} - {model} (red: top 5% cells flagged)"
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
