"""Issue 13: what an attacker or a careless operator tried, and how the job must answer.

Each test is one class of failure found by trying: bad files, bad arguments, killed or
concurrent runs, the BI role's limits. Answers are one-line errors (exit 1 or 2),
rejects with a reason, or a run that converges; never a traceback, never input as SQL.
"""

from __future__ import annotations

import http.server
import math
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob import cli
from crimejob.ingest.crime_ingest import ingest_crime_csv
from tests.fakes.soda import LEGACY_ID, legacy_frame, make_legacy_records, write_portal_csv

WEEK = (date(2023, 1, 2), date(2023, 1, 8))


def _rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


# --- 1. header text never reaches SQL as code -------------------------------------

STOLEN = 'x",(select/**/rolname/**/from/**/pg_authid/**/limit/**/1)as"stolen'


def test_a_crafted_csv_header_is_kept_as_data_and_never_runs_as_sql(clean_db, tmp_path):
    frame = legacy_frame(20, *WEEK, seed=31)
    path = write_portal_csv(frame, tmp_path / "export.csv")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table[STOLEN] = "kept"
    table["Weird 'Col' %s"] = "also kept"
    table.to_csv(path, index=False)

    report = ingest_crime_csv(clean_db, path)

    assert report.loaded == 20
    keys = _rows(
        clean_db, "SELECT DISTINCT jsonb_object_keys(payload) FROM raw.crime_record_payloads"
    )
    keys = {k for (k,) in keys}
    assert "stolen" not in keys
    assert STOLEN in keys and "weird_'col'_%s" in keys
    values = _rows(
        clean_db, "SELECT DISTINCT payload ->> :k FROM raw.crime_record_payloads", k=STOLEN
    )
    assert values == [("kept",)]


# --- 2. a week that has not happened ----------------------------------------------


def _future_monday() -> date:
    from crimejob.grid.weeks import latest_complete_week

    return latest_complete_week() + timedelta(weeks=2)


