"""The SODA client against a real local HTTP server speaking the API's query subset.

Each test is a behaviour the weekly job depends on: the window arrives whole,
in stable pages, or the fetch fails loudly; it never duplicates or loses records.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from crimejob import cli
from crimejob.config import get_settings
from crimejob.errors import CrimejobError, SourceError
from crimejob.ingest.crime_ingest import dataset_windows, fetch_crime_api
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


def test_by_default_legacy_serves_reports_to_its_end_and_k7nn_every_nibrs_report():
    settings = get_settings()
    # the transition: both series, each dataset for the dates it serves
    assert dataset_windows(date(2024, 3, 1), date(2024, 3, 13), None, settings) == [
        (LEGACY_ID, date(2024, 3, 1), date(2024, 3, 13)),
        (NIBRS_2026_ID, date(2024, 3, 7), date(2024, 3, 13)),
    ]
    # the legacy dataset ends with its last report, 2025-03-28
    assert dataset_windows(date(2025, 3, 24), date(2025, 4, 6), None, settings) == [
        (LEGACY_ID, date(2025, 3, 24), date(2025, 3, 28)),
        (NIBRS_2026_ID, date(2025, 3, 24), date(2025, 4, 6)),
    ]
    # 2025 and 2026 NIBRS reports both come from k7nn-b2ep; y8y3-fqfu is never asked
    assert dataset_windows(date(2025, 12, 29), date(2026, 10, 4), None, settings) == [
        (NIBRS_2026_ID, date(2025, 12, 29), date(2026, 10, 4)),
    ]
    assert dataset_windows(date(2023, 1, 2), date(2023, 1, 8), None, settings) == [
        (LEGACY_ID, date(2023, 1, 2), date(2023, 1, 8)),
    ]
    assert dataset_windows(date(2026, 1, 5), date(2026, 1, 11), [LEGACY_ID], settings) == [
        (LEGACY_ID, date(2026, 1, 5), date(2026, 1, 11))
    ]


def test_y8y3_is_read_only_when_configured(monkeypatch):
    monkeypatch.setenv("CRIMEJOB_CRIME_DATASETS", f"{NIBRS_2024_ID},{NIBRS_2026_ID}:2026-08-18:")
    windows = dataset_windows(date(2025, 12, 29), date(2026, 8, 23), None, get_settings())
    assert windows == [
        (NIBRS_2024_ID, date(2025, 12, 29), date(2026, 8, 17)),
        (NIBRS_2026_ID, date(2026, 8, 18), date(2026, 8, 23)),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("abcd-1234", r"'abcd-1234' is not an LAPD dataset"),
        (f"{NIBRS_2026_ID}:2026-13-01", r"bad date"),
        (f"{NIBRS_2026_ID}:2026-01-01:2026-02-01:x", r"cannot parse"),
        (" , ", r"names no dataset"),
    ],
)
def test_a_bad_dataset_setting_is_a_one_line_error_naming_it(monkeypatch, text, message):
    monkeypatch.setenv("CRIMEJOB_CRIME_DATASETS", text)
    with pytest.raises(CrimejobError, match=rf"CRIMEJOB_CRIME_DATASETS.*{message}"):
        get_settings()


def test_each_dataset_is_asked_only_for_the_dates_it_serves():
    legacy = make_legacy_records(30, date(2024, 3, 1), date(2024, 3, 13), seed=4)
    nibrs = make_nibrs_records(30, date(2024, 3, 7), date(2024, 3, 13))
    with soda_server({LEGACY_ID: legacy, NIBRS_2026_ID: nibrs}) as server:
        fetched = fetch_crime_api(date(2024, 3, 1), date(2024, 3, 13))
    assert [(d, len(r)) for d, r in fetched] == [(LEGACY_ID, 30), (NIBRS_2026_ID, len(nibrs))]
    wheres = {p: q["$where"] for p, q, _ in server.requests if "$select" not in q}
    assert wheres[f"/resource/{NIBRS_2026_ID}.json"] == (
        "date_rptd >= '2024-03-07T00:00:00' AND date_rptd < '2024-03-14T00:00:00'"
    )
    assert wheres[LEGACY_PATH] == (
        "date_rptd >= '2024-03-01T00:00:00' AND date_rptd < '2024-03-14T00:00:00'"
    )
    assert f"/resource/{NIBRS_2024_ID}.json" not in {p for p, _, _ in server.requests}


@pytest.mark.parametrize("status", [403, 404, 410])
def test_a_closed_dataset_fails_in_one_line_naming_it_and_the_setting(monkeypatch, status):
    monkeypatch.setenv("CRIMEJOB_CRIME_DATASETS", f"{LEGACY_ID},{NIBRS_2024_ID}")
    legacy = make_legacy_records(20, date(2024, 3, 4), date(2024, 3, 10))
    with soda_server({LEGACY_ID: legacy}) as server:
        server.app.closed[NIBRS_2024_ID] = status
        with pytest.raises(SourceError) as caught:
            fetch_crime_api(date(2024, 3, 4), date(2024, 3, 10))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"SODA dataset {NIBRS_2024_ID} answered HTTP {status}")
    assert f"remove {NIBRS_2024_ID} from CRIMEJOB_CRIME_DATASETS" in message
    # a closed dataset is not retried: one request, no backoff
    asked = [p for p, _, _ in server.requests if NIBRS_2024_ID in p]
    assert len(asked) == 1


def test_a_closed_dataset_named_on_the_command_line_says_so(clean_db, capsys):
    with soda_server({}) as server:
        server.app.closed[NIBRS_2024_ID] = 403
        code = cli.main(
            ["ingest", "crime", "--start", "2025-01-06", "--end", "2025-01-12",
             "--dataset", NIBRS_2024_ID]
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert err.count("\n") == 1 and err.startswith(f"crimejob ingest: SODA dataset {NIBRS_2024_ID}")
    assert f"drop {NIBRS_2024_ID} from --dataset" in err


def test_the_portal_publishes_each_record_13_days_after_its_report_date():
    records = make_nibrs_records(80, date(2026, 9, 7), date(2026, 9, 20))
    with soda_server({NIBRS_2026_ID: records}) as server:
        server.app.now = datetime(2026, 9, 28)  # a Monday: reports up to Sept 15 are out
        fetched = fetch_crime_api(date(2026, 9, 7), date(2026, 9, 27))
        server.app.now = datetime(2026, 10, 5)
        a_week_later = fetch_crime_api(date(2026, 9, 7), date(2026, 9, 27))
    ((_, early),), ((_, later),) = fetched, a_week_later
    assert {r["date_rptd"][:10] for r in early} <= {f"2026-09-{d:02d}" for d in range(7, 16)}
    assert len(early) == sum(r["date_rptd"] <= "2026-09-15T00:00:00.000" for r in records)
    assert len(later) == len(records)
