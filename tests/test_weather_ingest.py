"""Weather ingest: NCEI daily summaries into raw.weather_daily, rejects kept, reruns idempotent."""

from __future__ import annotations

import gzip
import json
from datetime import date, timedelta

import pandas as pd
import pytest
import requests
import sqlalchemy as sa

from crimejob import cli
from crimejob.errors import SourceError
from crimejob.grid.aggregate import aggregate_weeks
from crimejob.ingest.weather_ingest import (
    fetch_weather_api,
    ingest_weather_api,
    ingest_weather_csv,
    load_weather_records,
)
from tests.fakes.ncei import make_daily_summaries, ncei_server, to_csv
from tests.fakes.server import Fault

LAX, USC = "USW00023174", "USW00093134"
START, END = date(2024, 1, 1), date(2024, 1, 14)


@pytest.fixture
def ncei_env(monkeypatch):
    """Two configured stations, fast retries; yields a function pointing the job at a server."""
    monkeypatch.setenv("CRIMEJOB_STATIONS", f"{LAX},{USC}")
    monkeypatch.setenv("CRIMEJOB_HTTP_BACKOFF_MAX", "0")
    monkeypatch.setenv("CRIMEJOB_HTTP_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("CRIMEJOB_HTTP_TIMEOUT", "5")
    return lambda server: monkeypatch.setenv("CRIMEJOB_NCEI_URL", server.base_url)


def table(engine, name: str, order: str = "1") -> pd.DataFrame:
    return pd.read_sql(f"SELECT * FROM {name} ORDER BY {order}", engine)


def count(engine, name: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()


def test_an_api_ingest_loads_every_station_day_with_payload_stations_and_holidays(
    clean_db, ncei_env
):
    records = make_daily_summaries([LAX, USC], START, END)
    with ncei_server(records) as server:
        ncei_env(server)
        report = ingest_weather_api(clean_db, START, END)
    assert (report.fetched, report.loaded, report.updated, report.unchanged) == (28, 28, 0, 0)
    assert report.rejected_total == 0
    assert report.weeks_touched == {date(2024, 1, 1), date(2024, 1, 8)}
    daily = table(clean_db, "raw.weather_daily", "station_id, day")
    first = daily.iloc[0]
    assert (first["station_id"], first["day"]) == (LAX, START)
    assert first["payload"] == records[0]  # the record exactly as sent
    assert first["tmax_f"] == float(records[0]["TMAX"])
    assert first["prcp_in"] == float(records[0]["PRCP"])
    assert set(daily["source"]) == {"ncei-api"}
    stations = table(clean_db, "raw.weather_stations").set_index("station_id")
    assert stations.loc[LAX, "elevation"] == 29.6  # learned from includeStationLocation
    assert stations.loc[LAX, "name"].startswith("LOS ANGELES INTERNATIONAL")
    assert date(2024, 1, 15) in set(table(clean_db, "raw.holidays")["day"])  # MLK Day
    run = table(clean_db, "ops.runs").iloc[-1]
    assert (run["kind"], run["status"]) == ("ingest_weather", "succeeded")
    assert run["counts"]["loaded"] == 28


def test_rerunning_the_same_ingest_changes_nothing(clean_db, ncei_env):
    records = make_daily_summaries([LAX, USC], START, END)
    with ncei_server(records) as server:
        ncei_env(server)
        ingest_weather_api(clean_db, START, END)
        before = table(clean_db, "raw.weather_daily", "station_id, day")
        again = ingest_weather_api(clean_db, START, END)
    assert (again.loaded, again.updated, again.unchanged) == (0, 0, 28)
    assert again.weeks_touched == set()
    pd.testing.assert_frame_equal(table(clean_db, "raw.weather_daily", "station_id, day"), before)


def test_a_corrected_value_updates_its_row_and_touches_its_week(clean_db, ncei_env):
    records = make_daily_summaries([LAX, USC], START, END)
    with ncei_server(records) as server:
        ncei_env(server)
        ingest_weather_api(clean_db, START, END)
        server.records[9]["TMAX"] = str(int(server.records[9]["TMAX"]) + 5)
        report = ingest_weather_api(clean_db, START, END)
    assert (report.loaded, report.updated, report.unchanged) == (0, 1, 27)
    day = date.fromisoformat(records[9]["DATE"])
    assert report.weeks_touched == {day - timedelta(days=day.weekday())}
    stored = table(clean_db, "raw.weather_daily", "station_id, day").iloc[9]
    assert stored["tmax_f"] == float(records[9]["TMAX"])


def test_unusable_records_are_rejected_with_reason_and_payload(clean_db, monkeypatch):
    monkeypatch.setenv("CRIMEJOB_STATIONS", f"{LAX},{USC}")
    good = make_daily_summaries([LAX], START, START + timedelta(days=2))
    bad = [
        {"DATE": "2024-13-01", "STATION": LAX, "TMAX": "66", "TMIN": "48", "PRCP": "0.00"},
        {"DATE": "2024-01-05", "STATION": LAX, "TMAX": "6x6", "TMIN": "48"},
        {"DATE": "2024-01-06", "STATION": LAX, "TMAX": "  1567", "TMIN": "48"},
        {"DATE": "2024-01-07", "STATION": LAX},
        {"DATE": "2024-01-07", "STATION": "USC00049999", "TMAX": "70"},
        {"DATE": "2024-01-07", "TMAX": "70"},
    ]
    report = load_weather_records(clean_db, good + bad)
    assert report.loaded == 3
    assert dict(report.rejected) == {
        "bad_date": 1,
        "bad_value": 2,
        "missing_values": 1,
        "unknown_station": 1,
        "missing_key": 1,
    }
    rejects = table(clean_db, "ops.rejects", "reject_id")
    assert list(rejects["source"].unique()) == ["ncei-api"]
    by_reason = rejects.groupby("reason")
    assert by_reason.get_group("bad_date")["payload"].iloc[0] == bad[0]
    assert "2024-13-01" in by_reason.get_group("bad_date")["detail"].iloc[0]
    details = " ".join(by_reason.get_group("bad_value")["detail"])
    assert "'6x6' is not a number" in details and "1567 outside" in details
    assert "CRIMEJOB_STATIONS" in by_reason.get_group("unknown_station")["detail"].iloc[0]
    assert "rejected unknown_station: 1" in report.format()
    assert count(clean_db, "raw.weather_daily") == 3
    # the same batch again adds no rejects and no rows
    again = load_weather_records(clean_db, good + bad)
    assert (again.loaded, again.unchanged, again.rejected_total) == (0, 3, 6)
    assert count(clean_db, "ops.rejects") == 6


def test_a_station_that_sends_its_location_needs_no_configuration(clean_db, monkeypatch):
    monkeypatch.setenv("CRIMEJOB_STATIONS", LAX)
    record = {"DATE": "2024-01-02", "STATION": "USC00045678", "TMAX": "71", "TMIN": "50",
              "LATITUDE": "34.1", "LONGITUDE": "-118.3", "NAME": "SOMEWHERE, CA US"}  # fmt: skip
    report = load_weather_records(clean_db, [record])
    assert report.loaded == 1
    stations = table(clean_db, "raw.weather_stations").set_index("station_id")
    assert (stations.loc["USC00045678", "lat"], stations.loc["USC00045678", "lon"]) == (
        34.1,
        -118.3,
    )


def test_a_source_failing_past_its_retries_fails_the_ingest_and_writes_nothing(clean_db, ncei_env):
    with ncei_server(make_daily_summaries([LAX, USC], START, END)) as server:
        ncei_env(server)
        server.add_faults("/access", *[Fault(status=500)] * 3)
        with pytest.raises(SourceError, match="after 3 attempts"):
            ingest_weather_api(clean_db, START, END)
    for name in ("raw.weather_daily", "raw.weather_stations", "raw.holidays", "ops.rejects"):
        assert count(clean_db, name) == 0, name
    run = table(clean_db, "ops.runs").iloc[-1]
    assert run["status"] == "failed" and "SourceError" in run["message"]


def test_a_failure_in_a_later_chunk_writes_nothing_from_earlier_chunks(clean_db, ncei_env):
    start, end = date(2023, 6, 1), date(2024, 1, 31)
    with ncei_server(make_daily_summaries([LAX], start, end)) as server:
        ncei_env(server)
        # first chunk succeeds, the second gets 500s past the budget
        server.add_faults("/access", Fault(status=200, body=b"[]"), *[Fault(status=503)] * 3)
        with pytest.raises(SourceError):
            ingest_weather_api(clean_db, start, end)
        assert len(server.data_requests()) == 4
    assert count(clean_db, "raw.weather_daily") == 0


def test_a_renamed_field_fails_the_ingest_naming_the_field(clean_db, ncei_env):
    records = make_daily_summaries([LAX, USC], START, END)
    for record in records:
        if "PRCP" in record:
            record["PRCP_IN"] = record.pop("PRCP")
    with ncei_server(records) as server:
        ncei_env(server)
        with pytest.raises(SourceError, match="PRCP_IN"):
            fetch_weather_api(START, END)
        with pytest.raises(SourceError, match="PRCP_IN"):
            ingest_weather_api(clean_db, START, END)
    assert count(clean_db, "raw.weather_daily") == 0


def test_the_csv_download_of_the_same_query_loads_the_same_values(clean_db, ncei_env, tmp_path):
    records = make_daily_summaries(
        [LAX, USC], START, END, missing={(USC, date(2024, 1, 4)): ["TMAX", "TMIN"]}
    )
    with ncei_server(records) as server:
        ncei_env(server)
        ingest_weather_api(clean_db, START, END)
        from_api = table(clean_db, "raw.weather_daily", "station_id, day")
        response = requests.get(
            server.base_url,
            params={
                "dataset": "daily-summaries",
                "stations": f"{LAX},{USC}",
                "startDate": str(START),
                "endDate": str(END),
                "units": "standard",
                "dataTypes": "TMAX,TMIN,PRCP",
                "includeStationLocation": "1",
                "format": "csv",
            },  # fmt: skip
            timeout=5,
        )
    path = tmp_path / "ncei.csv"
    path.write_text(response.text)
    assert response.text.startswith('"STATION","DATE","LATITUDE","LONGITUDE","ELEVATION"')
    with clean_db.begin() as conn:
        conn.execute(sa.text("TRUNCATE raw.weather_daily"))
    report = ingest_weather_csv(clean_db, path)
    assert (report.source, report.loaded, report.rejected_total) == ("ncei-csv", 28, 0)
    from_csv = table(clean_db, "raw.weather_daily", "station_id, day")
    columns = ["station_id", "day", "tmax_f", "tmin_f", "prcp_in"]
    pd.testing.assert_frame_equal(from_csv[columns], from_api[columns])
    assert from_csv[columns].iloc[17].isna().sum() == 2  # USC 2024-01-04 had no temperatures


def test_a_csv_in_raw_tenths_is_refused_not_loaded_as_degrees(clean_db, ncei_env, tmp_path):
    with ncei_server(make_daily_summaries([LAX], START, START + timedelta(days=6))) as server:
        ncei_env(server)
        text = requests.get(
            server.base_url,
            params={
                "dataset": "daily-summaries",
                "stations": LAX,
                "startDate": str(START),
                "endDate": str(START + timedelta(days=6)),
                "format": "csv",
            },  # fmt: skip
            timeout=5,
        ).text
    path = tmp_path / "tenths.csv"
    path.write_text(text)
    assert '"  ' in text  # raw tenths, right-aligned as GHCN stores them
    with pytest.raises(SourceError, match="units=standard"):
        ingest_weather_csv(clean_db, path)
    assert count(clean_db, "raw.weather_daily") == 0
    assert table(clean_db, "ops.runs").iloc[-1]["status"] == "failed"


def test_a_csv_without_a_column_does_not_erase_stored_values(clean_db, monkeypatch, tmp_path):
    monkeypatch.setenv("CRIMEJOB_STATIONS", LAX)
    records = make_daily_summaries([LAX], START, START + timedelta(days=2))
    load_weather_records(clean_db, records)
    path = tmp_path / "prcp_only.csv"
    path.write_text(
        to_csv(
            [{"STATION": LAX, "DATE": r["DATE"], "PRCP": "0.50"} for r in records],
            columns=["STATION", "DATE", "PRCP", "PRCP_ATTRIBUTES"],
        )
    )
    report = ingest_weather_csv(clean_db, path)
    assert (report.updated, report.loaded) == (3, 0)
    daily = table(clean_db, "raw.weather_daily", "day")
    assert list(daily["prcp_in"]) == [0.5, 0.5, 0.5]
    assert list(daily["tmax_f"]) == [float(r["TMAX"]) for r in records]


def test_the_cli_imports_a_csv_and_reports_counts(clean_db, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CRIMEJOB_STATIONS", f"{LAX},{USC}")
    path = tmp_path / "daily.csv"
    records = make_daily_summaries([LAX, USC], START, START + timedelta(days=6))
    records.append({"STATION": LAX, "DATE": "2024-02-30", "TMAX": "70"})
    path.write_text(to_csv(records))
    assert cli.main(["ingest", "weather", "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ncei-csv: fetched 15, loaded 14, updated 0, unchanged 0, rejected 1" in out
    assert "rejected bad_date: 1" in out


def test_the_cli_fails_with_a_clear_message_when_the_source_is_down(clean_db, ncei_env, capsys):
    with ncei_server(make_daily_summaries([LAX, USC], START, END)) as server:
        ncei_env(server)
        server.add_faults("/access", *[Fault(status=503)] * 3)
        code = cli.main(["ingest", "weather", "--start", "2024-01-01", "--end", "2024-01-14"])
    assert code == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("crimejob ingest: ") and "503" in err


# --- the real LAX sample ----------------------------------------------------------


def acis_to_ncei(acis: list[dict]) -> list[dict]:
    """Test-only: ACIS normals-and-departures records as NCEI daily summaries (observed values).

    Observed = normal_value + dfn (deg F, inches), one NCEI record per day.
    """
    variables = {"maxt": "TMAX", "mint": "TMIN", "precip": "PRCP"}
    by_day: dict[str, dict] = {}
    for row in acis:
        if row["value_variable"] not in variables:
            continue
        record = by_day.setdefault(
            row["date"],
            {"DATE": row["date"], "STATION": row["id"],
             "LATITUDE": str(row["lat"]), "LONGITUDE": str(row["lon"]), "NAME": row["name"]},
        )  # fmt: skip
        observed = row["normal_value"] + row["dfn"]
        key = variables[row["value_variable"]]
        record[key] = f"{observed:.2f}" if key == "PRCP" else f"{observed:.0f}"
    return list(by_day.values())


def test_the_real_lax_2023_sample_loads_and_aggregates(clean_db, shared_data, monkeypatch):
    monkeypatch.setenv("CRIMEJOB_STATIONS", LAX)
    path = shared_data / "lax_LAXthr_2023_daily_normals_departures.json.gz"
    acis = json.loads(gzip.decompress(path.read_bytes()))
    records = acis_to_ncei(acis)
    report = load_weather_records(clean_db, records, source="acis-test")
    assert (report.loaded, report.rejected_total) == (365, 0)
    daily = table(clean_db, "raw.weather_daily", "station_id, day")
    lax = daily[daily["station_id"] == "LAXthr"].set_index("day")
    # spot check against the file: 2023-01-01 maxt and mint
    first = {r["value_variable"]: r for r in acis if r["date"] == "2023-01-01"}
    assert (
        lax.loc[date(2023, 1, 1), "tmin_f"] == first["mint"]["normal_value"] + first["mint"]["dfn"]
    )
    assert (
        lax.loc[date(2023, 1, 1), "tmax_f"] == first["maxt"]["normal_value"] + first["maxt"]["dfn"]
    )
    assert (lax["tmin_f"] <= lax["tmax_f"]).all()
    assert lax["prcp_in"].min() >= 0
    # January 2023 was LA's wet month: the weeks from Jan 2 to Jan 15 rained inches
    result = aggregate_weeks(clean_db, date(2023, 1, 2), date(2023, 1, 15))
    assert result.weeks_without_weather == []
    weekly = table(clean_db, "grid.weekly", "week_start, cell_id")
    # one station: every cell gets the station's weekly values
    per_week = weekly.groupby("week_start")[["mean_temp_f", "total_rain_in"]].agg(["min", "max"])
    for feature in ("mean_temp_f", "total_rain_in"):
        assert (per_week[(feature, "min")] == per_week[(feature, "max")]).all()
    week = lax.loc[date(2023, 1, 2) : date(2023, 1, 8)]
    expected_temp = ((week["tmax_f"] + week["tmin_f"]) / 2).mean()
    assert per_week[("mean_temp_f", "min")].iloc[0] == pytest.approx(expected_temp, abs=1e-3)
    assert per_week[("total_rain_in", "min")].iloc[0] == pytest.approx(
        week["prcp_in"].sum(), abs=1e-3
    )
    assert per_week[("total_rain_in", "min")].sum() > 1.0


def test_an_empty_batch_loads_nothing_and_says_so(clean_db):
    report = load_weather_records(clean_db, [])
    assert (report.fetched, report.loaded, report.rejected_total) == (0, 0, 0)
    assert report.format() == ("ncei-api: fetched 0, loaded 0, updated 0, unchanged 0, rejected 0")
    assert count(clean_db, "raw.weather_daily") == 0