def test_running_a_week_that_has_not_ended_is_a_one_line_error(clean_db, capsys):
    week = _future_monday()
    assert cli.main(["run", "--week", str(week), "--offline"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"week {week} has not ended yet" in err
    assert _rows(clean_db, "SELECT count(*) FROM ops.runs") == [(0,)]
    assert _rows(clean_db, "SELECT count(*) FROM grid.weeks") == [(0,)]


def test_a_backfill_reaching_into_the_future_is_refused_before_it_starts(clean_db, capsys):
    code = cli.main(["backfill", "--start", "2023-01-02", "--end", str(_future_monday())])
    assert code == cli.EXIT_FAILED
    assert "has not ended yet" in capsys.readouterr().err
    assert _rows(clean_db, "SELECT count(*) FROM ops.runs") == [(0,)]


def test_the_completeness_check_fails_when_the_trailing_median_is_zero(clean_db):
    from crimejob.grid.lag import run_weeks
    from crimejob.job.steps import IncompleteWeekError, check_completeness

    week = date(2023, 3, 6)
    through = run_weeks(week).history_through
    with clean_db.begin() as conn:
        for i in range(9):
            conn.execute(
                sa.text(
                    "INSERT INTO grid.weeks (week_start, series, incident_total, violent_total) "
                    "VALUES (:w, 'legacy', 0, 0)"
                ),
                {"w": through - timedelta(weeks=i)},
            )
    with pytest.raises(IncompleteWeekError, match="median of 0 incidents"):
        check_completeness(clean_db, week)


def test_a_null_metric_stored_for_nan_reads_back_as_nan_and_the_gate_still_decides(clean_db):
    from crimejob.models.registry import production_version
    from crimejob.models.training import gate_decision

    with clean_db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ml.model_versions (model_name, version, mode, design_hash, "
                "data_through, trained_through, train_first_target, train_weeks, "
                "validation_weeks, last_retrain_week, hyperparameters, fit, validation, "
                "artifact_path, promoted) VALUES ('rate_cnn', 1, 'retrain', 'd', "
                "'2023-01-02', '2022-12-19', '2022-01-03', 50, ARRAY[DATE '2022-12-19'], "
                "'2023-01-02', '{}', '{}', '{\"poisson_deviance\": null, \"mae\": null}', "
                "'/nowhere.keras', true)"
            )
        )
    production = production_version(clean_db, "rate_cnn")
    assert math.isnan(production.validation["poisson_deviance"])
    candidate = {"poisson_deviance": 0.5, "mae": 0.3}
    decision = gate_decision(candidate, production.validation, {"mean_4w": candidate})
    assert decision["promoted"] is False


# --- 3. killed runs ----------------------------------------------------------------


def _incidents(engine, week: date) -> int:
    (row,) = _rows(engine, "SELECT incident_total FROM grid.weeks WHERE week_start = :w", w=week)
    return row[0]


def test_a_rerun_aggregates_the_late_report_weeks_a_killed_run_had_loaded(clean_db):
    from crimejob.grid.aggregate import aggregate_weeks
    from crimejob.ingest.crime_ingest import load_crime_records
    from crimejob.job import steps
    from crimejob.job.results import LoadResult

    old_week = date(2023, 1, 2)
    records = make_legacy_records(200, old_week, date(2023, 2, 26), seed=33)
    load_crime_records(clean_db, [(LEGACY_ID, records)])
    aggregate_weeks(clean_db, old_week, date(2023, 2, 20))
    before = _incidents(clean_db, old_week)

    # The killed run: a late report of an old week loaded, then kill -9 before aggregate.
    late = dict(records[0], dr_no="239999999", date_rptd="2023-02-27T00:00:00.000",
                date_occ="2023-01-03T00:00:00.000")  # fmt: skip
    first = load_crime_records(clean_db, [(LEGACY_ID, [late])])
    assert first.weeks_touched == {old_week}

    # The rerun loads the same record (unchanged: it touches no week) and aggregates.
    again = load_crime_records(clean_db, [(LEGACY_ID, [late])])
    assert again.weeks_touched == set()
    loaded = LoadResult(window_start=date(2023, 2, 13), weeks_touched=[])
    out = steps.aggregate(clean_db, date(2023, 2, 20), loaded)

    assert out.older_weeks == [old_week]
    assert _incidents(clean_db, old_week) == before + 1
    assert (old_week,) not in _rows(clean_db, "SELECT week_start FROM ops.stale_weeks")


_KILLED_RUN = """
import sys, time
from crimejob.db import get_engine
from crimejob.runs import start_run
start_run(get_engine(sys.argv[1]), "weekly")
print("started", flush=True)
time.sleep(120)
"""


def test_a_killed_run_is_marked_abandoned_and_a_live_one_is_left_running(clean_db, database_url):
    from crimejob.runs import finish_run, start_run

    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, database_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "started"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    live = start_run(clean_db, "ingest_crime")
    statuses = dict(_rows(clean_db, "SELECT kind, status FROM ops.runs"))
    assert statuses == {"weekly": "abandoned", "ingest_crime": "running"}

    later = start_run(clean_db, "aggregate")
    assert (
        dict(_rows(clean_db, "SELECT run_id, status FROM ops.runs WHERE run_id = :r", r=live))[live]
        == "running"
    )
    finish_run(clean_db, later, "succeeded")
    finish_run(clean_db, live, "succeeded")


# --- 4. two runs of one week at once -------------------------------------------------


def test_a_second_run_of_the_same_week_waits_for_the_first(clean_db, monkeypatch):
    from crimejob.job.pipeline import run_week

    # nothing listens there: once it has the lock, the run fails at its first fetch
    monkeypatch.setenv("CRIMEJOB_SODA_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CRIMEJOB_HTTP_MAX_ATTEMPTS", "1")
    from crimejob.runs import WEEK_LOCK_KEY, week_lock

    week = date(2023, 3, 6)
    outcome: list = []

    def second() -> None:
        try:
            run_week(clean_db, week)
        except Exception as exc:
            outcome.append(exc)

    def waiting() -> int:
        return _rows(
            clean_db,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = :k AND objid = :w",
            k=WEEK_LOCK_KEY,
            w=week.toordinal(),
        )[0][0]

    with week_lock(clean_db, week):
        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + 20
        while waiting() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert waiting() == 1 and thread.is_alive() and not outcome
    thread.join(60)
    assert not thread.is_alive() and outcome


def test_concurrent_writers_of_one_extract_each_leave_a_whole_file(tmp_path):
    from crimejob.job.steps import _read_json, _write_json_atomic

    path = tmp_path / "crime.json.gz"
    payloads = [[[f"writer{i}", list(range(20_000))]] for i in range(6)]
    errors: list = []

    def write(payload) -> None:
        try:
            for _ in range(5):
                _write_json_atomic(path, payload)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _read_json(path) in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["crime.json.gz"]


# --- 5. a weather value cut mid-number ------------------------------------------------


def test_a_weather_csv_cut_mid_number_is_refused_not_loaded_short(clean_db, tmp_path, capsys):
    from tests.fakes.ncei import make_daily_summaries, to_csv

    text = to_csv(make_daily_summaries(start=date(2023, 1, 2), end=date(2023, 1, 8)))
    cut = text.rstrip("\n")
    cut = cut[: cut.rindex('"')]  # ends inside the last value, e.g. "7 of "72"
    assert cut[-1].isdigit()
    path = tmp_path / "daily.csv"
    path.write_text(cut)

    assert cli.main(["ingest", "weather", "--csv", str(path)]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "truncated" in err
    assert _rows(clean_db, "SELECT count(*) FROM raw.weather_daily") == [(0,)]


# --- 6. reversed ranges ----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", "crime", "--start", "2023-02-01", "--end", "2023-01-01"],
        ["ingest", "weather", "--start", "2023-02-01", "--end", "2023-01-01"],
        ["aggregate", "--start", "2023-02-01", "--end", "2023-01-01"],
        ["backfill", "--start", "2023-02-06", "--end", "2023-01-02"],
        ["backtest", "--start", "2023-02-06", "--end", "2023-01-02", "--models", "mean_4w"],
    ],
)
def test_a_start_after_the_end_is_a_one_line_usage_error(clean_db, capsys, argv):
    assert cli.main(argv) == cli.EXIT_USAGE == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is after --end" in err
    assert _rows(clean_db, "SELECT count(*) FROM ops.runs") == [(0,)]


