"""The LAPD adapters against every real crime file in ../shared/data, and their parsing rules.

Expected values are computed here from the files themselves with the plain
``csv`` module, independently of the pandas mapping under test.
"""

from __future__ import annotations

import csv
import gzip
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob.ingest.crime_ingest import ingest_crime_csv
from crimejob.ingest.sources import lapd

LEGACY_SAMPLES = [
    "lapd_legacy_sample874_2020_portalformat.csv.gz",
    "lapd_legacy_sample1000_2022.csv.gz",
]
CODES_FILE = "lapd_crm_cd_descriptions.csv.gz"
CODE_COLUMNS = ("Crm Cd", "Crm Cd 1", "Crm Cd 2", "Crm Cd 3", "Crm Cd 4")


def _raw_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def _map(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    (chunk,) = list(lapd.read_portal_csv(path))
    return lapd.map_frame(chunk, lapd.ADAPTERS[lapd.LEGACY])


def _occurrence(row: dict) -> datetime:
    """DATE OCC + TIME OCC by hand: either date format, TIME OCC padded or not."""
    day = row["DATE OCC"].split()[0]
    month, dom, year = (int(x) for x in day.split("/"))
    hhmm = int(row["TIME OCC"])
    return datetime(year, month, dom, hhmm // 100, hhmm % 100)


def test_the_shared_data_folder_holds_the_crime_files_these_tests_read(shared_data):
    present = {p.name for p in shared_data.glob("lapd_*.csv.gz")}
    assert {*LEGACY_SAMPLES, CODES_FILE} <= present


@pytest.mark.parametrize("name", LEGACY_SAMPLES)
def test_every_row_of_a_legacy_sample_maps_or_is_rejected_for_its_coordinates(shared_data, name):
    raw = _raw_rows(shared_data / name)
    mapped, reason = _map(shared_data / name)
    at_zero = {r["DR_NO"] for r in raw if float(r["LAT"]) == 0 and float(r["LON"]) == 0}
    assert len(mapped) == len(raw)
    assert dict(zip(mapped["record_id"], reason, strict=True)) == {
        r["DR_NO"]: ("missing_location" if r["DR_NO"] in at_zero else "") for r in raw
    }


def test_the_2020_sample_has_exactly_two_rows_at_zero_zero(shared_data):
    _, reason = _map(shared_data / LEGACY_SAMPLES[0])
    assert reason.value_counts().to_dict() == {"": 872, "missing_location": 2}


@pytest.mark.parametrize("name", LEGACY_SAMPLES)
def test_violent_flags_match_a_count_from_the_crime_code_columns(shared_data, name):
    raw = _raw_rows(shared_data / name)
    mapped, _ = _map(shared_data / name)
    expected = {
        r["DR_NO"]: any(r[c].strip() in lapd.LEGACY_VIOLENT_CODES for c in CODE_COLUMNS)
        for r in raw
    }
    got = dict(zip(mapped["record_id"], mapped["is_violent"], strict=True))
    assert got == expected
    assert 0 < sum(expected.values()) < len(raw)


@pytest.mark.parametrize("name", LEGACY_SAMPLES)
def test_occurrence_times_and_weeks_come_from_date_occ_and_time_occ(shared_data, name):
    raw = _raw_rows(shared_data / name)
    mapped, _ = _map(shared_data / name)
    occurred = dict(zip(mapped["record_id"], mapped["occurred_at"], strict=True))
    weeks = dict(zip(mapped["record_id"], mapped["week_start"], strict=True))
    for row in raw:
        when = _occurrence(row)
        assert occurred[row["DR_NO"]] == pd.Timestamp(when)
        assert weeks[row["DR_NO"]].date() == when.date() - timedelta(days=when.weekday())


def test_unpadded_times_in_the_2022_sample_read_as_hours_and_minutes(shared_data):
    raw = _raw_rows(shared_data / LEGACY_SAMPLES[1])
    short = [r for r in raw if len(r["TIME OCC"]) < 4]
    assert short, "the spreadsheet re-save strips leading zeros"
    mapped, _ = _map(shared_data / LEGACY_SAMPLES[1])
    occurred = dict(zip(mapped["record_id"], mapped["occurred_at"], strict=True))
    for row in short:
        value = int(row["TIME OCC"])
        assert (occurred[row["DR_NO"]].hour, occurred[row["DR_NO"]].minute) == divmod(value, 100)


def test_late_reports_in_the_2022_sample_keep_their_occurrence_week(shared_data):
    mapped, _ = _map(shared_data / LEGACY_SAMPLES[1])
    late = mapped[mapped["reported_at"].dt.year > 2022]
    assert len(late) > 0
    assert (late["occurred_at"].dt.year == 2022).all()
    assert (late["week_start"] <= pd.Timestamp("2022-12-26")).all()
    report_week = late["reported_at"] - pd.to_timedelta(late["reported_at"].dt.day_of_week, "D")
    weeks_late = late["reported_at"] - late["occurred_at"] >= pd.Timedelta(days=7)
    assert weeks_late.sum() > 0
    assert (late.loc[weeks_late, "week_start"] < report_week[weeks_late]).all()


@pytest.mark.parametrize("name", LEGACY_SAMPLES)
def test_report_dates_parse_in_either_portal_format(shared_data, name):
    raw = _raw_rows(shared_data / name)
    mapped, _ = _map(shared_data / name)
    reported = dict(zip(mapped["record_id"], mapped["reported_at"], strict=True))
    for row in raw:
        month, dom, year = (int(x) for x in row["Date Rptd"].split()[0].split("/"))
        assert reported[row["DR_NO"]] == pd.Timestamp(year, month, dom)


def test_the_code_table_reads_140_distinct_codes_without_its_header(shared_data):
    table = lapd.read_crime_codes(shared_data / CODES_FILE)
    with gzip.open(shared_data / CODES_FILE, "rt") as handle:
        lines = handle.read().splitlines()
    assert len(table) == len(lines) - 1 == 140
    assert table["crm_cd"].is_unique
    assert "Crm Cd" not in set(table["crm_cd"])


def test_a_header_repeated_as_a_data_row_is_dropped(shared_data, tmp_path):
    lines = gzip.open(shared_data / CODES_FILE, "rt").read().splitlines()
    doubled = tmp_path / "codes.csv"
    doubled.write_text("\n".join([lines[0], *lines[1:70], lines[0], *lines[70:]]) + "\n")
    table = lapd.read_crime_codes(doubled)
    assert len(table) == 140 and "Crm Cd" not in set(table["crm_cd"])


def test_every_real_crime_code_is_accepted_and_every_violent_code_is_real(shared_data):
    table = lapd.read_crime_codes(shared_data / CODES_FILE)
    records = pd.DataFrame(
        {
            "dr_no": [f"2001{i:05d}" for i in range(len(table))],
            "date_rptd": "2020-01-03T00:00:00.000",
            "date_occ": "2020-01-02T00:00:00.000",
            "time_occ": "1200",
            "crm_cd": table["crm_cd"],
            "lat": "34.05",
            "lon": "-118.25",
        }
    )
    mapped, reason = lapd.map_frame(records, lapd.ADAPTERS[lapd.LEGACY])
    assert (reason == "").all()
    assert lapd.LEGACY_VIOLENT_CODES <= set(table["crm_cd"])
    assert set(mapped.loc[mapped["is_violent"], "crm_cd"]) == lapd.LEGACY_VIOLENT_CODES


@pytest.mark.parametrize("name", LEGACY_SAMPLES)
def test_each_sample_loads_into_postgres_and_reloads_unchanged(shared_data, clean_db, name):
    raw = _raw_rows(shared_data / name)
    at_zero = sum(float(r["LAT"]) == 0 and float(r["LON"]) == 0 for r in raw)
    report = ingest_crime_csv(clean_db, shared_data / name)
    assert (report.fetched, report.loaded, report.rejected_total) == (
        len(raw),
        len(raw) - at_zero,
        at_zero,
    )
    again = ingest_crime_csv(clean_db, shared_data / name)
    assert (again.loaded, again.updated, again.unchanged) == (0, 0, report.loaded)
    with clean_db.connect() as conn:
        violent = conn.execute(
            sa.text("SELECT count(*) FROM raw.crime_records WHERE is_violent")
        ).scalar()
    expected = sum(
        any(r[c].strip() in lapd.LEGACY_VIOLENT_CODES for c in CODE_COLUMNS)
        for r in raw
        if not (float(r["LAT"]) == 0 and float(r["LON"]) == 0)
    )
    assert violent == expected


# --- parsing rules, without files ---------------------------------------------------


def test_timestamps_parse_in_all_three_source_formats():
    values = pd.Series(
        ["03/01/2020 12:00:00 AM", "11/6/2022 0:00", "2024-01-31T00:00:00.000",
         "2026-01-05T14:30:00.000", "03/01/2020 01:15:00 PM", "not a date", None]
    )  # fmt: skip
    parsed = lapd.parse_timestamps(values)
    assert parsed.tolist()[:5] == [
        pd.Timestamp(2020, 3, 1), pd.Timestamp(2022, 11, 6), pd.Timestamp(2024, 1, 31),
        pd.Timestamp(2026, 1, 5, 14, 30), pd.Timestamp(2020, 3, 1, 13, 15),
    ]  # fmt: skip
    assert parsed[5:].isna().all()


def test_time_occ_reads_padded_and_unpadded_and_flags_impossible_times():
    minutes, bad = lapd.parse_time_of_day(pd.Series(["0630", "100", "1", "2359", "2400", "1260",
                                                     "ab", None]))  # fmt: skip
    assert minutes.tolist()[:4] == [6 * 60 + 30, 60, 1, 23 * 60 + 59]
    assert bad.tolist() == [False, False, False, False, True, True, True, False]


def test_display_names_map_to_soda_field_names():
    headers = ["DR_NO", "Date Rptd", "AREA ", "Part 1-2", "Crm Cd 1"]
    assert [lapd.field_name(h) for h in headers] == [
        "dr_no", "date_rptd", "area", "part_1_2", "crm_cd_1"
    ]  # fmt: skip


def test_an_unknown_dataset_is_a_clear_error():
    from crimejob.errors import SourceError

    with pytest.raises(SourceError, match="no adapter for SODA dataset 'abcd-1234'"):
        lapd.adapter_for("abcd-1234")


def test_dates_before_the_window_of_the_grid_are_still_parsed():
    # y8y3-fqfu carries junk occurrence dates back to 1920: parsed, not crashed on.
    parsed = lapd.parse_timestamps(pd.Series(["1920-01-01T00:00:00.000"]))
    assert parsed[0] == pd.Timestamp(date(1920, 1, 1))


# --- NIBRS records as the live feed has them (docs/live-feed.md) -----------------------

# Two real y8y3-fqfu rows (June 2026), as the API sends them.
REAL_Y8Y3 = [
    {"caseno": "25245851", "uniquenibrno": "25245851_290_0",
     "date_rptd": "2025-12-31T00:00:00.000", "date_occ": "2025-12-29T00:00:00.000",
     "time_occ": "2120", "area": "20", "area_name": "Olympic", "rpt_dist_no": "2071",
     "totaloffensecount": "2", "group": "A", "nibr_code": "290",
     "nibr_description": "594(B)(2)(A) - PC - M - Vandalism Less Than $4...",
     "crime_against": "Property", "premis_cd": "RA", "status": "14",
     "status_desc": "Cleared by Arrest - CA Filed", "location": "1400 S Manhattan Pl",
     "lat": "34.0463", "lon": "-118.3102"},
    {"caseno": "25245765", "uniquenibrno": "25245765_240_1",
     "date_rptd": "2025-12-31T00:00:00.000", "date_occ": "2025-12-29T00:00:00.000",
     "time_occ": "2120", "area": "20", "area_name": "Olympic", "rpt_dist_no": "2071",
     "totaloffensecount": "2", "group": "A", "nibr_code": "240",
     "crime_against": "Property", "lat": "34.0463", "lon": "-118.3102"},
]  # fmt: skip


def _k7nn(**fields) -> dict:
    """A k7nn-b2ep offense row; ``fields`` replace (or, set to None, remove) values."""
    record = {
        "uniquenibrno": "26012345_13A_0", "caseno": "26012345",
        "date_rptd": "2026-09-16T09:41:00.000", "date_occ": "2026-09-14T00:00:00.000",
        "time_occ": "2130", "area": "12", "area_name": "77th Street", "rpt_dist_no": "1241",
        "totaloffensecount": "1", "group": "A", "nibr_code": "13A",
        "nibr_description": "245(A)(1) - PC - F - Assault With Deadly Weapon - 13A",
        "crime_against": "Person", "hndrdth_lat": "33.9583", "hndrdth_lon": "-118.2889",
    }  # fmt: skip
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def _map_nibrs(records: list[dict], dataset: str = lapd.NIBRS_2026) -> lapd.Mapped:
    return lapd.map_api_records(dataset, records)


def test_the_real_y8y3_rows_map_with_their_coordinates_and_codes():
    mapped = _map_nibrs(REAL_Y8Y3, lapd.NIBRS_2024)
    assert mapped.rejects.empty
    rows = mapped.records.set_index("record_id")
    assert rows.loc["25245851_290_0", "incident_id"] == "25245851"
    assert rows.loc["25245851_290_0", "occurred_at"] == pd.Timestamp(2025, 12, 29, 21, 20)
    assert rows.loc["25245851_290_0", "week_start"] == pd.Timestamp(2025, 12, 29)
    assert rows["offense_codes"].tolist() == ["{290}", "{240}"]
    assert not rows["is_violent"].any() and (rows["series"] == "nibrs").all()
    assert (rows["lat"] == 34.0463).all() and (rows["lon"] == -118.3102).all()


def test_k7nn_coordinates_come_from_hndrdth_fields_and_zero_zero_is_missing():
    good = _k7nn()
    nowhere = _k7nn(uniquenibrno="26012346_13A_0", caseno="26012346",
                    hndrdth_lat="0", hndrdth_lon="0")  # fmt: skip
    plain = _k7nn(uniquenibrno="26012347_13A_0", caseno="26012347",
                  hndrdth_lat=None, hndrdth_lon=None, lat="34.05", lon="-118.25")  # fmt: skip
    mapped = _map_nibrs([good, nowhere, plain])
    assert mapped.records["record_id"].tolist() == ["26012345_13A_0"]
    assert (mapped.records[["lat", "lon"]].iloc[0] == [33.9583, -118.2889]).all()
    assert dict(zip(mapped.rejects["record_key"], mapped.rejects["reason"], strict=True)) == {
        "26012346_13A_0": "missing_location",
        "26012347_13A_0": "missing_location",  # k7nn-b2ep has no lat/lon: never guessed
    }


@pytest.mark.parametrize(
    "date_occ, time_occ, occurred",
    [
        # a date that carries a time of day keeps it
        ("2026-09-14T21:30:00.000", "2130", datetime(2026, 9, 14, 21, 30)),
        ("2026-09-14T08:05:00.000", "1200", datetime(2026, 9, 14, 8, 5)),
        # a midnight date takes the time from time_occ
        ("2026-09-14T00:00:00.000", "2130", datetime(2026, 9, 14, 21, 30)),
        ("2026-09-14T00:00:00.000", "45", datetime(2026, 9, 14, 0, 45)),
        # ... unless time_occ is 0000 or 1200, LAPD's "time unknown": the date alone
        ("2026-09-14T00:00:00.000", "1200", datetime(2026, 9, 14)),
        ("2026-09-14T00:00:00.000", "0000", datetime(2026, 9, 14)),
        ("2026-09-14T00:00:00.000", None, datetime(2026, 9, 14)),
    ],
)
def test_nibrs_occurrence_times_with_or_without_a_time_of_day(date_occ, time_occ, occurred):
    mapped = _map_nibrs([_k7nn(date_occ=date_occ, time_occ=time_occ)])
    assert mapped.rejects.empty
    assert mapped.records["occurred_at"].iloc[0] == pd.Timestamp(occurred)
    assert mapped.records["week_start"].iloc[0] == pd.Timestamp(2026, 9, 14)


def test_legacy_noon_stays_noon():
    # 1200 is a placeholder in NIBRS; in the legacy dataset the time rule is unchanged
    record = {"dr_no": "241204321", "date_rptd": "2024-01-03T00:00:00.000",
              "date_occ": "2024-01-02T00:00:00.000", "time_occ": "1200", "crm_cd": "230",
              "lat": "34.0", "lon": "-118.3"}  # fmt: skip
    mapped = lapd.map_api_records(lapd.LEGACY, [record])
    assert mapped.records["occurred_at"].iloc[0] == pd.Timestamp(2024, 1, 2, 12)


@pytest.mark.parametrize(
    "date_occ, why",
    [
        ("1800-01-06T00:00:00.000", "is before 2000-01-01"),  # seen in k7nn-b2ep
        ("1920-05-01T00:00:00.000", "is before 2000-01-01"),  # seen in y8y3-fqfu
        ("1999-12-31T23:00:00.000", "is before 2000-01-01"),
        ("2026-09-17T00:00:00.000", "is after date_rptd=2026-09-16T09:41:00.000"),
    ],
)
def test_junk_occurrence_dates_are_rejected_with_the_reason(date_occ, why):
    mapped = _map_nibrs([_k7nn(date_occ=date_occ)])
    assert mapped.records.empty
    (reject,) = mapped.rejects.itertuples()
    assert reject.reason == lapd.IMPLAUSIBLE_DATE == "implausible_date"
    assert reject.detail == f"date_occ={date_occ} {why}"
    assert reject.payload == _k7nn(date_occ=date_occ)  # the record as sent, kept


def test_an_offense_on_its_report_date_is_not_junk():
    mapped = _map_nibrs([_k7nn(date_occ="2026-09-16T23:50:00.000")])
    assert mapped.rejects.empty  # later that day than the report's time: same date


@pytest.mark.parametrize(
    "code, against, violent",
    [
        ("09A", "Person", True), ("11A", "Person", True), ("11B", "Person", True),
        ("11C", "Person", True), ("13A", "Person", True),
        ("120", "Property", True),  # robbery: NIBRS files it under Property
        ("13B", "Person", False),  # simple assault
        ("13C", "Person", False), ("240", "Property", False), ("90Z", "Society", False),
    ],
)  # fmt: skip
def test_violent_comes_from_the_offense_code_never_from_crime_against(code, against, violent):
    mapped = _map_nibrs([_k7nn(nibr_code=code, crime_against=against,
                               uniquenibrno=f"26012345_{code}_0")])  # fmt: skip
    assert mapped.records["is_violent"].tolist() == [violent]


def test_offenses_stay_one_per_row_and_share_their_incident():
    codes = ["13B", "120", "290"]
    records = [
        _k7nn(uniquenibrno=f"26012345_{code}_{seq}", nibr_code=code, totaloffensecount="3")
        for seq, code in enumerate(codes)
    ]
    mapped = _map_nibrs(records)
    rows = mapped.records
    assert rows["record_id"].tolist() == [r["uniquenibrno"] for r in records]
    assert set(rows["incident_id"]) == {"26012345"}
    assert rows["offense_codes"].tolist() == ["{13B}", "{120}", "{290}"]
    assert rows["is_violent"].tolist() == [False, True, False]
