"""The interactive map and the PNG plots, checked as a person would see them: the HTML in a
real headless Chromium (Debian's package; scripts/bootstrap installs it), offline."""

from __future__ import annotations

import re
import subprocess
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from crimejob.cli import main
from crimejob.dbcopy import copy_frame
from crimejob.devworld import la_world
from crimejob.grid.cells import N_CELLS, N_COLS
from crimejob.grid.gridstore import store_history
from crimejob.serving.forecast_store import ModelForecast, write_forecasts
from crimejob.serving.maps import CMAP

WEEK = date(2024, 1, 8)
CHROMIUM = Path("/usr/bin/chromium")
LEAFLET_BACKGROUND = np.array([0xDD, 0xDD, 0xDD]) / 255  # .leaflet-container, no tiles offline


@pytest.fixture
def mapped_week(clean_db):
    """A scored-looking week: actuals, two divisions, the production forecast and a baseline."""
    history = la_world(seed=8, start=WEEK - timedelta(weeks=1), weeks=2).history()
    store_history(clean_db, history)
    cells = np.arange(N_CELLS)
    col = cells % N_COLS
    territory = cells[(cells // N_COLS >= 10) & (col >= 10) & (col < 60)]
    areas = pd.DataFrame(
        {
            "cell_id": territory,
            "area_code": np.where(territory % N_COLS < 35, 1, 2),
            "area_name": np.where(territory % N_COLS < 35, "Central", "Rampart"),
            "incidents": 1,
            "share": 1.0,
        }
    )
    with clean_db.begin() as conn:
        copy_frame(conn, areas, "grid.cell_areas", list(areas.columns))
    predicted = np.zeros(N_CELLS)
    predicted[territory] = np.random.default_rng(1).gamma(0.6, 0.5, territory.size)
    predicted[territory[:40]] = 6.0  # a block of hot cells, the top of the colour scale
    write_forecasts(clean_db, WEEK, WEEK - timedelta(weeks=1), [
        ModelForecast("rate_cnn", "4", True, predicted, 0.3),
        ModelForecast("mean_4w", "baseline", False, history.crime[0].ravel().astype(float), 0.1),
    ])  # fmt: skip
    return clean_db, predicted, territory, history.crime[1].ravel()


def test_the_map_is_one_self_contained_file(mapped_week, tmp_path):
    out = tmp_path / "week.html"

    assert main(["map", "--week", str(WEEK), "--out", str(out)]) == 0

    page = out.read_text()
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"?https?:", page), "loads from the web"
    assert "L.map(" in page and "Leaflet" in page[:400_000]  # Leaflet itself inlined
    assert "tile.openstreetmap.org" in page  # the background, when online
    assert "90% interval" in page and "P(at least one)" in page


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: run scripts/bootstrap (installs Debian's chromium)")
    profile = cwd / "profile"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=8000",
        *args,
    ]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_chromium_draws_every_cell_and_outlines_the_flags(mapped_week, tmp_path):
    engine, predicted, territory, actual = mapped_week
    out = tmp_path / "week.html"
    main(["map", "--week", str(WEEK), "--out", str(out)])

    dom = _chromium("--dump-dom", out.as_uri(), cwd=tmp_path).stdout

    cells = re.findall(r'<path class="leaflet-interactive"[^>]*>', dom)
    # cells LAPD covers, or with a forecast or an incident: the empty rest stays undrawn
    drawn = int(((predicted > 0) | np.isin(np.arange(N_CELLS), territory) | (actual > 0)).sum())
    assert len(cells) == drawn, f"{len(cells)} cell paths in the page, want {drawn}"
    outlined = [p for p in cells if 'stroke="#000000"' in p and 'stroke-width="2"' in p]
    assert len(outlined) == 225  # the 5% budget; 1,750 positive forecasts to choose from
    assert 'id="crimejob-legend"' in dom


@pytest.mark.slow
def test_the_screenshot_shows_the_hot_cells_in_the_hottest_colour(mapped_week, tmp_path):
    out = tmp_path / "week.html"
    main(["map", "--week", str(WEEK), "--out", str(out)])
    shot = tmp_path / "shot.png"

    _chromium(f"--screenshot={shot}", "--window-size=1200,900", out.as_uri(), cwd=tmp_path)

    image = imread(shot)[..., :3]
    hottest = 0.75 * np.array(to_rgb(colormaps[CMAP](1.0))) + 0.25 * LEAFLET_BACKGROUND
    close = np.all(np.abs(image - hottest) < 0.04, axis=-1)
    assert close.sum() > 200, "the 40 hottest cells are not drawn in the top colour"
    assert len(np.unique((image * 255).astype(int).reshape(-1, 3), axis=0)) > 50


def test_the_png_has_log_colours_divisions_and_a_capture_curve(mapped_week, tmp_path):
    out = tmp_path / "week.png"

    assert main(["plot", "--week", str(WEEK), "--out", str(out)]) == 0

    image = imread(out)
    assert image.shape[1] > 4 * image.shape[0] * 0.9  # four panels side by side


def test_capture_curve_counts_ties_fractionally_and_never_flags_zeros():
    from crimejob.serving.plot import CAPTURE_SHARES, capture_curve

    predicted = np.zeros(400)
    predicted[:4] = 1.0  # only four cells forecast anything
    actual = np.zeros(400)
    actual[[0, 10]] = 1.0

    curve = capture_curve(predicted, actual)

    assert curve[0] == 0
    # 1% of 400 = 4 cells: the four positive cells, one incident of two
    assert curve[np.argmin(np.abs(CAPTURE_SHARES - 0.01))] == pytest.approx(0.5)
    # 0.5% = 2 cells: two of four tied cells, half a chance each to hold cell 0's incident
    assert curve[np.argmin(np.abs(CAPTURE_SHARES - 0.005))] == pytest.approx(0.25)
    assert curve[-1] == pytest.approx(0.5)  # zero forecasts never flagged: it stays there


def test_division_boundaries_are_drawn_between_different_divisions_only():
    from crimejob.serving.plot import label_segments

    labels = np.full((60, 75), -1)
    labels[5, 5:7] = [1, 1]  # two cells of one division: six outer edges, none between
    assert len(label_segments(labels)) == 6
    labels[5, 6] = 2  # now two divisions: the shared edge too
    assert len(label_segments(labels)) == 7


def test_a_week_not_happened_yet_is_mapped_without_actuals(mapped_week, tmp_path):
    engine, predicted, _, _ = mapped_week
    ahead = WEEK + timedelta(weeks=1)
    write_forecasts(engine, ahead, WEEK, [ModelForecast("rate_cnn", "4", True, predicted, 0.3)])
    out = tmp_path / "ahead.html"

    assert main(["map", "--week", str(ahead), "--out", str(out)]) == 0

    page = out.read_text()
    assert "the week has not happened yet" in page and '"actual": "not known yet"' in page
    assert main(["plot", "--week", str(ahead), "--out", str(tmp_path / "ahead.png")]) == 0


def test_a_week_without_a_forecast_is_a_clear_error(clean_db, tmp_path, capsys):
    assert main(["map", "--week", str(WEEK), "--out", str(tmp_path / "none.html")]) == 1
    assert "no production forecast for week 2024-01-08" in capsys.readouterr().err