def test_the_library_refuses_a_reversed_range_too(clean_db):
    from crimejob.errors import UsageError
    from crimejob.grid.aggregate import aggregate_weeks

    with pytest.raises(UsageError, match="is after --end"):
        aggregate_weeks(clean_db, date(2023, 2, 6), date(2023, 1, 2))


# --- 7. a one-line error instead of a traceback --------------------------------------

_PORTAL_HEADER = "DR_NO,Date Rptd,DATE OCC,TIME OCC,Crm Cd,LAT,LON\n"
_PORTAL_ROW = "230101234,01/02/2023 12:00:00 AM,01/01/2023 12:00:00 AM,1200,110,34.05,-118.25\n"
_WEATHER_HEADER = '"STATION","DATE","TMAX","TMIN","PRCP"\n'
_WEATHER_ROW = '"USW00023174","2023-01-02","65","48","0.00"\n'

_BAD_FILES = {
    "binary": lambda header, row: bytes(range(256)) * 8,
    "utf16": lambda header, row: (header + row).encode("utf-16"),
    "latin1": lambda header, row: (header + row[:5] + "é" + row[5:]).encode("latin-1"),
    "nul": lambda header, row: (header + row[:10] + "\x00" + row[10:]).encode(),
    "huge_line": lambda header, row: (header.rstrip("\n") + "x" * 20_000_000 + "\n" + row).encode(),
    "repeated_header": lambda header, row: (
        header.rstrip("\n") + "," + header.split(",")[1] + "\n" + row.rstrip("\n") + ",x\n"
    ).encode(),
}


