"""The bi contract: forecasts land ranked and whole, reruns replace them atomically,
and the crimejob_bi role reads bi and nothing else."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa

from crimejob.grid.cells import N_CELLS
from crimejob.serving.forecast_store import ModelForecast, rank_cells, write_forecasts

WEEK = date(2024, 1, 1)


def _forecast(name: str, seed: int, production: bool) -> ModelForecast:
    values = np.random.default_rng(seed).gamma(0.5, 1.0, N_CELLS)
    return ModelForecast(name, "7" if production else "baseline", production, values)


def test_rank_is_one_for_the_highest_cell_and_tied_cells_share_a_rank():
    predicted = np.array([0.5, 2.0, 0.5, 3.0, 0.0])
    assert list(rank_cells(predicted)) == [3, 2, 3, 1, 5]


def test_forecast_latest_returns_the_newest_production_forecast_ranked(clean_db):
    write_forecasts(
        clean_db,
        WEEK,
        WEEK - timedelta(weeks=1),
        [_forecast("conv", 1, True), _forecast("mean_4w", 2, False)],
    )
    newer = WEEK + timedelta(weeks=1)
    write_forecasts(
        clean_db, newer, WEEK, [_forecast("conv", 3, True), _forecast("mean_4w", 4, False)]
    )
    latest = pd.read_sql("SELECT * FROM bi.forecast_latest ORDER BY rank", clean_db)
    assert len(latest) == N_CELLS
    assert set(latest["target_week"]) == {newer}
    assert set(latest["model_name"]) == {"conv"}
    assert list(latest["rank"]) == list(range(1, N_CELLS + 1))
    assert latest["predicted"].is_monotonic_decreasing
    expected = np.sort(_forecast("conv", 3, True).predicted)[::-1]
    np.testing.assert_allclose(latest["predicted"], expected)
    assert latest[["lat_center", "lon_center"]].notna().all().all()


def test_rewriting_a_week_replaces_every_row_of_it(clean_db):
    write_forecasts(
        clean_db,
        WEEK,
        WEEK - timedelta(weeks=1),
        [_forecast("conv", 1, True), _forecast("ewma", 2, False)],
    )
    # production changes between the two runs: no mixed rows may remain
    write_forecasts(clean_db, WEEK, WEEK - timedelta(weeks=1), [_forecast("mean_13w", 5, True)])
    rows = pd.read_sql(
        "SELECT model_name, count(*) AS n, bool_and(is_production) AS prod "
        "FROM bi.forecasts GROUP BY model_name",
        clean_db,
    )
    assert rows.to_dict("records") == [{"model_name": "mean_13w", "n": N_CELLS, "prod": True}]


def test_a_failed_write_leaves_the_previous_forecast(clean_db):
    write_forecasts(clean_db, WEEK, WEEK - timedelta(weeks=1), [_forecast("conv", 1, True)])
    broken = ModelForecast("conv", "8", True, np.full(N_CELLS, -1.0))  # violates predicted >= 0
    with pytest.raises(psycopg2.errors.CheckViolation):
        write_forecasts(clean_db, WEEK, WEEK - timedelta(weeks=1), [broken])
    kept = pd.read_sql(
        "SELECT model_version, min(predicted) AS low FROM ml.forecasts GROUP BY model_version",
        clean_db,
    )
    assert kept["model_version"].tolist() == ["7"]
    assert (kept["low"] >= 0).all()


@pytest.fixture
def bi_engine(database_url, clean_db):
    url = sa.engine.make_url(database_url).set(username="crimejob_bi", password=None)
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    "view",
    [
        "bi.grid_cells",
        "bi.weekly_counts",
        "bi.forecasts",
        "bi.forecast_latest",
        "bi.forecast_errors",
        "bi.forecast_scores",
        "bi.forecast_scores_by_area",
    ],
)
def test_bi_role_reads_every_bi_view(bi_engine, view):
    with bi_engine.connect() as conn:
        conn.execute(sa.text(f"SELECT * FROM {view} LIMIT 1")).all()


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM raw.crime_records LIMIT 1",
        "SELECT * FROM grid.weekly LIMIT 1",
        "SELECT * FROM ml.forecasts LIMIT 1",
        "SELECT * FROM ops.rejects LIMIT 1",
        "DELETE FROM bi.forecast_scores",
        "INSERT INTO bi.grid_cells (cell_id) VALUES (1)",
        "UPDATE bi.forecast_scores SET mae = 0",
        "CREATE TABLE public.mine (x int)",
        "CREATE TABLE bi.mine (x int)",
        "CREATE TEMP TABLE mine (x int)",
    ],
)
def test_bi_role_cannot_read_outside_bi_or_write_anywhere(bi_engine, statement):
    with (
        bi_engine.connect() as conn,
        pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
    ):
        conn.execute(sa.text(statement))


def test_every_bi_column_is_documented(engine):
    undocumented = pd.read_sql(
        """
        SELECT c.table_name, c.column_name
        FROM information_schema.columns AS c
        JOIN pg_class AS t ON t.relname = c.table_name
        JOIN pg_namespace AS n ON n.oid = t.relnamespace AND n.nspname = c.table_schema
        WHERE c.table_schema = 'bi'
          AND col_description(t.oid, c.ordinal_position::int) IS NULL
        """,
        engine,
    )
    assert undocumented.empty, undocumented.to_string()


def test_flagged_cells_are_outlined_edge_by_edge():
    from crimejob.serving.plot import outline_segments

    mask = np.zeros((60, 75), dtype=bool)
    mask[10, 20] = True  # one cell: four edges
    assert len(outline_segments(mask)) == 4
    mask[10, 21] = True  # two neighbours share an edge: six outer edges
    assert len(outline_segments(mask)) == 6
    mask[0, 0] = True  # a corner cell is outlined on the grid border too
    assert len(outline_segments(mask)) == 10
