"""Crime ingest end to end: a local SODA server or a portal CSV into a real PostgreSQL.

What must hold: usable records land once, keyed on the source's natural key;
unusable ones are kept in ops.rejects with their reason and raw payload; a
rerun changes nothing; a failing source writes nothing.
"""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob import cli
from crimejob.errors import SourceError
from crimejob.grid.cells import cell_of
from crimejob.grid.weeks import week_start
from crimejob.ingest.crime_ingest import ingest_crime_api, ingest_crime_csv, load_crime_records
from crimejob.ingest.sources.lapd import LEGACY_VIOLENT_CODES, NIBRS_VIOLENT_CODES
from tests.fakes.server import Fault
from tests.fakes.soda import (
    LEGACY_ID,
    NIBRS_2024_ID,
    NIBRS_2026_ID,
    legacy_frame,
    make_legacy_records,
    make_nibrs_records,
    soda_server,
    write_portal_csv,
)

WEEK = (date(2023, 1, 2), date(2023, 1, 8))


@pytest.fixture(autouse=True)
def fast_http(monkeypatch):
    monkeypatch.setenv("CRIMEJOB_SODA_PAGE_SIZE", "200")
    monkeypatch.setenv("CRIMEJOB_HTTP_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("CRIMEJOB_HTTP_BACKOFF_MAX", "0.01")


def _rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def _scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def _snapshot(engine) -> list:
    return _rows(
        engine,
        "SELECT source, record_id, "
        "raw.crime_payload(payload, csv_layout, csv_fields, csv_line)::text, "
        "week_start, cell_id, updated_at FROM raw.crime_records ORDER BY 1, 2",
    )


def _expected_rejects(records: list[dict]) -> dict[str, str]:
    """dr_no -> reason, computed from the coordinates alone (the generator's faults)."""
    lat = [float(r["lat"]) for r in records]
    lon = [float(r["lon"]) for r in records]
    _, reason = cell_of(lat, lon)
    return {r["dr_no"]: why for r, why in zip(records, reason, strict=True) if why}


def test_api_ingest_loads_usable_records_and_keeps_rejects(clean_db):
    records = make_legacy_records(400, *WEEK, seed=5, missing_location=0.03, outside_grid=0.03)
    expected_rejects = _expected_rejects(records)
    assert {"missing_location", "outside_grid"} <= set(expected_rejects.values())

    with soda_server({LEGACY_ID: records}):
        report = ingest_crime_api(clean_db, *WEEK, datasets=[LEGACY_ID])

    usable = len(records) - len(expected_rejects)
    assert (report.fetched, report.loaded, report.updated, report.unchanged) == (400, usable, 0, 0)
    assert dict(report.rejected) == dict(pd.Series(expected_rejects).value_counts())
    assert _scalar(clean_db, "SELECT count(*) FROM raw.crime_records") == usable
    stored = dict(_rows(clean_db, "SELECT record_key, reason FROM ops.rejects"))
    assert stored == expected_rejects
    payloads = _rows(clean_db, "SELECT record_key, payload FROM ops.rejects")
    by_key = {r["dr_no"]: r for r in records}
    assert all(payload == by_key[key] for key, payload in payloads)


def test_loaded_rows_follow_the_source_record(clean_db):
    records = make_legacy_records(200, *WEEK, seed=6)
    with soda_server({LEGACY_ID: records}):
        report = ingest_crime_api(clean_db, *WEEK, datasets=[LEGACY_ID])
    rows = {
        r.record_id: r
        for r in _rows(
            clean_db,
            "SELECT record_id, incident_id, series, occurred_at, reported_at, week_start, "
            "lat, lon, cell_id, offense_codes, is_violent, payload FROM raw.crime_records",
        )
    }
    assert len(rows) == 200
    for record in records:
        row = rows[record["dr_no"]]
        occurred = pd.Timestamp(record["date_occ"]) + pd.Timedelta(
            hours=int(record["time_occ"][:2]), minutes=int(record["time_occ"][2:])
        )
        assert row.occurred_at == occurred.to_pydatetime()
        assert row.reported_at.date() == date.fromisoformat(record["date_rptd"][:10])
        assert row.week_start == week_start(occurred.date())
        assert row.incident_id == record["dr_no"] and row.series == "legacy"
        assert (row.lat, row.lon) == (float(record["lat"]), float(record["lon"]))
        assert row.cell_id == cell_of([row.lat], [row.lon])[0][0]
        codes = [record[f] for f in ("crm_cd", "crm_cd_1", "crm_cd_2") if f in record]
        assert row.offense_codes == list(dict.fromkeys(codes))
        assert row.is_violent == bool(set(codes) & LEGACY_VIOLENT_CODES)
        assert row.payload == record
    assert report.weeks_touched == {r.week_start for r in rows.values()}


def test_rerunning_the_same_ingest_changes_nothing(clean_db):
    records = make_legacy_records(300, *WEEK, seed=7, missing_location=0.02)
    with soda_server({LEGACY_ID: records}):
        first = ingest_crime_api(clean_db, *WEEK, datasets=[LEGACY_ID])
        before = _snapshot(clean_db)
        rejects_before = _rows(clean_db, "SELECT reject_id, record_key, reason FROM ops.rejects")
        again = ingest_crime_api(clean_db, *WEEK, datasets=[LEGACY_ID])
    assert (again.loaded, again.updated, again.unchanged) == (0, 0, first.loaded)
    assert again.rejected == first.rejected
    assert again.weeks_touched == set()
    assert _snapshot(clean_db) == before
    assert _rows(clean_db, "SELECT reject_id, record_key, reason FROM ops.rejects") == (
        rejects_before
    )


def test_a_corrected_record_is_updated_and_both_its_weeks_are_touched(clean_db):
    records = make_legacy_records(100, *WEEK, seed=8, late_share=0.0)
    with soda_server({LEGACY_ID: records}) as server:
        ingest_crime_api(clean_db, *WEEK, datasets=[LEGACY_ID])
        moved, recoded = copy.deepcopy(records[0]), copy.deepcopy(records[1])
        old_week = week_start(moved["date_occ"])
        moved["date_occ"] = "2022-06-15T00:00:00.000"  # a date corrected months back
        recoded["crm_cd"] = recoded["crm_cd_1"] = "110"
        server.app.datasets[LEGACY_ID] = [moved, recoded, *records[2:]]
        report = ingest_crime_api(clean_db, *WEEK, datasets=[LEGACY_ID])
    assert (report.loaded, report.updated, report.unchanged) == (0, 2, 98)
    assert {old_week, date(2022, 6, 13), week_start(recoded["date_occ"])} == report.weeks_touched
    row = _rows(
        clean_db,
        "SELECT week_start, is_violent FROM raw.crime_records WHERE record_id = :k",
        k=recoded["dr_no"],
    )[0]
    assert row.is_violent is True


def test_unusable_records_are_rejected_with_their_reason(clean_db):
    base = make_legacy_records(8, *WEEK, seed=9)
    bad = copy.deepcopy(base)
    bad[0]["date_occ"] = "2023-13-45T00:00:00.000"
    bad[1]["time_occ"] = "2575"
    del bad[2]["crm_cd"], bad[2]["crm_cd_1"]
    bad[2].pop("crm_cd_2", None)
    bad[3]["crm_cd"] = bad[3]["crm_cd_1"] = "ABC"
    del bad[4]["dr_no"]
    bad[5]["lat"], bad[5]["lon"] = "0", "0"
    del bad[6]["lat"]
    bad[7]["lat"], bad[7]["lon"] = "34.1000", "-118.1000"
    report = load_crime_records(clean_db, [(LEGACY_ID, bad)])
    assert dict(report.rejected) == {
        "bad_date": 2, "missing_code": 1, "unknown_code": 1, "missing_key": 1,
        "missing_location": 2, "outside_grid": 1,
    }  # fmt: skip
    assert report.loaded == 0
    rows = _rows(clean_db, "SELECT reason, detail, payload FROM ops.rejects ORDER BY reason")
    details = {(r.reason, r.detail) for r in rows}
    assert ("bad_date", "date_occ=2023-13-45T00:00:00.000") in details
    assert ("bad_date", "time_occ=2575") in details
    assert ("unknown_code", "crm_cd=ABC") in details
    # The record without a key is kept whole under the md5 of its payload.
    keyless = [r.payload for r in rows if r.reason == "missing_key"]
    assert keyless == [bad[4]]


def test_a_record_rejected_before_and_fixed_now_is_loaded_and_its_reject_resolved(clean_db):
    records = make_legacy_records(5, *WEEK, seed=10)
    broken = copy.deepcopy(records)
    broken[0]["lat"], broken[0]["lon"] = "0", "0"
    first = load_crime_records(clean_db, [(LEGACY_ID, broken)])
    assert first.rejected == {"missing_location": 1} and first.loaded == 4
    second = load_crime_records(clean_db, [(LEGACY_ID, records)])
    assert (second.loaded, second.unchanged, second.rejected_total) == (1, 4, 0)
    assert _scalar(clean_db, "SELECT count(*) FROM ops.rejects") == 0


def test_a_key_twice_in_one_batch_keeps_the_last_and_rejects_the_first(clean_db):
    records = make_legacy_records(3, *WEEK, seed=11)
    older = copy.deepcopy(records[0])
    older["status"] = "IC"
    records[0]["status"] = "AA"
    report = load_crime_records(clean_db, [(LEGACY_ID, [older, *records])])
    assert report.loaded == 3 and report.rejected == {"duplicate_key": 1}
    status = _scalar(
        clean_db,
        "SELECT payload->>'status' FROM raw.crime_records WHERE record_id = :k",
        k=records[0]["dr_no"],
    )
    assert status == "AA"


def test_nibrs_offenses_load_per_record_and_an_incident_is_violent_if_any_offense_is(clean_db):
    records = make_nibrs_records(150, date(2026, 1, 5), date(2026, 1, 11), dataset=NIBRS_2026_ID)
    with soda_server({NIBRS_2026_ID: records}):
        report = ingest_crime_api(clean_db, date(2026, 1, 5), date(2026, 1, 11))
    assert report.loaded == len(records) and report.rejected_total == 0
    incidents = {
        r.incident_id: r
        for r in _rows(
            clean_db,
            "SELECT incident_id, series, is_violent, offense_records FROM raw.incidents "
            "WHERE source = :s",
            s=NIBRS_2026_ID,
        )
    }
    by_case: dict[str, list[str]] = {}
    for r in records:
        by_case.setdefault(r["caseno"], []).append(r["nibr_code"])
    assert set(incidents) == set(by_case)
    for case, codes in by_case.items():
        assert incidents[case].is_violent == bool(set(codes) & NIBRS_VIOLENT_CODES)
        assert incidents[case].offense_records == len(codes)
        assert incidents[case].series == "nibrs"
    mixed = [c for c, codes in by_case.items() if len(set(codes) & NIBRS_VIOLENT_CODES) == 1
             and len(codes) > 1]  # fmt: skip
    assert mixed, "the generator should produce incidents mixing violent and other offenses"
    # k7nn-b2ep dates that carry the time of day keep it
    with_time = next(r for r in records if not r["date_occ"].endswith("T00:00:00.000"))
    occurred = _scalar(
        clean_db,
        "SELECT occurred_at FROM raw.crime_records WHERE record_id = :k",
        k=with_time["uniquenibrno"],
    )
    assert occurred == pd.Timestamp(with_time["date_occ"]).to_pydatetime()


def test_y8y3_records_load_with_their_coordinates(clean_db):
    records = make_nibrs_records(40, date(2024, 3, 11), date(2024, 3, 17), dataset=NIBRS_2024_ID)
    assert "lat" in records[0] and "hndrdth_lat" not in records[0]
    report = load_crime_records(clean_db, [(NIBRS_2024_ID, records)])
    assert report.loaded == len(records)
    n_cells = _scalar(
        clean_db,
        "SELECT count(DISTINCT cell_id) FROM raw.crime_records WHERE source = :s",
        s=NIBRS_2024_ID,
    )
    assert n_cells > 5


def test_nibrs_offenses_held_by_both_nibrs_datasets_count_once_by_caseno(clean_db):
    # LAPD merged y8y3-fqfu's rows into k7nn-b2ep: a database that read y8y3 before and
    # k7nn now holds the same offenses twice. Incidents are counted by caseno.
    nibrs = make_nibrs_records(60, date(2025, 6, 2), date(2025, 6, 8), dataset=NIBRS_2026_ID)
    y8y3 = []
    for record in nibrs:
        copy_ = {k: v for k, v in record.items() if not k.startswith("hndrdth_")}
        copy_.update(lat=record["hndrdth_lat"], lon=record["hndrdth_lon"])
        copy_["date_occ"] = record["date_occ"][:10] + "T00:00:00.000"  # midnight in y8y3
        y8y3.append(copy_)
    load_crime_records(clean_db, [(NIBRS_2024_ID, y8y3), (NIBRS_2026_ID, nibrs)])
    assert _scalar(clean_db, "SELECT count(*) FROM raw.crime_records") == 2 * len(nibrs)
    cases = {r["caseno"] for r in nibrs}
    incidents = _rows(clean_db, "SELECT incident_id, offense_records FROM raw.incidents")
    assert sorted(i for i, _ in incidents) == sorted(cases)
    per_case = {c: sum(r["caseno"] == c for r in nibrs) for c in cases}
    assert dict(incidents) == per_case

    from crimejob.grid.aggregate import aggregate_weeks

    weeks = sorted({week_start(date.fromisoformat(r["date_occ"][:10])) for r in nibrs})
    aggregate_weeks(clean_db, weeks[0], weeks[-1])
    total = _scalar(clean_db, "SELECT sum(incident_total) FROM grid.weeks")
    assert total == len(cases)


def test_a_2024_transition_window_is_read_from_both_series_and_grid_weeks_keeps_the_mix(
    clean_db,
):
    from crimejob.grid.aggregate import aggregate_weeks
    from tests.fakes.soda import portal_datasets

    first, last = date(2024, 10, 7), date(2024, 11, 3)
    datasets = portal_datasets(first, last, per_week=80, seed=7, missing_location=0.0,
                               junk_dates=0.0)  # fmt: skip
    assert datasets[LEGACY_ID] and datasets[NIBRS_2026_ID]
    with soda_server(datasets) as server:
        ingest_crime_api(clean_db, first, last)
    asked = {p for p, _, _ in server.requests}
    assert asked == {f"/resource/{LEGACY_ID}.json", f"/resource/{NIBRS_2026_ID}.json"}
    weeks = [first + timedelta(weeks=i) for i in range(4)]
    aggregate_weeks(clean_db, weeks[0], weeks[-1])
    expected: dict = {}
    for series, records, key in (("legacy", datasets[LEGACY_ID], "dr_no"),
                                 ("nibrs", datasets[NIBRS_2026_ID], "caseno")):  # fmt: skip
        for r in records:
            week = week_start(date.fromisoformat(r["date_occ"][:10]))
            expected.setdefault((week, series), set()).add(r[key])
    rows = _rows(
        clean_db,
        "SELECT week_start, series, legacy_incidents, nibrs_incidents, incident_total "
        "FROM grid.weeks ORDER BY week_start",
    )
    assert [r.week_start for r in rows] == weeks
    for row in rows:
        legacy = len(expected.get((row.week_start, "legacy"), ()))
        nibrs = len(expected.get((row.week_start, "nibrs"), ()))
        assert (row.legacy_incidents, row.nibrs_incidents) == (legacy, nibrs)
        assert row.incident_total == legacy + nibrs
        assert legacy > 0 and nibrs > 0  # the ramp: both series carry the week
        assert row.series == ("legacy" if legacy > nibrs else "nibrs")


def test_a_source_failing_after_retries_fails_the_ingest_and_writes_nothing(clean_db):
    legacy = make_legacy_records(50, date(2024, 3, 1), date(2024, 3, 6), seed=12)
    nibrs = make_nibrs_records(30, date(2024, 3, 7), date(2024, 3, 13), dataset=NIBRS_2026_ID)
    with soda_server({LEGACY_ID: legacy, NIBRS_2026_ID: nibrs}) as server:
        server.add_faults(f"/resource/{NIBRS_2026_ID}.json", *[Fault(status=503)] * 3)
        with pytest.raises(SourceError, match=NIBRS_2026_ID):
            ingest_crime_api(clean_db, date(2024, 3, 1), date(2024, 3, 13))
    assert _scalar(clean_db, "SELECT count(*) FROM raw.crime_records") == 0
    assert _scalar(clean_db, "SELECT count(*) FROM ops.rejects") == 0
    run = _rows(clean_db, "SELECT kind, status, message FROM ops.runs")
    assert [(r.kind, r.status) for r in run] == [("ingest_crime", "failed")]
    assert "503" in run[0].message


def test_every_ingest_is_recorded_in_ops_runs(clean_db):
    records = make_legacy_records(20, *WEEK, seed=13)
    with soda_server({LEGACY_ID: records}):
        report = ingest_crime_api(clean_db, *WEEK, datasets=[LEGACY_ID])
    (run,) = _rows(clean_db, "SELECT kind, status, params, counts, finished_at FROM ops.runs")
    assert (run.kind, run.status) == ("ingest_crime", "succeeded")
    assert run.params == {"start": "2023-01-02", "end": "2023-01-08", "datasets": [LEGACY_ID]}
    assert run.counts["loaded"] == report.loaded == 20
    assert run.finished_at is not None


# --- the portal CSV export --------------------------------------------------------


def test_csv_import_loads_both_date_formats_identically(clean_db, tmp_path):
    frame = legacy_frame(600, date(2021, 1, 4), date(2021, 3, 28), seed=14, missing_location=0.02)
    portal = write_portal_csv(frame, tmp_path / "export.csv")
    resaved = write_portal_csv(frame, tmp_path / "resaved.csv.gz", spreadsheet=True)
    assert "12:00:00 AM" in portal.read_text().splitlines()[1]

    report = ingest_crime_csv(clean_db, portal)
    rejected = report.rejected_total
    assert rejected > 0 and report.rejected == {"missing_location": rejected}
    assert report.loaded == 600 - rejected
    mapped = _rows(
        clean_db,
        "SELECT record_id, occurred_at, reported_at, week_start, cell_id, offense_codes "
        "FROM raw.crime_records ORDER BY record_id",
    )
    clean_db_truncate(clean_db)
    again = ingest_crime_csv(clean_db, resaved)
    assert (again.loaded, again.rejected) == (report.loaded, report.rejected)
    assert (
        _rows(
            clean_db,
            "SELECT record_id, occurred_at, reported_at, week_start, cell_id, offense_codes "
            "FROM raw.crime_records ORDER BY record_id",
        )
        == mapped
    )


def clean_db_truncate(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE raw.crime_records, ops.rejects, ops.runs"))


def test_csv_payloads_match_the_api_so_the_same_record_reads_unchanged(clean_db, tmp_path):
    frame = legacy_frame(300, *WEEK, seed=15)
    path = write_portal_csv(frame, tmp_path / "export.csv")
    first = ingest_crime_csv(clean_db, path)
    assert first.loaded == 300
    records = make_legacy_records(300, *WEEK, seed=15)
    with soda_server({LEGACY_ID: records}):
        report = ingest_crime_api(clean_db, *WEEK, datasets=[LEGACY_ID])
    assert (report.loaded, report.updated, report.unchanged) == (0, 0, 300)


def test_a_csv_record_keeps_its_row_as_text_and_reads_as_the_api_payload(clean_db, tmp_path):
    """Migration 280: the export's line is stored as written (csv_line, named by its
    layout), no jsonb is built on import, and the payload read back is the API's record."""
    frame = legacy_frame(300, *WEEK, seed=15)
    path = write_portal_csv(frame, tmp_path / "export.csv")
    ingest_crime_csv(clean_db, path)
    stored = _rows(
        clean_db,
        "SELECT count(*) FILTER (WHERE payload IS NULL), count(csv_line), "
        "count(DISTINCT csv_layout) FROM raw.crime_records",
    )
    assert stored == [(300, 300, 1)]
    lines = set(path.read_text().splitlines()[1:])
    assert set(r for (r,) in _rows(clean_db, "SELECT csv_line FROM raw.crime_records")) == lines
    by_key = {r["dr_no"]: r for r in make_legacy_records(300, *WEEK, seed=15)}
    read = dict(_rows(clean_db, "SELECT record_id, payload FROM raw.crime_record_payloads"))
    assert read == by_key
    # the function gives the same payload, and a field reads without building it
    (same,) = _rows(
        clean_db,
        "SELECT bool_and(raw.crime_payload(r.payload, r.csv_layout, r.csv_fields, r.csv_line) "
        "= p.payload AND raw.crime_csv_field(r.csv_line, array_position(l.keys, 'area')) "
        "IS NOT DISTINCT FROM "
        "p.payload ->> 'area') "
        "FROM raw.crime_records AS r JOIN raw.crime_csv_layouts AS l ON l.layout_id = r.csv_layout "
        "JOIN raw.crime_record_payloads AS p USING (source, record_id)",
    )
    assert same == (True,)


def _table_definition(engine) -> list:
    return _rows(
        engine,
        "SELECT 'c', conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'raw.crime_records'::regclass "
        "UNION ALL SELECT 'i', indexrelid::regclass::text, pg_get_indexdef(indexrelid) "
        "FROM pg_index WHERE indrelid = 'raw.crime_records'::regclass ORDER BY 1, 2",
    )


def test_a_csv_into_an_empty_table_keeps_its_indexes_and_constraints(clean_db, tmp_path):
    before = _table_definition(clean_db)
    assert any(name == "crime_records_cell_id_in_grid" for _, name, _ in before)
    assert sum(kind == "i" for kind, _, _ in before) >= 3
    path = write_portal_csv(legacy_frame(200, *WEEK, seed=21), tmp_path / "export.csv")
    assert ingest_crime_csv(clean_db, path).loaded == 200
    assert _table_definition(clean_db) == before
    steps = _scalar(clean_db, "SELECT step_seconds FROM ops.runs")
    assert set(steps) == {
        "find_and_map", "copy", "encode_beside_copy", "build_indexes",
        "rejects", "total",
    }  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError, match="crime_records_pkey"):
        with clean_db.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO raw.crime_records SELECT * FROM raw.crime_records LIMIT 1")
            )


