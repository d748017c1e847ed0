"""The interactive map of a week's forecast: one self-contained HTML file (Leaflet via folium).

``crimejob map --week DATE --out FILE.html`` writes it. What it shows:

- every cell LAPD covers (or with a forecast or an incident), coloured by the
  production forecast on a log scale (0.01 to the week's highest forecast;
  zero forecasts light grey, never coloured as a hotspot);
- the flagged cells (5% of the area; zero forecasts never flagged, cells tied
  at the boundary all outlined) outlined in black;
- LAPD division boundaries (``grid.cell_areas``) as thick blue lines;
- a tooltip per cell: division, predicted count, 90% interval, P(at least one),
  rank, flag, and the actual count once the week is aggregated.

Self-contained: Leaflet's JavaScript and CSS are inlined from the
``js_lib_leaflet`` package, and nothing else is loaded, so the cells draw
offline; the OpenStreetMap background tiles load when the viewer is online.
"""

from __future__ import annotations

import html
import json
from datetime import date
from importlib import resources
from pathlib import Path

import folium
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm, to_hex
from sqlalchemy.engine import Engine

from crimejob.grid.cells import (
    COL_WIDTH,
    LAT_MAX,
    LAT_MIN,
    LON_MAX,
    LON_MIN,
    N_COLS,
    N_ROWS,
    ROW_HEIGHT,
)
from crimejob.serving.plot import COLOUR_FLOOR, label_segments, week_cells

CMAP = "YlOrRd"
ZERO_COLOUR = "#d9d9d9"


def _leaflet_assets() -> tuple[str, str]:
    """Leaflet's own JavaScript and CSS, from the installed ``js_lib_leaflet`` package."""
    root = resources.files("js_lib_leaflet") / "static" / "js_lib_leaflet"
    return (root / "leaflet.js").read_text("utf-8"), (root / "leaflet.css").read_text("utf-8")


def _cell_polygon(row: int, col: int) -> list[list[float]]:
    west, north = LON_MIN + col * COL_WIDTH, LAT_MAX - row * ROW_HEIGHT
    east, south = west + COL_WIDTH, north - ROW_HEIGHT
    return [[west, south], [east, south], [east, north], [west, north], [west, south]]


def _fmt(value: float, digits: int = 3) -> str:
    return "not known yet" if pd.isna(value) else f"{value:.{digits}f}"


def cell_features(cells: pd.DataFrame, norm: LogNorm) -> dict:
    """The drawn cells as a GeoJSON FeatureCollection, each with its style and tooltip fields."""
    cmap = colormaps[CMAP]
    features = []
    for c in cells.itertuples(index=False):
        flagged = bool(c.flag_5pct > 0)
        colour = (
            ZERO_COLOUR if c.predicted <= 0 else to_hex(cmap(norm(max(c.predicted, norm.vmin))))
        )
        interval = (
            "-"
            if pd.isna(c.predicted_low)
            else f"{int(c.predicted_low)} to {int(c.predicted_high)}"
        )
        flag = "no (zero forecast)" if c.predicted <= 0 else ("yes" if flagged else "no")
        if 0 < c.flag_5pct < 1:
            flag = f"tied at the boundary ({c.flag_5pct:.2f} of a slot)"
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [_cell_polygon(c.row, c.col)]},
                "properties": {
                    "cell": int(c.cell_id),
                    "division": c.area_name if isinstance(c.area_name, str) else "none",
                    "predicted": _fmt(c.predicted),
                    "interval": interval,
                    "prob_any": "-" if pd.isna(c.prob_any) else f"{c.prob_any:.1%}",
                    "rank": int(c.rank),
                    "flagged": flag,
                    "actual": "not known yet" if pd.isna(c.actual) else str(int(c.actual)),
                    "style": {
                        "fillColor": colour,
                        "fillOpacity": 0.25 if c.predicted <= 0 else 0.75,
                        "color": "#000000" if flagged else colour,
                        "weight": 2.0 if flagged else 0.3,
                        "opacity": 1.0 if flagged else 0.6,
                    },
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def division_lines(cells: pd.DataFrame) -> dict:
    """Division boundaries (edges between cells of different divisions) as GeoJSON lines."""
    labels = np.full(N_ROWS * N_COLS, -1)
    known = cells["area_code"].notna()
    labels[cells.loc[known, "cell_id"].to_numpy()] = cells.loc[known, "area_code"].astype(int)
    segments = label_segments(labels.reshape(N_ROWS, N_COLS))
    return {
        "type": "Feature",
        "geometry": {"type": "MultiLineString", "coordinates": segments.tolist()},
        "properties": {},
    }


def _legend(norm: LogNorm, title: str, subtitle: str) -> str:
    cmap = colormaps[CMAP]
    ticks = [t for t in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30) if t <= norm.vmax * 1.0001]
    stops = ", ".join(to_hex(cmap(x)) for x in np.linspace(0, 1, 9))
    labels = "".join(
        f'<span style="position:absolute;left:{100 * norm(t):.1f}%;transform:translateX(-50%)">'
        f"{t:g}</span>"
        for t in ticks
    )
    return f"""
<div id="crimejob-title" style="position:fixed;top:10px;left:60px;z-index:1000;
  background:rgba(255,255,255,0.92);padding:6px 10px;border-radius:4px;
  font:13px sans-serif;max-width:60%">
  <b>{html.escape(title)}</b><br>{html.escape(subtitle)}</div>
<div id="crimejob-legend" style="position:fixed;bottom:28px;right:12px;z-index:1000;
  background:rgba(255,255,255,0.92);padding:6px 12px 8px;border-radius:4px;
  font:12px sans-serif;width:280px">
  predicted violent incidents (log scale)
  <div style="height:12px;margin-top:4px;background:linear-gradient(to right, {stops})"></div>
  <div style="position:relative;height:12px">{labels}</div>
  <div style="margin-top:8px"><span style="display:inline-block;width:12px;height:12px;
    background:{ZERO_COLOUR};vertical-align:middle"></span> zero forecast (never flagged)</div>
  <div><span style="display:inline-block;width:10px;height:10px;border:2px solid #000;
    vertical-align:middle"></span> flagged: 5% of the area</div>
  <div><span style="display:inline-block;width:14px;border-top:3px solid #2c7fb8;
    vertical-align:middle"></span> LAPD division boundary</div>
</div>"""


