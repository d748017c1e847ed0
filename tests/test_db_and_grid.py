"""The database contract and the grid formula (crimejob.grid.cells)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob.db import SQL_DIR, MigrationChangedError, migrations, upgrade, view_files
from crimejob.grid import cells as grid


def test_migrations_are_recorded_and_safe_to_run_twice(engine):
    assert upgrade(engine) == []  # the session fixture applied them all already
    with engine.connect() as conn:
        recorded = conn.execute(sa.text("SELECT name FROM ops.schema_migrations ORDER BY version"))
        assert [r.name for r in recorded] == [m.name for m in migrations()]
        schemas = {r[0] for r in conn.execute(sa.text("SELECT nspname FROM pg_namespace"))}
    assert {"raw", "grid", "ml", "ops", "bi"} <= schemas


def _copy_sql(tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    return sql_dir


def test_an_edited_view_file_reaches_an_existing_database_on_upgrade(
    scratch_database_url, tmp_path
):
    sql_dir = _copy_sql(tmp_path)
    scratch = sa.create_engine(scratch_database_url)
    try:
        upgrade(scratch, sql_dir)
        view = sql_dir / "views" / "10_bi_grid_cells.sql"
        text = view.read_text()
        view.write_text(
            text.replace(
                "lat_center, lon_center, geojson\nFROM",
                "lat_center, lon_center, geojson, row + col AS diagonal\nFROM",
            )
        )
        assert upgrade(scratch, sql_dir) == []  # no migration pending: only views re-created
        with scratch.connect() as conn:
            columns = (
                conn.execute(
                    sa.text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = 'bi' AND table_name = 'grid_cells' "
                        "ORDER BY ordinal_position"
                    )
                )
                .scalars()
                .all()
            )
            # the re-created view is still readable by the BI role (grants re-applied)
            granted = conn.execute(
                sa.text("SELECT has_table_privilege('crimejob_bi', 'bi.grid_cells', 'SELECT')")
            ).scalar_one()
        assert columns[-1] == "diagonal"
        assert granted
    finally:
        scratch.dispose()


def test_two_databases_of_one_server_upgrade_at_the_same_time(database_url, scratch_database_url):
    """Roles are server-wide: upgrades of two databases at once both re-apply the BI role's
    settings, and neither may fail for it (test workers, staging beside production)."""
    import threading

    engines = [sa.create_engine(database_url), sa.create_engine(scratch_database_url)]
    upgrade(engines[1])
    rounds = 12
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def upgrade_repeatedly(engine: sa.Engine) -> None:
        for _ in range(rounds):
            barrier.wait(timeout=60)
            try:
                upgrade(engine)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=upgrade_repeatedly, args=(e,)) for e in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
    finally:
        for engine in engines:
            engine.dispose()
    assert errors == []


def test_an_edited_applied_migration_is_an_error_not_a_warning(scratch_database_url, tmp_path):
    sql_dir = _copy_sql(tmp_path)
    scratch = sa.create_engine(scratch_database_url)
    try:
        upgrade(scratch, sql_dir)
        first = sorted((sql_dir / "migrations").glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- an afterthought\n")
        with pytest.raises(MigrationChangedError, match=first.name):
            upgrade(scratch, sql_dir)
    finally:
        scratch.dispose()


def test_every_view_file_creates_views_and_the_bi_role_comes_last():
    files = view_files()
    assert files and files[-1].name.endswith("bi_role.sql")
    assert all("CREATE VIEW" in f.read_text() for f in files[:-1])


def test_grid_cells_table_matches_the_python_grid(engine):
    db_cells = pd.read_sql("SELECT * FROM bi.grid_cells ORDER BY cell_id", engine)
    py_cells = grid.cells_frame()
    assert len(db_cells) == 4500
    assert (db_cells["cell_id"] == db_cells["row"] * 75 + db_cells["col"]).all()
    for column in ("lat_min", "lat_max", "lon_min", "lon_max", "lat_center", "lon_center"):
        np.testing.assert_allclose(db_cells[column], py_cells[column], rtol=0, atol=1e-9)
    # every centre maps back to its own cell
    cell, _ = grid.cell_of(db_cells["lat_center"], db_cells["lon_center"])
    assert (cell == db_cells["cell_id"].to_numpy()).all()


@pytest.mark.parametrize(
    ("table", "row"),
    [
        (
            "ml.forecasts",
            "(target_week, model_name, cell_id, model_version, predicted, rank, is_production,"
            " history_through, horizon_weeks)"
            " VALUES ('2024-01-08', 'm', :cell, 'v', 0, 1, false, '2024-01-01', 1)",
        ),
        (
            "ml.forecast_errors",
            "(target_week, model_name, cell_id, model_version, is_production, predicted, actual,"
            " error) VALUES ('2024-01-08', 'm', :cell, 'v', false, 0, 0, 0)",
        ),
        ("grid.weekly", "(week_start, cell_id) VALUES ('2024-01-08', :cell)"),
        (
            "raw.crime_records",
            "(source, record_id, incident_id, series, occurred_at, reported_at, week_start,"
            " lat, lon, cell_id, offense_codes, is_violent, payload) VALUES ('t', 'cell-check',"
            " 'cell-check', 'legacy', '2024-01-08', '2024-01-08', '2024-01-08', 34, -118,"
            " :cell, '{110}', true, '{}')",
        ),
    ],
)
def test_rows_of_the_weekly_tables_name_a_cell_of_the_grid(clean_db, table, row):
    """A range check, not a foreign key (migrations 283, 288): the grid is fixed, and a
    key lookup per row more than doubled the COPY of a week's 40,500 forecast rows (and
    validating it cost a full join at the end of a million-row CSV import)."""
    for cell in (-1, 4500):
        with pytest.raises(sa.exc.IntegrityError, match="cell_id_in_grid"):
            with clean_db.begin() as conn:
                conn.execute(sa.text(f"INSERT INTO {table} {row}"), {"cell": cell})
    with clean_db.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {table} {row}"), {"cell": 4499})
        conn.execute(sa.text(f"DELETE FROM {table} WHERE cell_id = 4499"))


def test_corners_and_boundaries_follow_the_design_formula():
    cell, reason = grid.cell_of(
        [34.3373, 33.7037, 33.7037, 34.3373, 34.0, 34.0],
        [-118.6682, -118.1553, -118.6682, -118.1553, -118.6683, -118.1552],
    )
    assert list(cell[:4]) == [0, 4499, 59 * 75, 74]  # NW, SE, SW, NE corners
    assert list(reason[4:]) == [grid.OUTSIDE_GRID, grid.OUTSIDE_GRID]


def test_cell_formula_is_the_literal_float64_expression():
    rng = np.random.default_rng(7)
    lat = rng.uniform(33.7037, 34.3373, 10_000)
    lon = rng.uniform(-118.6682, -118.1553, 10_000)
    cell, _ = grid.cell_of(lat, lon)
    row = np.floor((34.3373 - lat) / ((34.3373 - 33.7037) / 60))
    col = np.floor((lon + 118.6682) / ((-118.1553 + 118.6682) / 75))
    expected = np.minimum(row, 59) * 75 + np.minimum(col, 74)
    assert (cell == expected).all()


def test_missing_and_zero_coordinates_are_missing_location():
    cell, reason = grid.cell_of([0.0, np.nan, 34.0], [0.0, -118.3, np.nan])
    assert list(cell) == [-1, -1, -1]
    assert set(reason) == {grid.MISSING_LOCATION}
