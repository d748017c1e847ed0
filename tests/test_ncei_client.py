"""The NCEI client over real HTTP against a local Access Data Service."""

from __future__ import annotations

import json
from datetime import date

import pytest

from crimejob.config import get_settings
from crimejob.errors import SourceError
from crimejob.ingest.sources.ncei import NceiClient, date_chunks, read_daily_csv
from tests.fakes.ncei import make_daily_summaries, ncei_server, to_csv
from tests.fakes.server import Fault

LAX, USC = "USW00023174", "USW00093134"


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("CRIMEJOB_HTTP_BACKOFF_MAX", "0")
    monkeypatch.setenv("CRIMEJOB_HTTP_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("CRIMEJOB_HTTP_TIMEOUT", "5")


def client_for(server, monkeypatch, chunk_days: int | None = None) -> NceiClient:
    monkeypatch.setenv("CRIMEJOB_NCEI_URL", server.base_url)
    return NceiClient(get_settings(), chunk_days=chunk_days)


def test_fetch_sends_the_documented_query_and_returns_records_as_served(fast_retries, monkeypatch):
    records = make_daily_summaries([LAX, USC], date(2024, 1, 1), date(2024, 1, 7))
    with ncei_server(records) as server:
        got = client_for(server, monkeypatch).fetch([LAX, USC], date(2024, 1, 1), date(2024, 1, 7))
        (query,) = server.data_requests()
    assert query == {
        "dataset": "daily-summaries",
        "stations": f"{LAX},{USC}",
        "startDate": "2024-01-01",
        "endDate": "2024-01-07",
        "dataTypes": "TMAX,TMIN,PRCP",
        "units": "standard",
        "includeStationName": "1",
        "includeStationLocation": "1",
        "format": "json",
    }
    assert len(got) == 14
    assert got == records  # strings, exactly as served
    assert all(isinstance(v, str) for record in got for v in record.values())


def test_a_missing_value_is_a_missing_key_and_is_passed_through(fast_retries, monkeypatch):
    records = make_daily_summaries(
        [LAX], date(2024, 1, 1), date(2024, 1, 2), missing={(LAX, date(2024, 1, 2)): ["TMAX"]}
    )
    with ncei_server(records) as server:
        got = client_for(server, monkeypatch).fetch([LAX], date(2024, 1, 1), date(2024, 1, 2))
    assert "TMAX" in got[0] and "TMAX" not in got[1]
    assert "TMIN" in got[1] and "PRCP" in got[1]


def test_a_long_range_is_fetched_in_chunks_that_cover_it_exactly(fast_retries, monkeypatch):
    start, end = date(2023, 12, 20), date(2024, 2, 10)
    records = make_daily_summaries([LAX], start, end)
    with ncei_server(records) as server:
        got = client_for(server, monkeypatch, chunk_days=30).fetch([LAX], start, end)
        queries = server.data_requests()
    assert [(q["startDate"], q["endDate"]) for q in queries] == [
        ("2023-12-20", "2024-01-18"),
        ("2024-01-19", "2024-02-10"),
    ]
    assert [r["DATE"] for r in got] == [r["DATE"] for r in records]


def test_date_chunks_are_consecutive_and_inclusive():
    chunks = date_chunks(date(2020, 3, 1), date(2024, 2, 10))
    assert chunks[0] == (date(2020, 3, 1), date(2020, 12, 31))
    assert chunks[-1] == (date(2024, 1, 1), date(2024, 2, 10))
    assert len(chunks) == 5
    assert all((b[0] - a[1]).days == 1 for a, b in zip(chunks, chunks[1:], strict=False))
    weekly = date_chunks(date(2024, 1, 1), date(2024, 1, 20), days=7)
    assert weekly == [
        (date(2024, 1, 1), date(2024, 1, 7)),
        (date(2024, 1, 8), date(2024, 1, 14)),
        (date(2024, 1, 15), date(2024, 1, 20)),
    ]
    with pytest.raises(ValueError):
        date_chunks(date(2024, 1, 2), date(2024, 1, 1))


def test_throttled_then_success_is_retried(fast_retries, monkeypatch):
    records = make_daily_summaries([LAX], date(2024, 1, 1), date(2024, 1, 3))
    with ncei_server(records) as server:
        server.add_faults("/access", Fault(status=429, headers={"Retry-After": "0"}))
        got = client_for(server, monkeypatch).fetch([LAX], date(2024, 1, 1), date(2024, 1, 3))
        assert len(server.data_requests()) == 2
    assert len(got) == 3


def test_server_errors_past_the_retry_budget_raise_source_error(fast_retries, monkeypatch):
    with ncei_server(make_daily_summaries([LAX])) as server:
        server.add_faults("/access", *[Fault(status=500)] * 3)
        with pytest.raises(SourceError, match="after 3 attempts"):
            client_for(server, monkeypatch).fetch([LAX], date(2024, 1, 1), date(2024, 1, 7))
        assert len(server.data_requests()) == 3


def test_a_truncated_body_is_retried_and_then_succeeds(fast_retries, monkeypatch):
    records = make_daily_summaries([LAX], date(2024, 1, 1), date(2024, 1, 7))
    with ncei_server(records) as server:
        server.add_faults("/access", Fault(truncate=True))
        got = client_for(server, monkeypatch).fetch([LAX], date(2024, 1, 1), date(2024, 1, 7))
    assert got == records


def test_truncated_bodies_every_time_raise_source_error(fast_retries, monkeypatch):
    with ncei_server(make_daily_summaries([LAX])) as server:
        server.add_faults("/access", *[Fault(truncate=True)] * 9)
        with pytest.raises(SourceError):
            client_for(server, monkeypatch).fetch([LAX], date(2024, 1, 1), date(2024, 1, 7))


def test_a_renamed_field_fails_with_a_message_naming_it(fast_retries, monkeypatch):
    records = make_daily_summaries([LAX], date(2024, 1, 1), date(2024, 1, 3))
    for record in records:
        record["TMAX_F"] = record.pop("TMAX")
    with ncei_server(records) as server:
        with pytest.raises(SourceError, match="TMAX_F"):
            client_for(server, monkeypatch).fetch([LAX], date(2024, 1, 1), date(2024, 1, 3))


def test_a_renamed_key_field_fails_with_a_message_naming_it(fast_retries, monkeypatch):
    records = make_daily_summaries([LAX], date(2024, 1, 1), date(2024, 1, 3))
    for record in records:
        record["station"] = record.pop("STATION")
    with ncei_server(records) as server:
        # the fake filters on STATION, so serve the renamed records verbatim
        server.app = lambda path, query, headers: (200, {}, json.dumps(records).encode())
        with pytest.raises(SourceError, match="station"):
            client_for(server, monkeypatch).fetch([LAX], date(2024, 1, 1), date(2024, 1, 3))


def test_a_bad_request_fails_at_once_without_retries(fast_retries, monkeypatch):
    with ncei_server(make_daily_summaries([LAX])) as server:
        server.add_faults("/access", Fault(status=400, body=b'{"errorMessage":"bad"}'))
        with pytest.raises(SourceError, match="HTTP 400"):
            client_for(server, monkeypatch).fetch([LAX], date(2024, 1, 1), date(2024, 1, 7))
        assert len(server.data_requests()) == 1


def test_an_empty_range_is_an_empty_list(fast_retries, monkeypatch):
    with ncei_server(make_daily_summaries([LAX], date(2024, 1, 1), date(2024, 1, 7))) as server:
        got = client_for(server, monkeypatch).fetch([LAX], date(2025, 1, 1), date(2025, 1, 7))
    assert got == []


def test_the_csv_reader_gives_the_same_records_as_the_json_api(tmp_path):
    records = make_daily_summaries(
        [LAX, USC], date(2024, 1, 1), date(2024, 1, 5), missing={(USC, date(2024, 1, 3)): ["PRCP"]}
    )
    path = tmp_path / "daily.csv"
    path.write_text(to_csv(records))
    assert path.read_text().startswith('"STATION","DATE","LATITUDE","LONGITUDE","ELEVATION","NAME"')
    assert read_daily_csv(path) == records  # same keys and strings; key order is irrelevant


def test_the_csv_reader_accepts_attribute_columns_and_missing_optional_columns(tmp_path):
    path = tmp_path / "cdo.csv"
    path.write_text(
        '"STATION","DATE","PRCP","PRCP_ATTRIBUTES","TMAX","TMAX_ATTRIBUTES"\n'
        '"USW00023174","2024-01-01","0.00","T,,W,2400","66",",,W"\n'
        '"USW00023174","2024-01-02","","","64",",,W"\n'
    )
    got = read_daily_csv(path)
    assert got[0]["PRCP"] == "0.00" and got[0]["TMAX"] == "66"
    assert "PRCP" not in got[1] and got[1]["TMAX"] == "64"


def test_raw_tenths_are_refused_by_the_client_and_the_csv_reader(
    fast_retries, monkeypatch, tmp_path
):
    records = make_daily_summaries([LAX], date(2024, 1, 1), date(2024, 1, 3))
    with ncei_server(records) as server:
        client = client_for(server, monkeypatch)
        client.params = lambda *args: {  # a caller that forgets units=standard
            k: v for k, v in NceiClient.params(client, *args).items() if k != "units"
        }
        with pytest.raises(SourceError, match="units=standard"):
            client.fetch([LAX], date(2024, 1, 1), date(2024, 1, 3))
    path = tmp_path / "tenths.csv"
    path.write_text('"STATION","DATE","TMAX"\n"USW00023174","2024-01-01","  189"\n')
    with pytest.raises(SourceError, match="TMAX value '  189'"):
        read_daily_csv(path)


def test_the_csv_reader_rejects_a_renamed_column(tmp_path):
    path = tmp_path / "renamed.csv"
    path.write_text('"STATION","DATE","MAXTEMP"\n"USW00023174","2024-01-01","66"\n')
    with pytest.raises(SourceError, match="MAXTEMP"):
        read_daily_csv(path)
