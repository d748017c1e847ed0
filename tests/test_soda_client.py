"""The SODA client against a real local HTTP server speaking the API's query subset.

Each test is a behaviour the weekly job depends on: the window arrives whole,
in stable pages, or the fetch fails loudly; it never duplicates or loses records.
"""

from __future__ import annotations

from datetime import date

import pytest

from crimejob.config import get_settings
from crimejob.crime_ingest import dataset_windows, fetch_crime_api
from crimejob.errors import SourceError
from tests.fakes.server import Fault
from tests.fakes.soda import (
    LEGACY_ID,
    NIBRS_2024_ID,
    NIBRS_2026_ID,
    make_legacy_records,
    make_nibrs_records,
    soda_server,
)

WEEK = (date(2023, 1, 2), date(2023, 1, 8))
LEGACY_PATH = f"/resource/{LEGACY_ID}.json"


@pytest.fixture(autouse=True)
def fast_http(monkeypatch):
    """Small pages (so a week spans several) and retries without real waiting."""
    monkeypatch.setenv("CRIMEJOB_SODA_PAGE_SIZE", "100")
    monkeypatch.setenv("CRIMEJOB_HTTP_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("CRIMEJOB_HTTP_BACKOFF_MAX", "0.01")
    monkeypatch.delenv("CRIMEJOB_SODA_APP_TOKEN", raising=False)
    monkeypatch.delenv("SODA_APP_TOKEN", raising=False)


@pytest.fixture
def week_records() -> list[dict]:
    """350 records reported in WEEK, plus records reported the days around it."""
    inside = make_legacy_records(350, *WEEK, seed=1)
    before = make_legacy_records(
        40, date(2022, 12, 26), date(2023, 1, 1), seed=2, serial_start=50000
    )
    after = make_legacy_records(40, date(2023, 1, 9), date(2023, 1, 15), seed=3, serial_start=60000)
    return inside + before + after


def _in_week(record: dict) -> bool:
    return "2023-01-02" <= record["date_rptd"][:10] <= "2023-01-08"


def _legacy(records):
    return fetch_crime_api(*WEEK, datasets=[LEGACY_ID])[0][1]


def _page_requests(server):
    return [q for p, q, _ in server.requests if p == LEGACY_PATH and "$select" not in q]


def test_fetches_every_record_reported_in_the_window_in_stable_pages(week_records):
    with soda_server({LEGACY_ID: week_records}) as server:
        fetched = _legacy(week_records)
    expected = {r["dr_no"] for r in week_records if _in_week(r)}
    assert sorted(r["dr_no"] for r in fetched) == sorted(expected)
    assert len(fetched) == len(expected) == 350
    pages = _page_requests(server)
    assert [q["$offset"] for q in pages] == ["0", "100", "200", "300"]
    assert {q["$order"] for q in pages} == {"dr_no"}
    assert {q["$limit"] for q in pages} == {"100"}
    assert pages[0]["$where"] == (
        "date_rptd >= '2023-01-02T00:00:00' AND date_rptd < '2023-01-09T00:00:00'"
    )
    counts = [q for p, q, _ in server.requests if q.get("$select") == "count(*)"]
    assert counts and counts[0]["$where"] == pages[0]["$where"]


def test_records_arrive_exactly_as_the_api_sends_them(week_records):
    with soda_server({LEGACY_ID: week_records}):
        fetched = _legacy(week_records)
    by_key = {r["dr_no"]: r for r in week_records}
    assert all(by_key[r["dr_no"]] == r for r in fetched)
    assert all(isinstance(v, str) for r in fetched for v in r.values())


def test_app_token_is_sent_only_when_configured(monkeypatch, week_records):
    with soda_server({LEGACY_ID: week_records}) as server:
        _legacy(week_records)
        assert all("X-App-Token" not in h for _, _, h in server.requests)
        monkeypatch.setenv("CRIMEJOB_SODA_APP_TOKEN", "tok-123")
        _legacy(week_records)
    tokens = [h.get("X-App-Token") for _, _, h in server.requests]
    assert tokens.count("tok-123") == len(tokens) // 2 > 0


def test_report_dates_with_a_time_of_day_count_for_their_whole_last_day():
    records = make_nibrs_records(60, date(2026, 1, 5), date(2026, 1, 11), dataset=NIBRS_2026_ID)
    late_on_sunday = [r for r in records if r["date_rptd"].startswith("2026-01-11")]
    assert late_on_sunday and any(r["date_rptd"][11:] != "00:00:00.000" for r in late_on_sunday)
    with soda_server({NIBRS_2026_ID: records}):
        ((dataset, fetched),) = fetch_crime_api(date(2026, 1, 5), date(2026, 1, 11))
    assert dataset == NIBRS_2026_ID
    assert len(fetched) == len(records)


def test_throttled_429_then_success_returns_the_whole_window(week_records):
    with soda_server({LEGACY_ID: week_records}) as server:
        server.add_faults(LEGACY_PATH, Fault(status=429, headers={"Retry-After": "0"}))
        fetched = _legacy(week_records)
    assert len(fetched) == 350
    assert len({r["dr_no"] for r in fetched}) == 350


@pytest.mark.parametrize("status", [202, 500, 503])
def test_transient_statuses_are_retried(status, week_records):
    with soda_server({LEGACY_ID: week_records}) as server:
        server.add_faults(LEGACY_PATH, Fault(status=status), Fault(status=status))
        fetched = _legacy(week_records)
    assert len(fetched) == 350


def test_500s_past_the_retry_budget_fail_with_a_clear_message(week_records):
    with soda_server({LEGACY_ID: week_records}) as server:
        server.add_faults(LEGACY_PATH, *[Fault(status=500)] * 4)
        with pytest.raises(SourceError, match=r"failed after 4 attempts.*HTTP 500"):
            _legacy(week_records)
    assert len(server.requests) == 4


def test_a_truncated_body_is_fetched_again(week_records):
    with soda_server({LEGACY_ID: week_records}) as server:
        # The count query goes first; the fault hits it, then pages arrive whole.
        server.add_faults(LEGACY_PATH, Fault(truncate=True))
        server.add_faults(LEGACY_PATH, Fault(truncate=True))
        fetched = _legacy(week_records)
    assert sorted(r["dr_no"] for r in fetched) == sorted(
        r["dr_no"] for r in week_records if _in_week(r)
    )


def test_a_page_that_repeats_is_never_returned_twice(week_records):
    with soda_server({LEGACY_ID: week_records}) as server:
        server.app.repeat_offsets = {200: 1}  # offset 200 serves page 100..199 once
        fetched = _legacy(week_records)
    keys = [r["dr_no"] for r in fetched]
    assert len(keys) == len(set(keys)) == 350
    # The window was fetched again from the start after the repeat was seen.
    offsets = [q["$offset"] for q in _page_requests(server)]
    assert offsets == ["0", "100", "200", "0", "100", "200", "300"]


def test_a_page_that_keeps_repeating_fails_the_fetch(week_records):
    with soda_server({LEGACY_ID: week_records}) as server:
        server.app.repeat_offsets = {200: 99}
        with pytest.raises(SourceError, match=r"repeats dr_no"):
            _legacy(week_records)


def test_a_window_that_does_not_match_its_count_fails(week_records):
    with soda_server({LEGACY_ID: week_records}) as server:
        server.app.count_bias = 1  # the source says one more record exists than it serves
        with pytest.raises(SourceError, match=r"350 records arrived but the count query says 351"):
            _legacy(week_records)


@pytest.mark.parametrize("fields_header", [True, False])
def test_a_renamed_field_fails_naming_the_field(fields_header):
    records = make_nibrs_records(40, date(2026, 1, 5), date(2026, 1, 11), dataset=NIBRS_2026_ID)
    with soda_server({NIBRS_2026_ID: records}) as server:
        server.app.fields_header = fields_header
        server.app.rename = {"nibr_code": "nibrs_code"}
        with pytest.raises(SourceError, match=r"nibr_code.*renamed"):
            fetch_crime_api(date(2026, 1, 5), date(2026, 1, 11))


def test_a_renamed_report_date_field_fails_naming_the_field(week_records):
    with soda_server({LEGACY_ID: week_records}) as server:
        server.app.rename = {"date_rptd": "date_reported"}
        with pytest.raises(SourceError, match=r"HTTP 400.*No such column: date_rptd"):
            _legacy(week_records)


def test_an_empty_window_is_a_valid_answer(week_records):
    with soda_server({LEGACY_ID: week_records}):
        fetched = fetch_crime_api(date(2021, 1, 4), date(2021, 1, 10), datasets=[LEGACY_ID])
    assert fetched == [(LEGACY_ID, [])]


def test_configuration_picks_the_dataset_serving_each_report_date():
    windows = dataset_windows(date(2024, 3, 1), date(2024, 3, 13), None, get_settings())
    assert windows == [
        (LEGACY_ID, date(2024, 3, 1), date(2024, 3, 6)),
        (NIBRS_2024_ID, date(2024, 3, 7), date(2024, 3, 13)),
    ]
    late = dataset_windows(date(2025, 12, 29), date(2026, 1, 4), None, get_settings())
    assert [w[0] for w in late] == [NIBRS_2024_ID, NIBRS_2026_ID]
    assert dataset_windows(date(2026, 1, 5), date(2026, 1, 11), [LEGACY_ID], get_settings()) == [
        (LEGACY_ID, date(2026, 1, 5), date(2026, 1, 11))
    ]


def test_each_dataset_is_asked_only_for_the_dates_it_serves():
    legacy = make_legacy_records(30, date(2024, 3, 1), date(2024, 3, 6), seed=4)
    nibrs = make_nibrs_records(30, date(2024, 3, 7), date(2024, 3, 13), dataset=NIBRS_2024_ID)
    with soda_server({LEGACY_ID: legacy, NIBRS_2024_ID: nibrs}) as server:
        fetched = fetch_crime_api(date(2024, 3, 1), date(2024, 3, 13))
    assert [(d, len(r)) for d, r in fetched] == [(LEGACY_ID, 30), (NIBRS_2024_ID, len(nibrs))]
    wheres = {p: q["$where"] for p, q, _ in server.requests if "$select" not in q}
    assert wheres[f"/resource/{NIBRS_2024_ID}.json"] == (
        "date_rptd >= '2024-03-07T00:00:00' AND date_rptd < '2024-03-14T00:00:00'"
    )
    assert "'2024-03-07T00:00:00'" in wheres[LEGACY_PATH]
