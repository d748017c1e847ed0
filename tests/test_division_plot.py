"""The division volume plot: actual and forecast weekly volumes per division, holidays marked."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from matplotlib.image import imread

from crimejob.cli import main
from crimejob.dbcopy import copy_frame
from crimejob.errors import DataError
from crimejob.grid.cells import N_CELLS
from crimejob.serving.division_plot import division_volume, plot_divisions
from crimejob.serving.divisions import CITYWIDE
from crimejob.serving.forecast_store import ModelForecast, write_forecasts

FIRST = date(2024, 11, 4)
WEEKS = [FIRST + timedelta(weeks=k) for k in range(6)]  # Thanksgiving: 2024-11-25


@pytest.fixture
def division_weeks(clean_db):
    rng = np.random.default_rng(0)
    areas = pd.DataFrame({"cell_id": np.arange(600), "area_code": np.repeat([1, 2], 300),
                          "area_name": np.repeat(["Central", "Rampart"], 300),
                          "incidents": 1, "share": 1.0})  # fmt: skip
    counts = rng.poisson(0.2, (len(WEEKS), N_CELLS))
    weekly = pd.DataFrame(
        {
            "week_start": np.repeat(WEEKS, N_CELLS),
            "cell_id": np.tile(np.arange(N_CELLS), len(WEEKS)),
            "violent_count": counts.ravel(),
            "incident_count": counts.ravel(),
            "holiday": np.repeat([int(w == date(2024, 11, 25)) for w in WEEKS], N_CELLS),
        }
    )
    weeks = pd.DataFrame({"week_start": WEEKS, "series": "nibrs",
                          "incident_total": counts.sum(axis=1),
                          "violent_total": counts.sum(axis=1),
                          "holiday_names": [("Thanksgiving" if w == date(2024, 11, 25) else None)
                                            for w in WEEKS]})  # fmt: skip
    with clean_db.begin() as conn:
        copy_frame(conn, areas, "grid.cell_areas", list(areas.columns))
        copy_frame(conn, weekly, "grid.weekly", list(weekly.columns))
        copy_frame(conn, weeks, "grid.weeks", list(weeks.columns))
    for target in WEEKS[3:]:
        write_forecasts(clean_db, target, target - timedelta(weeks=3), [
            ModelForecast("rate_cnn", "1", True, np.full(N_CELLS, 0.2), 0.5),
            ModelForecast("mean_13w", "baseline", False, np.full(N_CELLS, 0.1), 0.0),
        ])  # fmt: skip
    return clean_db, counts


def test_the_plot_data_are_division_sums_production_forecasts_and_holiday_weeks(division_weeks):
    engine, counts = division_weeks
    data = division_volume(engine, weeks=4)
    actuals = data["actuals"].set_index(["week_start", "area_name"])["actual"]
    last = pd.Timestamp(WEEKS[-1])
    assert actuals[(last, "Central")] == counts[-1, :300].sum()
    assert actuals[(last, CITYWIDE)] == counts[-1].sum()
    assert data["actuals"]["week_start"].nunique() == 4
    assert data["holidays"]["names"].tolist() == ["Thanksgiving"]
    forecasts = data["forecasts"]
    assert set(forecasts["model_name"]) == {"rate_cnn"}  # production only among cell models
    city = forecasts[forecasts["area_name"] == CITYWIDE]
    assert np.allclose(city["predicted"], 0.2 * N_CELLS)


def test_the_cli_writes_the_division_plot_beside_the_scoreboard(division_weeks, tmp_path, capsys):
    engine, _ = division_weeks
    out = tmp_path / "divisions.png"
    assert main(["plot", "--divisions", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    image = imread(out)
    assert image.shape[0] > 300 and image.shape[1] > 1000
    orange = (image[..., 0] > 0.95) & (np.abs(image[..., 1] - 0.89) < 0.05) & (image[..., 2] < 0.8)
    assert orange.sum() > 100  # the holiday band is drawn


def test_no_aggregated_weeks_is_a_clear_error(clean_db, tmp_path):
    with clean_db.begin() as conn:
        conn.execute(sa.text("SELECT 1"))
    with pytest.raises(DataError, match="no division volumes yet"):
        plot_divisions(clean_db, tmp_path / "x.png")