def test_csv_rerun_of_the_same_file_changes_nothing(clean_db, tmp_path):
    frame = legacy_frame(500, date(2020, 1, 6), date(2020, 6, 28), seed=16, outside_grid=0.02)
    path = write_portal_csv(frame, tmp_path / "export.csv")
    first = ingest_crime_csv(clean_db, path)
    before = _snapshot(clean_db)
    again = ingest_crime_csv(clean_db, path)
    assert (again.loaded, again.updated, again.unchanged) == (0, 0, first.loaded)
    assert again.rejected == first.rejected and again.rejected_total > 0
    assert _snapshot(clean_db) == before


def test_csv_rejects_keep_the_row_as_written_and_say_where_it_was(clean_db, tmp_path):
    frame = legacy_frame(10, *WEEK, seed=17)
    frame.loc[3, "date_rptd"] = "yesterday"
    path = write_portal_csv(frame, tmp_path / "export.csv")
    report = ingest_crime_csv(clean_db, path)
    assert report.rejected == {"bad_date": 1} and report.loaded == 9
    (row,) = _rows(clean_db, "SELECT source, record_key, detail, payload FROM ops.rejects")
    assert row.source == LEGACY_ID and row.record_key == frame.loc[3, "dr_no"]
    assert row.detail == "date_rptd=yesterday (csv:export.csv line 5)"
    line = path.read_text().splitlines()[4]
    assert row.payload["Date Rptd"] == "yesterday" and row.payload["DR_NO"] in line
    assert row.payload["Cross Street"] == ""  # empty fields kept, as in the file