def _one_line_failure(argv: list[str], capsys) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED, err
    assert err.count("\n") == 1 and err.startswith("crimejob "), err
    assert len(err) < 1000
    return err


@pytest.mark.parametrize("kind", sorted(_BAD_FILES))
@pytest.mark.parametrize("source", ["crime", "weather"])
def test_an_unreadable_file_is_a_one_line_error(clean_db, tmp_path, capsys, kind, source):
    header, row = (
        (_PORTAL_HEADER, _PORTAL_ROW) if source == "crime" else (_WEATHER_HEADER, _WEATHER_ROW)
    )
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(_BAD_FILES[kind](header, row))
    _one_line_failure(["ingest", source, "--csv", str(path)], capsys)
    assert _rows(clean_db, "SELECT count(*) FROM raw.crime_records") == [(0,)]
    assert _rows(clean_db, "SELECT count(*) FROM raw.weather_daily") == [(0,)]


@pytest.mark.parametrize("source", ["crime", "weather"])
@pytest.mark.parametrize("where", ["missing", "directory"])
def test_a_missing_file_or_a_directory_is_a_one_line_error(
    clean_db, tmp_path, capsys, source, where
):
    path = tmp_path / "nothing.csv" if where == "missing" else tmp_path
    err = _one_line_failure(["ingest", source, "--csv", str(path)], capsys)
    assert str(path) in err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--week", "2023-01-02", "--model", "no_such_model"],
        ["backtest", "--start", "2023-01-02", "--end", "2023-02-06", "--models", "no_such_model"],
    ],
)
def test_an_unknown_model_name_is_a_one_line_error(clean_db, capsys, argv):
    err = _one_line_failure(argv, capsys)
    assert "no_such_model" in err


@pytest.mark.parametrize("value", ["{not json", "[1, 2]", '{"epochs": "many"}', '{"no_such": 1}'])
def test_malformed_hyperparameters_are_a_one_line_error(clean_db, capsys, monkeypatch, value):
    monkeypatch.setenv("CRIMEJOB_HYPERPARAMETERS", value)
    err = _one_line_failure(["train", "--week", "2023-01-02", "--model", "rate_cnn"], capsys)
    assert "CRIMEJOB_HYPERPARAMETERS" in err


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody:secret@127.0.0.1:9/crimejob",
        "not a url at all",
        "postgresql://nobody:secret@127.0.0.1:notaport/crimejob",
    ],
)
def test_a_dead_or_malformed_database_url_is_a_one_line_error(capsys, monkeypatch, url):
    from crimejob.db import _engine_for

    _engine_for.cache_clear()
    monkeypatch.setenv("CRIMEJOB_DATABASE_URL", url)
    try:
        err = _one_line_failure(
            ["aggregate", "--start", "2023-01-02", "--end", "2023-01-08"], capsys
        )
    finally:
        _engine_for.cache_clear()
    assert "secret" not in err and "CRIMEJOB_DATABASE_URL" in err


# --- 8. the BI role's limits ------------------------------------------------------------


@pytest.fixture
def bi_engine(database_url, clean_db):
    url = sa.engine.make_url(database_url).set(username="crimejob_bi", password=None)
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT lo_create(0)",
        "SELECT lo_creat(-1)",
        "SELECT lo_from_bytea(0, '\\x00'::bytea)",
    ],
)
def test_the_bi_role_cannot_create_large_objects(bi_engine, statement):
    with (
        bi_engine.connect() as conn,
        pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
    ):
        conn.execute(sa.text(statement))


def test_the_bi_role_has_a_statement_timeout_that_survives_an_upgrade(engine, bi_engine):
    from crimejob.db import upgrade

    upgrade(engine)  # the grants file is re-applied on every upgrade
    with bi_engine.connect() as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "1min"
        assert conn.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar() == "5min"


