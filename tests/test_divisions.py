"""Division and citywide forecasts: the sums of the cell forecasts, with intervals, and scored."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crimejob.dbcopy import copy_frame
from crimejob.grid.cells import N_CELLS
from crimejob.serving.divisions import CITYWIDE, division_labels, summed_rows
from crimejob.serving.forecast_store import ModelForecast, write_forecasts

TARGET = date(2024, 3, 4)
THROUGH = TARGET - timedelta(weeks=3)
AREAS = {1: "Central", 2: "Rampart", 3: "Southwest"}


def cell_areas(seed: int = 0) -> pd.DataFrame:
    """Three divisions over 900 cells; the other cells belong to none."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(N_CELLS, 900, replace=False)
    codes = rng.integers(1, 4, len(cells))
    return pd.DataFrame(
        {
            "cell_id": cells,
            "area_code": codes,
            "area_name": [AREAS[c] for c in codes],
            "incidents": 5,
            "share": 1.0,
        }
    )


def setup(engine, areas: pd.DataFrame) -> list[ModelForecast]:
    with engine.begin() as conn:
        copy_frame(conn, areas, "grid.cell_areas", list(areas.columns))
    rng = np.random.default_rng(1)
    forecasts = [
        ModelForecast("rate_cnn", "3", True, rng.gamma(0.5, 0.3, N_CELLS), 0.8),
        ModelForecast("mean_13w", "baseline", False, rng.gamma(0.5, 0.3, N_CELLS), 0.0),
    ]
    write_forecasts(engine, TARGET, THROUGH, forecasts)
    return forecasts


def test_every_division_and_the_city_equal_the_sum_of_their_cells(clean_db):
    areas = cell_areas()
    setup(clean_db, areas)
    rows = pd.read_sql("SELECT * FROM bi.division_forecasts", clean_db)
    assert len(rows) == 2 * (len(AREAS) + 1)
    assert set(rows["area_name"]) == {*AREAS.values(), CITYWIDE}
    sums = pd.read_sql(
        """
        SELECT f.model_name, coalesce(a.area_name, 'none') AS area_name, sum(f.predicted) AS s
        FROM ml.forecasts f LEFT JOIN grid.cell_areas a USING (cell_id) GROUP BY 1, 2
        """,
        clean_db,
    ).set_index(["model_name", "area_name"])["s"]
    for row in rows.itertuples():
        if row.area_name == CITYWIDE:
            expected = sums.loc[row.model_name].sum()
            assert row.cells == N_CELLS and pd.isna(row.area_code)
        else:
            expected = sums.loc[(row.model_name, row.area_name)]
            assert row.cells == (areas["area_name"] == row.area_name).sum()
        assert np.isclose(row.predicted, expected)
        assert row.predicted_low <= row.predicted <= row.predicted_high
        assert row.horizon_weeks == 3 and row.method == "sum_of_cells"
    assert rows.groupby("model_name")["is_production"].first().to_dict() == {
        "rate_cnn": True, "mean_13w": False,
    }  # fmt: skip


def test_overdispersed_cells_give_a_wider_interval_than_poisson_ones():
    means = np.full(100, 0.5)
    labels = np.ones(100, np.int64)
    poisson = summed_rows(means, 0.0, labels, {1: "A"})[0]
    nb = summed_rows(means, 2.0, labels, {1: "A"})[0]
    assert poisson["predicted"] == nb["predicted"] == 50
    assert (
        nb["predicted_high"] - nb["predicted_low"]
        > poisson["predicted_high"] - poisson["predicted_low"]
    )
    # Poisson(50): the 5% and 95% quantiles
    assert (poisson["predicted_low"], poisson["predicted_high"]) == (39, 62)


def test_cells_without_a_division_count_only_citywide():
    areas = pd.DataFrame({"cell_id": [0, 1], "area_code": [7, 7], "area_name": ["X", "X"]})
    labels = division_labels(areas, n_cells=4)
    rows = summed_rows(np.array([1.0, 2.0, 3.0, 4.0]), 0.0, labels, {7: "X"})
    assert [(r["area_name"], r["predicted"]) for r in rows] == [("X", 3.0), (CITYWIDE, 10.0)]


def test_rewriting_a_week_replaces_its_division_rows(clean_db):
    forecasts = setup(clean_db, cell_areas())
    write_forecasts(clean_db, TARGET, THROUGH, forecasts[:1])
    with clean_db.connect() as conn:
        models = conn.execute(
            sa.text("SELECT DISTINCT model_name FROM ml.division_forecasts")
        ).scalars()
        assert list(models) == ["rate_cnn"]


def test_division_scores_compare_each_forecast_with_the_division_total(clean_db):
    areas = cell_areas()
    setup(clean_db, areas)
    actual = np.zeros(N_CELLS, np.int64)
    central = areas.loc[areas["area_name"] == "Central", "cell_id"].to_numpy()
    actual[central[:7]] = 2  # 14 violent incidents in Central, 3 outside any division
    actual[np.setdiff1d(np.arange(N_CELLS), areas["cell_id"])[:3]] = 1
    weekly = pd.DataFrame({"week_start": TARGET, "cell_id": np.arange(N_CELLS),
                           "violent_count": actual, "incident_count": actual})  # fmt: skip
    with clean_db.begin() as conn:
        copy_frame(conn, weekly, "grid.weekly", list(weekly.columns))
        conn.execute(
            sa.text(
                "INSERT INTO grid.weeks (week_start, series, incident_total, violent_total) "
                "VALUES (:w, 'legacy', 17, 17)"
            ),
            {"w": TARGET},
        )
    scores = pd.read_sql(
        "SELECT * FROM bi.division_scores WHERE model_name = 'rate_cnn'", clean_db
    ).set_index("area_name")
    assert scores.loc["Central", "actual"] == 14
    assert scores.loc["Rampart", "actual"] == 0
    assert scores.loc[CITYWIDE, "actual"] == 17
    row = scores.loc["Central"]
    y, mu = 14, row["predicted"]
    assert np.isclose(row["poisson_deviance"], 2 * (y * np.log(y / mu) - (y - mu)))
    assert np.isclose(row["abs_error"], abs(mu - y))
    assert row["inside_90"] == (row["predicted_high"] >= 14 >= row["predicted_low"])
    # Rampart saw nothing: the deviance of a zero week is 2 * predicted
    assert np.isclose(
        scores.loc["Rampart", "poisson_deviance"], 2 * scores.loc["Rampart", "predicted"]
    )