def test_a_csv_that_is_not_a_portal_export_fails_and_writes_nothing(clean_db, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("id,when,where\n1,2020-01-01,LA\n")
    with pytest.raises(SourceError, match=r"not an LAPD portal export: no column\(s\) dr_no"):
        ingest_crime_csv(clean_db, path)
    assert _scalar(clean_db, "SELECT count(*) FROM raw.crime_records") == 0
    assert _scalar(clean_db, "SELECT status FROM ops.runs") == "failed"


def test_a_malformed_csv_fails_naming_the_line_and_writes_nothing(clean_db, tmp_path):
    frame = legacy_frame(300, *WEEK, seed=18)
    path = write_portal_csv(frame, tmp_path / "export.csv")
    with path.open("a") as handle:
        handle.write('999999999,"01/02/2023 12:00:00 AM,unterminated quote\n')
    with pytest.raises(
        SourceError, match=r"export.csv is not a readable CSV file: unterminated CSV quoted field"
    ) as failure:
        ingest_crime_csv(clean_db, path)
    assert "line 303" in str(failure.value)
    assert _scalar(clean_db, "SELECT count(*) FROM raw.crime_records") == 0


def test_a_failure_after_the_merge_rolls_the_whole_file_back(clean_db, tmp_path, monkeypatch):
    from crimejob.ingest import crime_ingest

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    frame = legacy_frame(300, *WEEK, seed=18, missing_location=0.05)
    path = write_portal_csv(frame, tmp_path / "export.csv")
    monkeypatch.setattr(crime_ingest, "_store_csv_rejects", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_crime_csv(clean_db, path)
    assert _scalar(clean_db, "SELECT count(*) FROM raw.crime_records") == 0
    assert _scalar(clean_db, "SELECT status FROM ops.runs") == "failed"


def test_cli_ingest_crime_csv_prints_the_counts(clean_db, tmp_path, capsys):
    frame = legacy_frame(50, *WEEK, seed=19, missing_location=0.1)
    path = write_portal_csv(frame, tmp_path / "export.csv")
    assert cli.main(["ingest", "crime", "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    rejected = _scalar(clean_db, "SELECT count(*) FROM ops.rejects")
    assert rejected > 0
    assert f"csv:export.csv: fetched 50, loaded {50 - rejected}, updated 0" in out
    assert f"rejected missing_location: {rejected}" in out


def test_cli_ingest_crime_api_reports_a_failing_source_in_one_line(clean_db, capsys):
    with soda_server({LEGACY_ID: []}) as server:
        server.add_faults(f"/resource/{LEGACY_ID}.json", *[Fault(status=500)] * 3)
        code = cli.main(
            ["ingest", "crime", "--start", "2023-01-02", "--end", "2023-01-08",
             "--dataset", LEGACY_ID]
        )  # fmt: skip
    assert code == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("crimejob ingest: ") and "failed after 3 attempts" in err


def test_payloads_are_stored_as_json_objects(clean_db):
    records = make_legacy_records(3, *WEEK, seed=20)
    load_crime_records(clean_db, [(LEGACY_ID, records)])
    kinds = _rows(clean_db, "SELECT DISTINCT jsonb_typeof(payload) FROM raw.crime_records")
    assert kinds == [("object",)]
    text = _scalar(clean_db, "SELECT payload::text FROM raw.crime_records LIMIT 1")
    assert all(isinstance(v, str) for v in json.loads(text).values())


def test_an_empty_window_loads_nothing_and_succeeds(clean_db):
    report = load_crime_records(clean_db, [(LEGACY_ID, []), (NIBRS_2026_ID, [])])
    assert (report.fetched, report.loaded, report.rejected_total) == (0, 0, 0)
    assert _scalar(clean_db, "SELECT status FROM ops.runs") == "succeeded"


def test_divisions_read_the_same_from_a_csv_row_as_from_an_api_payload(clean_db, tmp_path):
    """cell_areas reads area and area_name from csv_line without building the payload."""
    from crimejob.grid.cell_areas import refresh_cell_areas

    def areas() -> list:
        with clean_db.begin() as conn:
            refresh_cell_areas(conn, *WEEK)
        return _rows(clean_db, "SELECT * FROM grid.weekly_areas ORDER BY 1, 2, 3")

    frame = legacy_frame(300, *WEEK, seed=15)
    ingest_crime_csv(clean_db, write_portal_csv(frame, tmp_path / "export.csv"))
    from_csv = areas()
    clean_db_truncate(clean_db)
    with soda_server({LEGACY_ID: make_legacy_records(300, *WEEK, seed=15)}):
        ingest_crime_api(clean_db, *WEEK, datasets=[LEGACY_ID])
    assert from_csv and areas() == from_csv


def test_two_imports_of_one_file_into_an_empty_table_at_once_converge(clean_db, tmp_path):
    """Both queue for the empty table (the first for the lock of its load-then-index
    path, the second behind it): the second merges into what the first loaded (all
    unchanged) instead of loading a second copy."""
    import threading
    import time

    path = write_portal_csv(legacy_frame(200, *WEEK, seed=23), tmp_path / "export.csv")
    ingest_crime_csv(clean_db, path)  # registers the header's layout
    clean_db_truncate(clean_db)
    outcomes: list = []

    def run() -> None:
        try:
            outcomes.append(ingest_crime_csv(clean_db, path))
        except Exception as exc:  # noqa: BLE001 - the outcome is the assertion
            outcomes.append(exc)

    def waiting() -> int:
        return _scalar(
            clean_db,
            "SELECT count(*) FROM pg_locks WHERE relation = 'raw.crime_records'::regclass "
            "AND NOT granted",
        )

    with clean_db.connect() as holder:
        holder.exec_driver_sql("BEGIN")
        holder.exec_driver_sql("LOCK TABLE raw.crime_records IN SHARE MODE")
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while waiting() < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert waiting() == 2
        holder.exec_driver_sql("COMMIT")
    for thread in threads:
        thread.join(120)
    assert all(isinstance(o, type(outcomes[0])) for o in outcomes), outcomes
    assert sorted((o.loaded, o.unchanged) for o in outcomes) == [(0, 200), (200, 0)]
    assert _scalar(clean_db, "SELECT count(*) FROM raw.crime_records") == 200


# --- migration 280: the export's line kept as written ---------------------------------


def _csv_text(frame, tmp_path) -> list[str]:
    return write_portal_csv(frame, tmp_path / "base.csv").read_text().splitlines()


@pytest.mark.parametrize("target", ["empty", "filled"])
def test_a_key_on_several_csv_lines_keeps_the_last_line(clean_db, tmp_path, target):
    """Into an empty table (rows copied straight in, earlier copies deleted after) and
    into a filled one (merged): the last line of a key wins, earlier ones are rejected,
    identical repeats included."""
    lines = _csv_text(legacy_frame(20, *WEEK, seed=31), tmp_path)
    if target == "filled":
        first = tmp_path / "first.csv"
        first.write_text("\n".join([lines[0], *lines[15:]]) + "\n")
        assert ingest_crime_csv(clean_db, first).loaded == 6
    changed = lines[3].replace(",IC,Invest Cont,", ",AA,Adult Arrest,")
    assert changed != lines[3]
    body = [lines[3], lines[5], *lines[1:], changed]  # line 3 twice then changed; 5 twice
    path = tmp_path / "dups.csv"
    path.write_text("\n".join([lines[0], *body]) + "\n")
    report = ingest_crime_csv(clean_db, path)
    assert report.rejected == {"duplicate_key": 3}
    before = 6 if target == "filled" else 0
    assert (report.loaded, report.unchanged) == (20 - before, before)
    key = lines[3].split(",")[0]
    stored = _rows(clean_db, "SELECT csv_line FROM raw.crime_records WHERE record_id = :k", k=key)
    assert stored == [(changed,)]
    assert _scalar(clean_db, "SELECT count(*) FROM raw.crime_records") == 20
    (status,) = _rows(
        clean_db,
        "SELECT payload ->> 'status' FROM raw.crime_record_payloads WHERE record_id = :k",
        k=key,
    )
    assert status == ("AA",)
    with pytest.raises(sa.exc.IntegrityError, match="crime_records_pkey"):
        with clean_db.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO raw.crime_records SELECT * FROM raw.crime_records LIMIT 1")
            )


def test_a_revised_csv_line_updates_its_record_and_an_identical_one_does_not(clean_db, tmp_path):
    lines = _csv_text(legacy_frame(10, *WEEK, seed=33), tmp_path)
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n")
    ingest_crime_csv(clean_db, path)
    revised = lines[4].replace(",IC,Invest Cont,", ",AA,Adult Arrest,")
    assert revised != lines[4]
    # a CRLF copy of the same file with one line revised
    path.write_bytes(("\r\n".join([*lines[:4], revised, *lines[5:]]) + "\r\n").encode())
    again = ingest_crime_csv(clean_db, path)
    assert (again.loaded, again.updated, again.unchanged) == (0, 1, 9)
    crs = _scalar(clean_db, "SELECT count(*) FROM raw.crime_records WHERE csv_line LIKE '%\r'")
    assert crs == 0


def test_a_quoted_field_may_hold_commas_quotes_and_line_ends(clean_db, tmp_path):
    """Records are found the way PostgreSQL's COPY reads CSV (a quoted line end does not
    end the record) and the payload splits the stored line the same way."""
    frame = legacy_frame(6, *WEEK, seed=34)
    frame.loc[1, "location"] = 'a "quoted", multi-line\nplace'
    frame.loc[2, "cross_street"] = ""
    frame.loc[3, "premis_desc"] = '"starts with a quote'
    path = write_portal_csv(frame, tmp_path / "export.csv")
    report = ingest_crime_csv(clean_db, path)
    assert report.loaded == 6 and report.rejected_total == 0
    read = dict(_rows(clean_db, "SELECT record_id, payload FROM raw.crime_record_payloads"))
    assert read[frame.loc[1, "dr_no"]]["location"] == 'a "quoted", multi-line\nplace'
    assert "cross_street" not in read[frame.loc[2, "dr_no"]]
    assert read[frame.loc[3, "dr_no"]]["premis_desc"] == '"starts with a quote'
    for record_id, payload in read.items():
        row = frame.loc[frame["dr_no"] == record_id].iloc[0]
        assert payload["area_name"] == row["area_name"]


def test_csv_split_and_timestamps_read_lines_as_the_import_does(clean_db):
    import csv

    from crimejob.ingest.sources.lapd import parse_timestamps

    lines = [
        "a,b,,d",
        'a,"b,c",d',
        '"",x,"y ""z"" w",',
        '"a\nb",c',
        " a , b ",
    ]
    for line in lines:
        split = _scalar(clean_db, "SELECT raw.crime_csv_split(:l)", l=line)
        assert split == next(csv.reader([line], strict=False)), line
    # a quote inside an unquoted field opens a quoted part, as in PostgreSQL's COPY
    assert _scalar(clean_db, "SELECT raw.crime_csv_split(:l)", l='a""b,c') == ["ab", "c"]
    dates = [
        "03/01/2020 12:00:00 AM", "03/01/2020 12:30:05 PM", "3/1/2020 01:02:03 PM",
        "11/6/2022 0:00", "11/6/2022 13:45", "11/6/2022 13:45:10", "11/6/2022",
        " 12/31/2021 11:59:59 PM ", "2020-01-31T00:00:00.000", "2020-01-31", "yesterday",
    ]  # fmt: skip
    expected = parse_timestamps(pd.Series(dates)).dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3]
    for text, want in zip(dates, expected, strict=True):
        got = _scalar(clean_db, "SELECT raw.crime_csv_timestamp(:t)", t=text)
        assert got == (None if pd.isna(want) else want), text


def test_a_record_with_the_wrong_number_of_fields_fails_the_file(clean_db, tmp_path):
    lines = _csv_text(legacy_frame(5, *WEEK, seed=35), tmp_path)
    path = tmp_path / "export.csv"
    path.write_text("\n".join([*lines[:3], lines[3] + ",extra", *lines[4:]]) + "\n")
    with pytest.raises(SourceError, match=r"record 3 \(from line 4\) has 29 fields, the header 28"):
        ingest_crime_csv(clean_db, path)
    assert _scalar(clean_db, "SELECT count(*) FROM raw.crime_records") == 0


def test_fields_of_a_record_over_64_kib_are_counted_exactly(clean_db, tmp_path):
    """Commas are summed per record in 16 bits; a record or quoted span of 64 KiB or more
    is counted again: 65,536 commas too many do not wrap round to the header's count."""
    lines = _csv_text(legacy_frame(5, *WEEK, seed=37), tmp_path)
    path = tmp_path / "export.csv"
    fields = lines[3].split(",")
    fields[-4] = '"' + "a, " * 70_000 + '"'  # LOCATION: 210 kB, 70,000 commas, quoted
    long_quoted = ",".join(fields)
    path.write_text("\n".join([*lines[:3], long_quoted, *lines[4:]]) + "\n")
    assert ingest_crime_csv(clean_db, path).loaded == 5
    wrapped = lines[3] + "," * 65_536  # 28 + 65,536 fields: 28 in 16 bits
    path.write_text("\n".join([*lines[:3], wrapped, *lines[4:]]) + "\n")
    with pytest.raises(SourceError, match=r"record 3 \(from line 4\) has 65564 fields"):
        ingest_crime_csv(clean_db, path)


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 22])
def test_bytes_are_counted_alike_whatever_the_block_size(monkeypatch, block):
    """Quotes, line ends and commas are looked for a block at a time: a span that crosses
    blocks, or holds whole blocks, is counted as one."""
    from crimejob.ingest import crime_ingest

    monkeypatch.setattr(crime_ingest, "_SCAN_BLOCK", block)
    rng = np.random.default_rng(38)
    text = rng.choice(np.frombuffer(b'a,"\n', np.uint8), 5_000, p=[0.5, 0.3, 0.02, 0.18])
    for starts in (np.array([0, 3, 700, 701, 4_000]), np.sort(rng.choice(5_000, 300, False))):
        (counts,) = crime_ingest._span_counts(text, ord(","), starts)
        ends = np.append(starts[1:], len(text))
        expected = [
            np.count_nonzero(text[a:b] == ord(",")) for a, b in zip(starts, ends, strict=True)
        ]
        assert counts.tolist() == expected
    for byte in b'",\n':
        found = crime_ingest._positions(text, byte)
        assert found.tolist() == np.flatnonzero(text == byte).tolist()