def week_map(engine: Engine, week: date, out: Path) -> Path:
    """Write the interactive map of the production forecast for ``week`` to ``out``."""
    cells, meta = week_cells(engine, week)
    drawn = cells[(cells["predicted"] > 0) | cells["area_code"].notna() | (cells["actual"] > 0)]
    vmax = max(float(cells["predicted"].max()), 1.0)
    norm = LogNorm(vmin=COLOUR_FLOOR, vmax=vmax, clip=True)

    fmap = folium.Map(
        location=[(LAT_MIN + LAT_MAX) / 2, (LON_MIN + LON_MAX) / 2],
        zoom_start=10,
        tiles="OpenStreetMap",
        control_scale=True,
    )
    # Only Leaflet is needed (tooltips, no popups or markers): inline it, load nothing else.
    fmap.default_js, fmap.default_css = [], []
    script, css = _leaflet_assets()
    root = fmap.get_root()
    root.header.add_child(folium.Element(f"<style>{css}</style>"), name="leaflet_css_inline")
    root.header.add_child(folium.Element(f"<script>{script}</script>"), name="leaflet_js_inline")

    folium.GeoJson(
        cell_features(drawn, norm),
        name="cells",
        style_function=lambda feature: feature["properties"]["style"],
        highlight_function=lambda feature: {"weight": 3, "color": "#1f78b4"},
        tooltip=folium.GeoJsonTooltip(
            fields=[
                "cell",
                "division",
                "predicted",
                "interval",
                "prob_any",
                "rank",
                "flagged",
                "actual",
            ],
            aliases=[
                "cell",
                "division",
                "predicted",
                "90% interval",
                "P(at least one)",
                "rank",
                "flagged (5%)",
                "actual",
            ],
        ),  # fmt: skip
    ).add_to(fmap)
    folium.GeoJson(
        division_lines(cells),
        name="divisions",
        style_function=lambda feature: {"color": "#2c7fb8", "weight": 3.0, "opacity": 0.9},
        interactive=False,
    ).add_to(fmap)
    rows, cols = drawn["row"].to_numpy(), drawn["col"].to_numpy()
    if len(drawn):
        fmap.fit_bounds(
            [
                [LAT_MAX - (rows.max() + 1) * ROW_HEIGHT, LON_MIN + cols.min() * COL_WIDTH],
                [LAT_MAX - rows.min() * ROW_HEIGHT, LON_MIN + (cols.max() + 1) * COL_WIDTH],
            ]
        )

    flagged = int((cells["flag_5pct"] > 0).sum())
    slots = float(cells["flag_5pct"].sum())
    tied = int(((cells["flag_5pct"] > 0) & (cells["flag_5pct"] < 1)).sum())
    title = f"Violent incidents forecast for the week of {week}: {meta['model']}"
    subtitle = (
        f"{flagged} cells outlined for the 5% budget ({slots:.0f} slots"
        + (f"; {tied} cells tied at the boundary share the last slots" if tied else "")
        + f"); expected citywide "
        f"{cells['predicted'].sum():.0f}"
        + (
            f", actual {int(cells['actual'].sum())}"
            if cells["actual"].notna().all()
            else " (the week has not happened yet)"
        )
    )
    root.html.add_child(folium.Element(_legend(norm, title, subtitle)))
    root.html.add_child(
        folium.Element(
            '<script type="application/json" id="crimejob-meta">'
            + json.dumps({"week": str(week), "cells": len(drawn), "flagged": flagged, **meta})
            + "</script>"
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fmap.save(str(out))
    return out
