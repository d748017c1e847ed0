"""The 60 x 75 grid over the City of Los Angeles (bounds below; ``bi.grid_cells`` lists it).

``cell_id = row * 75 + col``; row 0 is the northern edge, column 0 the western.
Points on the southern or eastern boundary belong to the last row or column.
All arithmetic is float64 and vectorised, so a million points map in one call.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd

LAT_MIN, LAT_MAX = 33.7037, 34.3373
LON_MIN, LON_MAX = -118.6682, -118.1553
N_ROWS, N_COLS = 60, 75
N_CELLS = N_ROWS * N_COLS
ROW_HEIGHT = (34.3373 - 33.7037) / 60
COL_WIDTH = (-118.1553 + 118.6682) / 75

# Why a point has no cell; the same words are stored as reject reasons.
MISSING_LOCATION = "missing_location"
OUTSIDE_GRID = "outside_grid"


def cell_of(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates to ``(cell_id, reason)`` arrays.

    ``cell_id`` is -1 where there is no cell, and ``reason`` then says why:
    missing (NaN or 0,0) coordinates, or a point outside the bounding box.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    missing = np.isnan(lat) | np.isnan(lon) | ((lat == 0) & (lon == 0))
    with np.errstate(invalid="ignore"):
        inside = (lat >= LAT_MIN) & (lat <= LAT_MAX) & (lon >= LON_MIN) & (lon <= LON_MAX)
        row = np.floor((34.3373 - lat) / ((34.3373 - 33.7037) / 60))
        col = np.floor((lon + 118.6682) / ((-118.1553 + 118.6682) / 75))
    ok = inside & ~missing
    row = np.clip(np.where(ok, row, 0), 0, N_ROWS - 1).astype(np.int64)
    col = np.clip(np.where(ok, col, 0), 0, N_COLS - 1).astype(np.int64)
    cell = np.where(ok, row * N_COLS + col, -1)
    reason = np.where(missing, MISSING_LOCATION, np.where(ok, "", OUTSIDE_GRID)).astype(object)
    return cell, reason


def cells_frame() -> pd.DataFrame:
    """One row per cell: its row, column, bounds, centre and GeoJSON polygon."""
    cell_id = np.arange(N_CELLS)
    row, col = np.divmod(cell_id, N_COLS)
    lat_max = LAT_MAX - row * ROW_HEIGHT
    lat_min = LAT_MAX - (row + 1) * ROW_HEIGHT
    lon_min = LON_MIN + col * COL_WIDTH
    lon_max = LON_MIN + (col + 1) * COL_WIDTH
    frame = pd.DataFrame(
        {
            "cell_id": cell_id,
            "row": row,
            "col": col,
            "lat_min": lat_min,
            "lat_max": lat_max,
            "lon_min": lon_min,
            "lon_max": lon_max,
            "lat_center": (lat_min + lat_max) / 2,
            "lon_center": (lon_min + lon_max) / 2,
        }
    )
    frame["geojson"] = [
        json.dumps(
            {
                "type": "Polygon",
                "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
            }
        )
        for x0, x1, y0, y1 in zip(lon_min, lon_max, lat_min, lat_max, strict=True)
    ]
    return frame


def centers() -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes and longitudes, indexed by cell_id (copies: the caller may
    write to them)."""
    lat, lon = _centers()
    return lat.copy(), lon.copy()


@functools.cache
def _centers() -> tuple[np.ndarray, np.ndarray]:
    """:func:`centers`, computed once: every aggregated range interpolates the weather
    to them, and :func:`cells_frame` formats 4,500 GeoJSON polygons on the way (0.1 s a
    range, a dozen ranges a backfill week)."""
    frame = cells_frame()
    return frame["lat_center"].to_numpy(), frame["lon_center"].to_numpy()