def test_a_file_is_read_alike_whatever_the_block_size(tmp_path, monkeypatch):
    from crimejob.ingest import crime_ingest

    path = _export_for_parts(tmp_path)
    data = path.read_bytes()
    whole = crime_ingest.CsvRecords.split(data, path)
    monkeypatch.setattr(crime_ingest, "_SCAN_BLOCK", 101)
    small = crime_ingest.CsvRecords.split(data, path)
    assert (small.starts == whole.starts).all() and (small.ends == whole.ends).all()
    lines = _csv_text(legacy_frame(400, *WEEK, seed=39), tmp_path)
    lines[300] += ",extra"
    with pytest.raises(SourceError, match=r"record 300 \(from line 301\) has 29 fields"):
        crime_ingest.CsvRecords.split(("\n".join(lines) + "\n").encode(), path)


def _export_for_parts(tmp_path, name: str = "export.csv"):
    """An export whose middle falls inside a quoted field that holds line ends, with a key
    repeated across the halves and rejects in both."""
    frame = legacy_frame(400, date(2020, 1, 6), date(2020, 6, 28), seed=23, outside_grid=0.03)
    for row in range(195, 206):  # the file's middle, whatever the exact byte
        frame.loc[row, "location"] = 'FIRST LINE\nSECOND, "QUOTED"\n' + "X" * 400
    frame.loc[390, "dr_no"] = frame.loc[10, "dr_no"]  # the later line keeps the key
    frame.loc[20, "date_rptd"] = "not a date"
    frame.loc[380, "date_rptd"] = "not a date"
    return write_portal_csv(frame, tmp_path / name)