# --- 9. the SODA app token stays with its host ----------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list = []
    target = ""

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).seen.append(dict(self.headers))
        if self.target:
            self.send_response(302)
            self.send_header("Location", self.target + self.path)
            self.end_headers()
            return
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_soda_app_token_does_not_follow_a_redirect_to_another_host(monkeypatch):
    from crimejob.ingest.sources.http import HttpClient

    other = type("Other", (_Recorder,), {"seen": [], "target": ""})
    elsewhere = _serve(other)
    mirror = type("Mirror", (_Recorder,), {"seen": [], "target": ""})
    mirror.target = f"http://localhost:{elsewhere.server_address[1]}"
    soda = _serve(mirror)
    try:
        client = HttpClient(headers={"X-App-Token": "s3cret"}, max_attempts=1)
        assert client.get_json(f"http://127.0.0.1:{soda.server_address[1]}/resource/x.json") == []
    finally:
        soda.shutdown()
        elsewhere.shutdown()
    assert mirror.seen[0].get("X-App-Token") == "s3cret"
    assert len(other.seen) == 1 and "X-App-Token" not in other.seen[0]


# --- 10. implausible values ---------------------------------------------------------------


def test_crime_records_from_the_future_before_1900_or_reported_before_occurring_are_rejected(
    clean_db,
):
    from crimejob.ingest.crime_ingest import load_crime_records

    good = make_legacy_records(4, *WEEK, seed=35)
    future = dict(good[0], date_rptd="3000-01-02T00:00:00.000", date_occ="3000-01-01T00:00:00.000")
    ancient = dict(good[1], date_rptd="1899-12-30T00:00:00.000", date_occ="1899-12-29T00:00:00.000")
    backwards = dict(
        good[2], date_rptd="2023-01-03T00:00:00.000", date_occ="2023-01-05T00:00:00.000"
    )
    report = load_crime_records(clean_db, [(LEGACY_ID, [future, ancient, backwards, good[3]])])
    assert report.loaded == 1 and report.rejected == {"implausible_date": 3}
    details = {k: d for k, d in _rows(clean_db, "SELECT record_key, detail FROM ops.rejects")}
    assert "in the future" in details[future["dr_no"]]
    assert "before 2000-01-01" in details[ancient["dr_no"]]
    assert "is after date_rptd" in details[backwards["dr_no"]]


def test_weather_days_out_of_time_and_tmin_above_tmax_are_rejected(clean_db, monkeypatch):
    from crimejob.ingest.weather_ingest import load_weather_records

    monkeypatch.setenv("CRIMEJOB_STATIONS", "USW00023174:33.94:-118.39:LAX")
    day = {"STATION": "USW00023174", "TMAX": "70", "TMIN": "50", "PRCP": "0.00"}
    records = [
        dict(day, DATE="2023-01-02"),
        dict(day, DATE="3023-01-03"),
        dict(day, DATE="1850-01-04"),
        dict(day, DATE="2023-01-05", TMAX="50", TMIN="70"),
    ]
    report = load_weather_records(clean_db, records, source="test")
    assert report.loaded == 1 and report.rejected == {"bad_date": 2, "bad_value": 1}
    (detail,) = _rows(clean_db, "SELECT detail FROM ops.rejects WHERE reason = 'bad_value'")[0]
    assert "TMIN 70 is above TMAX 50" == detail


@pytest.mark.parametrize(
    "hyperparameters",
    [{"epochs": -1}, {"window": 0}, {"batch_size": 2.5}, {"learning_rate": float("nan")}],
)
def test_implausible_hyperparameters_are_refused_with_the_reason(hyperparameters):
    from crimejob.errors import ConfigError
    from crimejob.models.forecasters import get_forecaster

    (key,) = hyperparameters
    with pytest.raises(ConfigError, match=f"hyperparameter '{key}' must"):
        get_forecaster("rate_cnn", **hyperparameters)


# --- 12. the data path at speed keeps its results -------------------------------------------


