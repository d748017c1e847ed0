"""Cells to LAPD divisions: the area most of a cell's incidents carry, refreshed by aggregation."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob.dbcopy import copy_frame
from crimejob.grid import cells as grid
from crimejob.grid.aggregate import aggregate_weeks
from crimejob.grid.cell_areas import load_cell_areas
from crimejob.ingest.crime_ingest import ingest_crime_csv
from tests.test_aggregate import crime_rows

W1, W2 = date(2024, 1, 1), date(2024, 1, 8)
# Two points in one cell, and one in another cell far away.
HERE = {"lat": 34.0501, "lon": -118.2501}
THERE = {"lat": 33.9601, "lon": -118.2901}
COLUMNS = [
    "source", "record_id", "incident_id", "series", "occurred_at", "reported_at",
    "week_start", "lat", "lon", "cell_id", "offense_codes", "is_violent", "payload",
]  # fmt: skip


def cell(point: dict) -> int:
    return int(grid.cell_of([point["lat"]], [point["lon"]])[0][0])


def record(n: int, point: dict, area, name, week=W1, source="2nrs-mtv8", incident=None) -> dict:
    payload = {"dr_no": f"R{n}"}
    if area is not None:
        payload["area"] = area
    if name is not None:
        payload["area_name"] = name
    return {"record_id": f"R{n}", "incident_id": incident or f"R{n}", "source": source,
            "occurred": week + timedelta(days=n % 7), "codes": ["330"], "violent": False,
            **point, "payload": payload}  # fmt: skip


def insert(engine, rows: list[dict]) -> None:
    frame = crime_rows(rows)
    frame["payload"] = [json.dumps(r["payload"]) for r in rows]
    with engine.begin() as conn:
        copy_frame(conn, frame, "raw.crime_records", COLUMNS)


def areas(engine) -> pd.DataFrame:
    return load_cell_areas(engine).set_index("cell_id")


def test_a_cell_belongs_to_the_area_most_of_its_incidents_carry(clean_db):
    rows = [record(i, HERE, "01", "Central") for i in range(3)]
    rows += [record(10 + i, HERE, "13", "Newton") for i in range(2)]
    rows += [record(20, THERE, "12", "77th Street")]
    insert(clean_db, rows)
    report = aggregate_weeks(clean_db, W1, W1)
    got = areas(clean_db)
    assert report.cells_with_division == 2
    assert got.loc[cell(HERE)].to_dict() == {
        "area_code": 1, "area_name": "Central", "incidents": 3, "share": 0.6,
    }  # fmt: skip
    assert got.loc[cell(THERE), ["area_code", "area_name", "share"]].tolist() == [
        12, "77th Street", 1.0,
    ]  # fmt: skip


def test_cells_lapd_never_recorded_belong_to_no_division(clean_db):
    insert(clean_db, [record(1, HERE, "01", "Central")])
    aggregate_weeks(clean_db, W1, W2)
    got = areas(clean_db)
    assert list(got.index) == [cell(HERE)]
    with clean_db.connect() as conn:
        view = conn.execute(sa.text("SELECT count(*) FROM bi.cell_divisions")).scalar_one()
    assert view == 1


def test_a_tie_goes_to_the_lower_area_code(clean_db):
    insert(clean_db, [record(1, HERE, "14", "Pacific"), record(2, HERE, "08", "West LA")])
    aggregate_weeks(clean_db, W1, W1)
    assert areas(clean_db).loc[cell(HERE), ["area_code", "share"]].tolist() == [8, 0.5]


def test_counts_add_up_over_weeks_and_a_nibrs_case_counts_once(clean_db):
    rows = [record(1, HERE, "20", "Olympic", week=W1), record(2, HERE, "20", "Olympic", week=W2)]
    # one NIBRS case, three offense records: one incident
    rows += [
        record(30 + k, HERE, "7", "Wilshire", week=W2, source="k7nn-b2ep", incident="C9")
        for k in range(3)
    ]
    # two Wilshire incidents in W2 would beat Olympic's if the case counted three times
    insert(clean_db, rows)
    aggregate_weeks(clean_db, W1, W2)
    got = areas(clean_db).loc[cell(HERE)]
    assert (got["area_code"], got["incidents"]) == (20, 2)
    assert got["share"] == 2 / 3


def test_unusable_area_fields_are_ignored_and_names_take_the_common_spelling(clean_db):
    rows = [record(1, HERE, "abc", "Central"), record(2, HERE, None, "Central")]
    rows += [record(3, THERE, "15", "N Hollywood"), record(4, THERE, "15", "N Hollywood")]
    rows += [record(5, THERE, "15", "North Hollywood")]
    insert(clean_db, rows)
    aggregate_weeks(clean_db, W1, W1)
    got = areas(clean_db)
    assert cell(HERE) not in got.index  # no usable area: no division
    assert got.loc[cell(THERE), ["area_code", "area_name", "incidents"]].tolist() == [
        15, "N Hollywood", 3,
    ]  # fmt: skip


def test_re_aggregating_a_week_replaces_its_counts_instead_of_adding(clean_db):
    insert(clean_db, [record(1, HERE, "01", "Central"), record(2, HERE, "02", "Rampart")])
    aggregate_weeks(clean_db, W1, W1)
    first = areas(clean_db)
    aggregate_weeks(clean_db, W1, W1)
    pd.testing.assert_frame_equal(areas(clean_db), first)
    # a late correction moves one record to Rampart: the week is recounted, not added to
    with clean_db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE raw.crime_records SET payload = payload::jsonb || CAST(:patch AS jsonb) "
                "WHERE record_id = 'R1'"
            ),
            {"patch": json.dumps({"area": "02"})},
        )
    aggregate_weeks(clean_db, W1, W1)
    assert areas(clean_db).loc[cell(HERE), ["area_code", "incidents", "share"]].tolist() == [
        2, 2, 1.0,
    ]  # fmt: skip


def test_the_real_2020_export_maps_each_cell_to_its_most_common_area(clean_db, shared_data):
    """The real portal rows: the table agrees with the mode of AREA per cell computed here."""
    path = shared_data / "lapd_legacy_prefix10000_2020_noWestLA.csv.gz"
    ingest_crime_csv(clean_db, path)
    aggregate_weeks(clean_db, date(2019, 12, 30), date(2021, 1, 3))
    frame = pd.read_csv(path, dtype=str)
    frame["cell_id"], _ = grid.cell_of(frame["LAT"].astype(float), frame["LON"].astype(float))
    frame = frame[frame["cell_id"] >= 0].drop_duplicates("DR_NO")
    frame["area"] = frame["AREA"].astype(int)
    counts = frame.groupby(["cell_id", "area"]).size().rename("n").reset_index()
    counts = counts.sort_values(["cell_id", "n", "area"], ascending=[True, False, True])
    expected = counts.drop_duplicates("cell_id").set_index("cell_id")
    totals = counts.groupby("cell_id")["n"].sum()
    got = areas(clean_db)
    assert len(got) == len(expected) > 400
    assert (got["area_code"] == expected["area"]).all()
    assert (got["incidents"] == expected["n"]).all()
    np.testing.assert_allclose(got["share"], expected["n"] / totals)
    # the export has no West LA rows (removed): no cell may claim that division
    assert 8 not in set(got["area_code"])
    assert set(got["area_name"]) <= {lapd_name.strip() for lapd_name in frame["AREA NAME"]}


def test_bi_tools_read_the_mapping_and_only_through_bi(clean_db, database_url):
    insert(clean_db, [record(1, HERE, "01", "Central")])
    aggregate_weeks(clean_db, W1, W1)
    bi = sa.create_engine(sa.engine.make_url(database_url).set(username="crimejob_bi"))
    try:
        with bi.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM bi.cell_divisions")).mappings().all()
            assert [dict(r) for r in rows] == [
                {"cell_id": cell(HERE), "area_code": 1, "area_name": "Central",
                 "incidents": 1, "share": 1.0}
            ]  # fmt: skip
        with bi.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission"):
            conn.execute(sa.text("SELECT * FROM grid.cell_areas"))
    finally:
        bi.dispose()
