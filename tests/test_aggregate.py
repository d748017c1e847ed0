"""Weekly grid rows: dense counts per cell, interpolated weather, holidays, reruns."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob import cli
from crimejob.dbcopy import copy_frame
from crimejob.grid import cells as grid
from crimejob.grid.aggregate import (
    _LOCK_KEY,
    MIN_REPORTED_DAYS,
    aggregate_weeks,
    default_series,
    distance_km,
    idw,
    weeks_touched,
)
from crimejob.grid.weeks import week_start
from crimejob.ingest.weather_ingest import load_weather_records
from tests.fakes.ncei import make_daily_summaries, to_csv

LAX, USC = "USW00023174", "USW00093134"
W1, W2, W3 = date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 15)


def crime_rows(rows: list[dict]) -> pd.DataFrame:
    """raw.crime_records rows; each dict needs record_id, occurred (date), lat, lon, codes."""
    frame = pd.DataFrame(rows)
    frame["source"] = frame.get("source", pd.Series(index=frame.index)).fillna("2nrs-mtv8")
    frame["series"] = np.where(frame["source"] == "2nrs-mtv8", "legacy", "nibrs")
    frame["incident_id"] = frame.get("incident_id", frame["record_id"]).fillna(frame["record_id"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred"]) + pd.Timedelta(hours=12)
    frame["reported_at"] = pd.to_datetime(frame.get("reported", frame["occurred"]))
    frame["week_start"] = [week_start(d) for d in frame["occurred_at"]]
    frame["cell_id"], _ = grid.cell_of(frame["lat"], frame["lon"])
    assert (frame["cell_id"] >= 0).all(), "test incidents must lie inside the grid"
    frame["is_violent"] = frame["violent"].astype(bool)
    frame["offense_codes"] = ["{" + ",".join(c) + "}" for c in frame["codes"]]
    frame["payload"] = [json.dumps({"id": r}) for r in frame["record_id"]]
    return frame


def insert_crime(engine, rows: list[dict]) -> None:
    frame = crime_rows(rows)
    columns = [
        "source", "record_id", "incident_id", "series", "occurred_at", "reported_at",
        "week_start", "lat", "lon", "cell_id", "offense_codes", "is_violent", "payload",
    ]  # fmt: skip
    with engine.begin() as conn:
        copy_frame(conn, frame, "raw.crime_records", columns)


def random_incidents(n: int, weeks: list[date], seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    lat = rng.uniform(grid.LAT_MIN, grid.LAT_MAX, n)
    lon = rng.uniform(grid.LON_MIN, grid.LON_MAX, n)
    days = [weeks[0] + timedelta(days=int(d)) for d in rng.integers(0, 7 * len(weeks), n)]
    violent = rng.random(n) < 0.3
    return [
        {
            "record_id": f"R{i}",
            "occurred": days[i],
            "lat": lat[i],
            "lon": lon[i],
            "violent": violent[i],
            "codes": ["230"] if violent[i] else ["330"],
        }
        for i in range(n)
    ]


def weekly(engine) -> pd.DataFrame:
    return pd.read_sql(
        "SELECT * FROM grid.weekly ORDER BY week_start, cell_id", engine, parse_dates=[]
    )


def test_every_week_has_4500_dense_rows_with_zeros(clean_db):
    insert_crime(clean_db, random_incidents(300, [W1, W2]))
    report = aggregate_weeks(clean_db, W1, W3 + timedelta(days=3))
    assert report.weeks == [W1, W2, W3]
    assert report.rows_written == 3 * 4500
    rows = weekly(clean_db)
    assert rows.groupby("week_start").size().to_dict() == {W1: 4500, W2: 4500, W3: 4500}
    assert (rows.groupby("week_start")["cell_id"].nunique() == 4500).all()
    assert (rows["violent_count"] == 0).sum() > 4000 * 3  # zeros are rows too
    assert rows.loc[rows["week_start"] == W3, "incident_count"].sum() == 0
    bi = pd.read_sql("SELECT week_start, count(*) AS n FROM bi.weekly_counts GROUP BY 1", clean_db)
    assert set(bi["n"]) == {4500}


def test_counts_per_cell_equal_the_incidents_placed_there(clean_db):
    incidents = random_incidents(3000, [W1, W2, W3], seed=5)
    insert_crime(clean_db, incidents)
    report = aggregate_weeks(clean_db, W1, W3)
    expected = (
        crime_rows(incidents)
        .groupby(["week_start", "cell_id"])
        .agg(incidents=("record_id", "size"), violent=("is_violent", "sum"))
    )
    rows = weekly(clean_db).set_index(["week_start", "cell_id"])
    got = rows.loc[expected.index]
    assert (got["incident_count"].to_numpy() == expected["incidents"].to_numpy()).all()
    assert (got["violent_count"].to_numpy() == expected["violent"].to_numpy()).all()
    violent_inside = sum(1 for i in incidents if i["violent"])
    assert rows["violent_count"].sum() == violent_inside == report.violent_total
    assert rows["incident_count"].sum() == 3000 == report.incident_total


def test_a_nibrs_incident_with_two_offenses_counts_once_and_is_violent_if_either_is(clean_db):
    here = {"lat": 34.05, "lon": -118.25, "occurred": W2 + timedelta(days=2)}
    insert_crime(
        clean_db,
        [
            # case 1: aggravated assault + vandalism -> one violent incident
            {**here, "source": "y8y3-fqfu", "record_id": "C1-13A-1", "incident_id": "C1",
             "codes": ["13A"], "violent": True},
            {**here, "source": "y8y3-fqfu", "record_id": "C1-290-2", "incident_id": "C1",
             "codes": ["290"], "violent": False},
            # case 2: two property offenses -> one non-violent incident
            {**here, "source": "y8y3-fqfu", "record_id": "C2-23H-1", "incident_id": "C2",
             "codes": ["23H"], "violent": False},
            {**here, "source": "y8y3-fqfu", "record_id": "C2-290-2", "incident_id": "C2",
             "codes": ["290"], "violent": False},
        ],
    )  # fmt: skip
    aggregate_weeks(clean_db, W2, W2)
    cell = int(grid.cell_of([34.05], [-118.25])[0][0])
    row = weekly(clean_db).set_index("cell_id").loc[cell]
    assert (row["incident_count"], row["violent_count"]) == (2, 1)
    week = pd.read_sql("SELECT * FROM grid.weeks", clean_db).iloc[0]
    assert (week["series"], week["nibrs_incidents"], week["legacy_incidents"]) == ("nibrs", 2, 0)


def test_police_initiated_incidents_are_counted_apart_and_not_modelled(clean_db):
    """Offenses only police activity brings (ADW on an officer, resisting arrest) are not
    what the public reports: they stay in raw.incidents but out of the modelled counts."""
    here = {"lat": 34.05, "lon": -118.25, "occurred": W2 + timedelta(days=2)}
    insert_crime(
        clean_db,
        [
            # ADW on a police officer; battery on police + resisting arrest
            {**here, "record_id": "L1", "codes": ["231"], "violent": True},
            {**here, "record_id": "L2", "codes": ["623", "437"], "violent": False},
            # an aggravated assault whose arrest was resisted is still a public report
            {**here, "record_id": "L3", "codes": ["230", "437"], "violent": True},
            {**here, "record_id": "L4", "codes": ["330"], "violent": False},
            # NIBRS codes do not say who initiated the contact: always modelled
            {**here, "source": "k7nn-b2ep", "record_id": "N1-13A", "incident_id": "N1",
             "codes": ["13A"], "violent": True},
        ],
    )  # fmt: skip
    aggregate_weeks(clean_db, W2, W2)
    cell = int(grid.cell_of([34.05], [-118.25])[0][0])
    row = weekly(clean_db).set_index("cell_id").loc[cell]
    assert (row["incident_count"], row["violent_count"]) == (3, 2)
    week = pd.read_sql("SELECT * FROM grid.weeks", clean_db).iloc[0]
    assert (week["police_initiated"], week["incident_total"], week["violent_total"]) == (2, 3, 2)
    flagged = pd.read_sql(
        "SELECT incident_id FROM raw.incidents WHERE is_police_initiated ORDER BY 1", clean_db
    )
    assert list(flagged["incident_id"]) == ["L1", "L2"]
    public = pd.read_sql("SELECT count(*) AS n FROM raw.public_incidents", clean_db)
    assert int(public["n"].iloc[0]) == 3
    categories = pd.read_sql(
        "SELECT category, incidents FROM grid.weekly_categories WHERE cell_id = %(cell)s",
        clean_db,
        params={"cell": cell},
    ).set_index("category")["incidents"]
    assert categories.sum() == 3 and categories.get("aggravated_assault") == 2


def test_late_reports_re_aggregate_the_week_they_fall_in(clean_db):
    insert_crime(clean_db, random_incidents(200, [W1, W2, W3], seed=2))
    aggregate_weeks(clean_db, W1, W3)
    before = weekly(clean_db)
    with clean_db.connect() as conn:
        since = conn.execute(sa.text("SELECT now()")).scalar_one()
    late = {"record_id": "LATE1", "occurred": W1 + timedelta(days=1), "reported": W3,
            "lat": 34.0, "lon": -118.3, "codes": ["210"], "violent": True}  # fmt: skip
    insert_crime(clean_db, [late])
    touched = weeks_touched(clean_db, since)
    assert touched == {W1}
    aggregate_weeks(clean_db, min(touched), max(touched))
    after = weekly(clean_db)
    cell = int(grid.cell_of([34.0], [-118.3])[0][0])
    changed = after.compare(before)
    assert len(changed) == 1  # exactly one row changed: the late report's cell in W1
    row = after[(after["week_start"] == W1) & (after["cell_id"] == cell)].iloc[0]
    old = before[(before["week_start"] == W1) & (before["cell_id"] == cell)].iloc[0]
    assert row["violent_count"] == old["violent_count"] + 1


def test_rerunning_the_aggregation_leaves_the_same_rows(clean_db):
    insert_crime(clean_db, random_incidents(500, [W1, W2], seed=3))
    load_weather_records(clean_db, make_daily_summaries([LAX, USC], W1, W2 + timedelta(days=6)))
    first = aggregate_weeks(clean_db, W1, W2)
    rows_first = weekly(clean_db)
    weeks_first = pd.read_sql("SELECT * FROM grid.weeks ORDER BY 1", clean_db)
    second = aggregate_weeks(clean_db, W1, W2)
    pd.testing.assert_frame_equal(weekly(clean_db), rows_first)
    weeks_second = pd.read_sql("SELECT * FROM grid.weeks ORDER BY 1", clean_db)
    pd.testing.assert_frame_equal(
        weeks_second.drop(columns="aggregated_at"), weeks_first.drop(columns="aggregated_at")
    )
    assert first.as_dict() | {"seconds": 0} == second.as_dict() | {"seconds": 0}
    runs = pd.read_sql("SELECT status FROM ops.runs WHERE kind = 'aggregate'", clean_db)
    assert list(runs["status"]) == ["succeeded", "succeeded"]


def test_idw_at_a_station_is_the_station_value():
    s_lat, s_lon = np.array([33.94, 34.02, 34.20]), np.array([-118.39, -118.29, -118.36])
    values = np.array([[60.0, 65.0, 70.0]])
    got = idw(values, s_lat, s_lon, s_lat, s_lon)
    assert got.tolist() == [[60.0, 65.0, 70.0]]


def test_idw_lies_between_station_values_and_favours_the_nearer_station():
    s_lat, s_lon = np.array([34.0, 34.0]), np.array([-118.5, -118.2])
    lon = np.linspace(-118.49, -118.21, 15)
    got = idw(np.array([[50.0, 80.0]]), s_lat, s_lon, np.full(15, 34.0), lon)[0]
    assert ((got > 50) & (got < 80)).all()
    assert (np.diff(got) > 0).all()  # moving towards the 80-degree station
    assert got[7] == pytest.approx(65.0)  # the midpoint weighs both equally
    # inverse square: a point 1 km from A and 3 km from B weighs A 9 times as much
    d_a = distance_km(34.0, -118.5 + 0.01, 34.0, -118.5)
    d_b = distance_km(34.0, -118.5 + 0.01, 34.0, -118.5 + 0.04)
    w_a, w_b = 1 / d_a**2, 1 / d_b**2
    point = idw(np.array([[50.0, 80.0]]), s_lat, np.array([-118.5, -118.46]),
                np.array([34.0]), np.array([-118.49]))[0, 0]  # fmt: skip
    assert point == pytest.approx((50 * w_a + 80 * w_b) / (w_a + w_b))


def test_idw_skips_stations_that_did_not_report_and_is_nan_when_none_did():
    s_lat, s_lon = np.array([34.0, 34.1]), np.array([-118.3, -118.4])
    values = np.array([[60.0, np.nan], [np.nan, np.nan]])
    got = idw(values, s_lat, s_lon, np.array([34.05, 34.1]), np.array([-118.35, -118.4]))
    assert got[0].tolist() == [60.0, 60.0]  # even at the silent station's own location
    assert np.isnan(got[1]).all()


def test_weather_features_follow_the_station_weeks(clean_db, monkeypatch):
    # Two stations with constant weather: A 60 F mean and 0.10 in a day, B 70 F and dry.
    monkeypatch.setenv("CRIMEJOB_STATIONS", "A1:34.0:-118.5:A,B1:34.0:-118.2:B")
    days = [W1 + timedelta(days=i) for i in range(7)]
    records = [
        {"DATE": d.isoformat(), "STATION": "A1", "TMAX": "70", "TMIN": "50", "PRCP": "0.10"}
        for d in days[:-1]  # A misses Sunday: 6 days still report, rain scaled to 7 days
    ] + [
        {"DATE": d.isoformat(), "STATION": "B1", "TMAX": "80", "TMIN": "60", "PRCP": "0.00"}
        for d in days
    ]
    load_weather_records(clean_db, records)
    report = aggregate_weeks(clean_db, W1, W1)
    rows = weekly(clean_db).set_index("cell_id")
    cell_a = int(grid.cell_of([34.0], [-118.5])[0][0])
    cell_b = int(grid.cell_of([34.0], [-118.2])[0][0])
    assert rows["mean_temp_f"].between(60, 70).all()
    assert rows.loc[cell_a, "mean_temp_f"] < 61 < 69 < rows.loc[cell_b, "mean_temp_f"]
    assert rows["total_rain_in"].between(0, 0.7 + 1e-9).all()
    assert rows.loc[cell_a, "total_rain_in"] > 0.69 and rows.loc[cell_b, "total_rain_in"] < 0.01
    assert report.stations == 2 and report.weeks_without_weather == []
    week = pd.read_sql("SELECT * FROM grid.weeks", clean_db).iloc[0]
    assert week["stations_reported"] == 2


def test_a_station_with_too_few_days_does_not_report_that_week(clean_db, monkeypatch):
    monkeypatch.setenv("CRIMEJOB_STATIONS", "A1:34.0:-118.5:A,B1:34.0:-118.2:B")
    records = [
        {"DATE": (W1 + timedelta(days=i)).isoformat(), "STATION": "A1", "TMAX": "70", "TMIN": "50"}
        for i in range(7)
    ] + [
        {"DATE": (W1 + timedelta(days=i)).isoformat(), "STATION": "B1", "TMAX": "90", "TMIN": "70"}
        for i in range(MIN_REPORTED_DAYS - 1)
    ]
    load_weather_records(clean_db, records)
    aggregate_weeks(clean_db, W1, W1)
    rows = weekly(clean_db)
    assert np.allclose(rows["mean_temp_f"], 60.0)  # B's 4 days are not a week
    assert rows["total_rain_in"].isna().all()  # nobody reported rain
    assert pd.read_sql("SELECT stations_reported FROM grid.weeks", clean_db).iloc[0, 0] == 1


def test_a_week_without_weather_gets_null_features_and_is_reported(clean_db):
    load_weather_records(clean_db, make_daily_summaries([LAX, USC], W1, W1 + timedelta(days=6)))
    report = aggregate_weeks(clean_db, W1, W2)
    rows = weekly(clean_db)
    w1, w2 = rows[rows["week_start"] == W1], rows[rows["week_start"] == W2]
    assert w1["mean_temp_f"].notna().all() and w1["total_rain_in"].notna().all()
    assert w2["mean_temp_f"].isna().all() and w2["total_rain_in"].isna().all()
    assert report.weeks_without_weather == [W2]
    assert "1 week(s) without weather" in report.format()
    weeks = pd.read_sql("SELECT * FROM grid.weeks ORDER BY week_start", clean_db)
    assert list(weeks["stations_reported"]) == [2, 0]


def test_holiday_weeks_are_flagged_with_their_names(clean_db):
    report = aggregate_weeks(clean_db, date(2024, 1, 1), date(2024, 1, 21))
    assert report.rows_written == 3 * 4500
    weeks = pd.read_sql("SELECT week_start, holiday_names FROM grid.weeks ORDER BY 1", clean_db)
    assert "New Year's Day" in weeks.loc[0, "holiday_names"]
    assert pd.isna(weeks.loc[1, "holiday_names"])
    assert "Martin Luther King Jr. Day" in weeks.loc[2, "holiday_names"]
    flags = weekly(clean_db).groupby("week_start")["holiday"].agg(["min", "max"])
    assert flags.to_numpy().tolist() == [[1, 1], [0, 0], [1, 1]]


def test_weeks_without_incidents_take_their_series_from_the_break():
    assert default_series(date(2024, 2, 26)) == "legacy"
    assert default_series(date(2024, 3, 4)) == "nibrs"  # 4 of its 7 days are NIBRS
    assert default_series(date(2024, 3, 11)) == "nibrs"


def test_weeks_touched_sees_weather_changes(clean_db):
    load_weather_records(clean_db, make_daily_summaries([LAX], date(2023, 12, 20), W1))
    with clean_db.connect() as conn:
        since = conn.execute(sa.text("SELECT now()")).scalar_one()
    changed = make_daily_summaries([LAX], date(2024, 1, 6), date(2024, 1, 9), seed=9)
    report = load_weather_records(clean_db, changed)
    assert weeks_touched(clean_db, since) == {W1, W2} == report.weeks_touched


def test_grid_weekly_refuses_a_cell_outside_the_grid(clean_db):
    with pytest.raises(sa.exc.IntegrityError, match="weekly_cell_id_in_grid"):
        with clean_db.begin() as conn:
            conn.execute(sa.text("INSERT INTO grid.weekly (week_start, cell_id) VALUES (:w, 4500)"),
                         {"w": W1})  # fmt: skip


def test_the_cli_aggregates_and_prints_the_report(clean_db, capsys):
    insert_crime(clean_db, random_incidents(100, [W1], seed=4))
    assert cli.main(["aggregate", "--start", "2024-01-03", "--end", "2024-01-10"]) == 0
    out = capsys.readouterr().out
    violent = sum(1 for i in random_incidents(100, [W1], seed=4) if i["violent"])
    assert f"aggregate {W1}..{W2}: 2 week(s), 9000 rows written, {violent} violent of 100" in out
    assert "2 week(s) without weather" in out
    counts = pd.read_sql(
        "SELECT week_start, count(*) AS n, sum(violent_count) AS v FROM bi.weekly_counts "
        "GROUP BY 1 ORDER BY 1",
        clean_db,
    )
    assert counts.values.tolist() == [[W1, 4500, violent], [W2, 4500, 0]]


def test_portal_export_and_ncei_csv_through_the_cli_give_dense_weeks_of_all_violent_incidents(
    clean_db, shared_data, tmp_path, capsys
):
    """The issue's acceptance check, on the real 2020 portal sample and a generated NCEI CSV."""
    weather = tmp_path / "ncei.csv"
    weather.write_text(to_csv(make_daily_summaries(start=date(2019, 12, 30), end=date(2021, 1, 3))))
    crime = shared_data / "lapd_legacy_sample874_2020_portalformat.csv.gz"
    assert cli.main(["db", "upgrade"]) == 0
    assert cli.main(["ingest", "crime", "--csv", str(crime)]) == 0
    assert cli.main(["ingest", "weather", "--csv", str(weather)]) == 0
    assert cli.main(["aggregate", "--start", "2019-12-30", "--end", "2021-01-03"]) == 0
    assert "0 week(s) without weather" in capsys.readouterr().out
    per_week = pd.read_sql(
        "SELECT week_start, count(*) AS cells, sum(violent_count) AS violent "
        "FROM bi.weekly_counts GROUP BY 1",
        clean_db,
    )
    assert len(per_week) == 53 and set(per_week["cells"]) == {4500}
    with clean_db.connect() as conn:
        violent_inside = conn.execute(
            sa.text(
                "SELECT count(*) FROM raw.incidents "
                "WHERE is_violent AND NOT is_police_initiated AND cell_id >= 0"
            )
        ).scalar_one()
        missing = conn.execute(
            sa.text("SELECT count(*) FROM ops.rejects WHERE reason = 'missing_location'")
        ).scalar_one()
    assert per_week["violent"].sum() == violent_inside > 0
    assert missing == 2  # the sample's two 0,0 rows are kept as rejects, not counted


def test_an_aggregation_waits_while_another_is_replacing_grid_rows(clean_db):
    insert_crime(clean_db, random_incidents(100, [W1], seed=6))
    watcher_engine = clean_db.execution_options(isolation_level="AUTOCOMMIT")
    # exit order: watcher, then holder (its rollback frees the lock), then the pool
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        clean_db.connect() as holder,
        watcher_engine.connect() as watcher,
    ):
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        future = pool.submit(aggregate_weeks, clean_db, W1, W1)
        waiting = 0
        for _ in range(300):  # until the aggregation is seen blocked on the lock
            waiting = watcher.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                )
            ).scalar_one()
            if waiting or future.done():
                break
            time.sleep(0.1)
        assert waiting == 1 and not future.done()
        assert weekly(clean_db).empty  # nothing written while it waits
        holder.rollback()  # the other aggregation finishes
        assert future.result(timeout=120).rows_written == 4500