def test_a_few_weeks_are_counted_exactly_as_the_whole_table_grouping_counts_them(clean_db):
    from crimejob.grid.aggregate import _COUNTS, _COUNTS_FEW_WEEKS
    from crimejob.ingest.crime_ingest import load_crime_records
    from tests.fakes.soda import NIBRS_2026_ID, make_nibrs_records

    start, end = date(2023, 1, 2), date(2023, 3, 26)
    load_crime_records(
        clean_db,
        [
            (LEGACY_ID, make_legacy_records(1500, start, end, seed=41)),
            (NIBRS_2026_ID, make_nibrs_records(700, start, end, seed=42)),
        ],
    )
    order = " ORDER BY 1, 2, 3"
    for first, last in [
        (date(2023, 1, 9), date(2023, 1, 29)),
        (date(2023, 2, 6), date(2023, 2, 6)),
    ]:
        params = {"first": first, "last": last}
        with clean_db.connect() as conn:
            whole = conn.execute(sa.text(str(_COUNTS) + order), params).all()
            few = conn.execute(sa.text(str(_COUNTS_FEW_WEEKS) + order), params).all()
        assert whole and few == whole


def test_a_run_reads_its_as_of_history_once_and_each_step_gets_its_own_copy(clean_db, monkeypatch):
    from crimejob.grid import gridstore
    from crimejob.grid.aggregate import aggregate_weeks
    from crimejob.ingest.crime_ingest import load_crime_records

    records = make_legacy_records(600, date(2022, 10, 3), date(2023, 1, 29), seed=43)
    load_crime_records(clean_db, [(LEGACY_ID, records)])
    aggregate_weeks(clean_db, date(2022, 10, 3), date(2023, 1, 23))
    week = date(2023, 1, 23)
    fresh = gridstore.history_for_run(clean_db, week)
    reads = []
    real = gridstore.load_history
    monkeypatch.setattr(gridstore, "load_history", lambda *a, **k: reads.append(a) or real(*a, **k))
    with gridstore.run_histories():
        first = gridstore.history_for_run(clean_db, week)
        first.crime[:] = -1  # a step that changes its copy changes nobody else's
        second = gridstore.history_for_run(clean_db, week)
    assert len(reads) == 1
    assert (second.crime == fresh.crime).all() and (second.incidents == fresh.incidents).all()
    assert (second.week_starts == fresh.week_starts).all()
    gridstore.history_for_run(clean_db, week)  # outside a run: read again
    assert len(reads) == 2


def test_late_report_weeks_are_aggregated_in_one_call_without_the_weeks_between():
    from crimejob.job.steps import aggregation_ranges

    def w(n: int) -> date:
        return date(2023, 1, 2) + timedelta(weeks=n)

    window = (w(18), w(22))
    # only the touched weeks: 1, 3 and 7 alone, 11..12 together; 16..17 join the window
    ranges = aggregation_ranges([w(1), w(3), w(7), w(11), w(12), w(16), w(17)], *window)
    assert ranges == [(w(16), w(22)), (w(11), w(12)), (w(7), w(7)), (w(3), w(3)), (w(1), w(1))]
    assert aggregation_ranges([], *window) == [window]
    assert aggregation_ranges([w(17)], *window) == [(w(17), w(22))]