def test_a_large_export_is_mapped_in_two_parts_with_the_result_of_one(tmp_path, monkeypatch):
    from crimejob.ingest import crime_ingest
    from crimejob.ingest.sources import lapd

    path = _export_for_parts(tmp_path)
    adapter = lapd.adapter_for(lapd.LEGACY)
    records, whole = crime_ingest._find_and_map(path, adapter)
    monkeypatch.setattr(crime_ingest, "CSV_PARALLEL_BYTES", 1)
    data = path.read_bytes()
    split = crime_ingest._split_point(data)
    assert split is not None and len(data) // 2 < split < len(data) * 3 // 4
    assert data[:split].count(b'"') % 2 == 0 and data[split - 1 : split] == b"\n"
    assert b'"FIRST LINE\nSECOND' in data[len(data) // 2 - 500 : split]  # skipped quoted line ends
    parted_records, parted = crime_ingest._find_and_map(path, adapter)

    assert (parted_records.starts == records.starts).all()
    assert (parted_records.ends == records.ends).all()
    pd.testing.assert_frame_equal(parted.rejects, whole.rejects)
    pd.testing.assert_frame_equal(parted.good, whole.good)
    assert (parted.earlier == whole.earlier).all() and (parted.stored == whole.stored).all()
    assert parted.rows == whole.rows == 400
    assert whole.earlier.sum() == 1 and len(whole.rejects) >= 2


def test_parts_whose_incidents_differ_keep_each_rows_incident(tmp_path, monkeypatch):
    """A part sends no incident column when every incident is its record; combined with
    a part whose incidents are not, its rows get their records as incidents."""
    from crimejob.ingest import crime_ingest
    from crimejob.ingest.sources import lapd

    path = _export_for_parts(tmp_path)
    data, adapter = path.read_bytes(), lapd.adapter_for(lapd.LEGACY)
    monkeypatch.setattr(crime_ingest, "CSV_PARALLEL_BYTES", 1)
    split = crime_ingest._split_point(data)
    first = crime_ingest._map_part(data, path, adapter, 0, split)
    second = crime_ingest._map_part(data, path, adapter, split)
    assert first.incident_is_record and "incident_id" not in first.good
    in_row_order = np.empty(len(second.keys), dtype=object)
    in_row_order[second.key_order] = second.keys.tolist()
    second.good["incident_id"] = ["case-" + k for k in in_row_order]
    second.incident_is_record = False
    _, mapped = crime_ingest._combine(data, [first, second], path.name)

    assert not mapped.incident_is_record
    first_rows = mapped.good.iloc[: len(first.good)]
    expected = np.empty(len(first.keys), dtype=object)
    expected[first.key_order] = first.keys.tolist()
    assert first_rows["incident_id"].tolist() == expected.tolist()
    assert (
        mapped.good["incident_id"].iloc[len(first.good) :].tolist()
        == second.good["incident_id"].tolist()
    )


def test_a_large_export_imports_the_same_rows_in_two_parts(clean_db, tmp_path, monkeypatch):
    from crimejob.ingest import crime_ingest

    path = _export_for_parts(tmp_path)
    stored = (
        "SELECT source, record_id, incident_id, series, occurred_at, reported_at, week_start, "
        "lat, lon, cell_id, offense_codes, is_violent, csv_layout, csv_line "
        "FROM raw.crime_records ORDER BY source, record_id"
    )
    kept = "SELECT source, record_key, reason, detail, payload FROM ops.rejects ORDER BY 1, 2, 3"
    one = ingest_crime_csv(clean_db, path)
    rows, rejects = _rows(clean_db, stored), _rows(clean_db, kept)
    with clean_db.begin() as conn:
        conn.exec_driver_sql("TRUNCATE raw.crime_records, ops.rejects")
    monkeypatch.setattr(crime_ingest, "CSV_PARALLEL_BYTES", 1)
    two = ingest_crime_csv(clean_db, path)

    assert (two.loaded, two.rejected) == (one.loaded, one.rejected)
    assert _rows(clean_db, stored) == rows and len(rows) == one.loaded
    assert _rows(clean_db, kept) == rejects and len(rejects) == one.rejected_total


def test_an_export_broken_in_its_second_part_is_refused_where_one_process_says(
    clean_db, tmp_path, monkeypatch
):
    from crimejob.ingest import crime_ingest

    path = _export_for_parts(tmp_path)
    lines = path.read_bytes().split(b"\n")
    lines[-40] += b",an extra field"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(SourceError) as whole:
        ingest_crime_csv(clean_db, path)
    monkeypatch.setattr(crime_ingest, "CSV_PARALLEL_BYTES", 1)
    with pytest.raises(SourceError) as parted:
        ingest_crime_csv(clean_db, path)
    assert str(parted.value) == str(whole.value)
    assert "fields" in str(whole.value) and "line" in str(whole.value)
    assert _scalar(clean_db, "SELECT count(*) FROM raw.crime_records") == 0


def test_a_coordinate_that_is_not_a_number_rejects_its_line_only(clean_db, tmp_path):
    """pandas reads coordinates as numbers; a value that is not one (the whole file is then
    read as text) makes that line a reject, as it did before."""
    frame = legacy_frame(20, *WEEK, seed=24)
    frame.loc[3, "lat"] = "north"
    frame.loc[5, "lon"] = "  "
    path = write_portal_csv(frame, tmp_path / "export.csv")
    report = ingest_crime_csv(clean_db, path)
    assert (report.loaded, report.rejected) == (18, {"missing_location": 2})
    details = _rows(clean_db, "SELECT record_key, detail FROM ops.rejects ORDER BY detail")
    assert {key for key, _ in details} == {frame.loc[3, "dr_no"], frame.loc[5, "dr_no"]}
    assert all(detail.startswith("lat,lon=") and "nan" in detail for _, detail in details)


@pytest.mark.parametrize("odd_key", ["200100éü", "7", "  2001000123456789  "])
def test_keys_of_any_length_and_alphabet_are_stored_as_written(clean_db, tmp_path, odd_key):
    """The binary COPY writes ASCII keys straight from numpy; any other key is encoded one
    by one: the stored keys are the file's, stripped, either way."""
    frame = legacy_frame(40, *WEEK, seed=36)
    frame.loc[5, "dr_no"] = odd_key
    path = write_portal_csv(frame, tmp_path / "export.csv")
    report = ingest_crime_csv(clean_db, path)
    assert report.loaded == 40
    stored = {
        r.record_id: r.incident_id
        for r in _rows(clean_db, "SELECT record_id, incident_id FROM raw.crime_records")
    }
    assert set(stored) == {k.strip() for k in frame["dr_no"]}
    assert all(record == incident for record, incident in stored.items())