def test_ranges_aggregated_in_one_transaction_write_what_each_range_alone_writes(clean_db):
    from crimejob.grid.aggregate import aggregate_ranges, aggregate_weeks
    from crimejob.ingest.crime_ingest import load_crime_records
    from tests.fakes.soda import NIBRS_2026_ID, make_nibrs_records

    records = make_legacy_records(900, date(2023, 1, 2), date(2023, 3, 26), seed=44)
    nibrs = make_nibrs_records(500, date(2023, 1, 2), date(2023, 3, 26), seed=45)
    # incidents with offense records in two ranges (the divisions count one per range)
    later = list(
        {r["caseno"]: r for r in nibrs if "2023-02-13" <= r["date_occ"] < "2023-03-13"}.values()
    )[:5]
    nibrs += [
        {**r, "uniquenibrno": r["caseno"] + "_13A_9", "nibr_code": "13A", "area": "07",
         "area_name": "Wilshire", "date_occ": "2023-01-04T00:00:00.000"}
        for r in later
    ]  # fmt: skip
    load_crime_records(clean_db, [(LEGACY_ID, records), (NIBRS_2026_ID, nibrs)])
    with clean_db.connect() as conn:
        straddling = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT incident_id FROM raw.crime_records "
                "WHERE series = 'nibrs' GROUP BY incident_id "
                "HAVING min(week_start) < '2023-01-16' AND max(week_start) > '2023-02-05') AS t"
            )
        ).scalar_one()
    assert straddling == 5
    ranges = [
        (date(2023, 1, 2), date(2023, 1, 9)),
        (date(2023, 1, 23), date(2023, 1, 23)),
        (date(2023, 2, 6), date(2023, 3, 20)),
    ]
    tables = {
        "grid.weekly": "SELECT * FROM grid.weekly ORDER BY 1, 2",
        "grid.weeks": "SELECT week_start, series, incident_total, violent_total, "
        "legacy_incidents, nibrs_incidents, police_initiated, stations_reported, "
        "holiday_names FROM grid.weeks ORDER BY 1",
        "grid.weekly_categories": "SELECT * FROM grid.weekly_categories ORDER BY 1, 2, 3",
        "grid.weekly_areas": "SELECT * FROM grid.weekly_areas ORDER BY 1, 2, 3",
        "grid.cell_areas": "SELECT * FROM grid.cell_areas ORDER BY 1",
    }
    for first, last in ranges:
        aggregate_weeks(clean_db, first, last)
    alone = {t: _rows(clean_db, q) for t, q in tables.items()}
    with clean_db.begin() as conn:
        for table in tables:
            conn.execute(sa.text(f"DELETE FROM {table}"))
    report = aggregate_ranges(clean_db, ranges)
    together = {t: _rows(clean_db, q) for t, q in tables.items()}
    assert len(report.weeks) == 10 and report.rows_written == 10 * 4500
    for table in tables:
        assert together[table] and together[table] == alone[table], table
    # again: only the rows that differ are rewritten (none; then the cells a late report
    # and a changed weather day touch), and the rows are what each range alone writes
    again = aggregate_ranges(clean_db, ranges)
    assert again.rows_written == 0 and again.rows_kept == 10 * 4500
    assert {t: _rows(clean_db, q) for t, q in tables.items()} == alone
    late = make_legacy_records(3, date(2023, 1, 23), date(2023, 1, 29), seed=46)
    for i, record in enumerate(late):
        record["dr_no"] = f"99{i:07d}"
    load_crime_records(clean_db, [(LEGACY_ID, late)])
    with clean_db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO raw.weather_stations (station_id, name, lat, lon) "
                "VALUES ('TEST0001', 'test', 34.05, -118.25)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO raw.weather_daily (station_id, day, tmax_f, tmin_f, prcp_in, "
                "source, payload) SELECT 'TEST0001', d, 70, 50, 0, 'ncei-csv', '{}' "
                "FROM generate_series("
                "'2023-02-06'::date, '2023-02-12'::date, '1 day') AS d"
            )
        )
    revised = aggregate_ranges(clean_db, ranges)
    assert 4500 < revised.rows_written <= 4500 + 3 and revised.rows_kept > 8 * 4500
    changed = {t: _rows(clean_db, q) for t, q in tables.items()}
    assert changed["grid.weekly"] != alone["grid.weekly"]
    with clean_db.begin() as conn:
        for table in tables:
            conn.execute(sa.text(f"DELETE FROM {table}"))
    for first, last in ranges:
        aggregate_weeks(clean_db, first, last)
    assert {t: _rows(clean_db, q) for t, q in tables.items()} == changed
