"""Land LAPD crime records in ``raw.crime_records``: from the SODA API, or a portal CSV export.

Both paths map records with the dataset adapters (``crimejob.ingest.sources.lapd``),
COPY the usable ones into a temporary staging table and merge them with one
``INSERT ... ON CONFLICT (source, record_id) DO UPDATE ... WHERE`` the payload
changed, so a rerun over the same records changes nothing and counts them as
unchanged. Records that cannot be used go to ``ops.rejects``
with their reason in the same transaction.

The CSV path is built for the million-row backfill: PostgreSQL parses the file
itself while pandas, in a thread beside it, reads only the fields the mapping
needs; the record keeps the export's row as text (no jsonb is built per row);
and a load into an empty table builds its indexes after the rows are in.

Decisions worth knowing:

- Transactions: one per dataset window (API), one for the whole file (CSV), so
  a failure leaves nothing partial behind.
- Which dataset serves which report dates is ``settings.crime_datasets``
  (``CRIMEJOB_CRIME_DATASETS``); each dataset is asked only for its own dates.
  By default the legacy ``2nrs-mtv8`` serves reports up to its end (2025-03-28)
  and ``k7nn-b2ep`` every NIBRS report from 2024-03-07: the transition year is
  read from both, each record tagged with its series. A dataset that answers
  403/404/410 (LAPD closes frozen ones: ``y8y3-fqfu``) fails the fetch in one
  line naming the dataset and the setting to change.
- A record rejected in an earlier run that now arrives usable is loaded, and
  its earlier rejects (same source and key) are deleted: ``ops.rejects`` holds
  what is unusable now. A record loaded earlier that now arrives unusable keeps
  its loaded row and gains a reject, so both are visible.
- Rejects are keyed by dataset id whichever path read them (the CSV file name
  and line are in ``detail``), so an API run can resolve a CSV reject.
- How a record keeps its source form (migration 240): an API record its jsonb
  ``payload``; a CSV record the export's row as text, ``csv_fields`` (one value
  per column, in the API's form: empty fields NULL, dates as floating
  timestamps, ``time_occ`` as four digits), named by ``csv_layout``
  (``raw.crime_csv_layouts``, the header's SODA field names, kept as data).
  ``raw.crime_payload()`` and the view ``raw.crime_record_payloads`` build the
  payload on read: SODA field names, empty fields left out. The same record
  therefore reads the same whether the API or the export loaded it, and a
  record is unchanged when that payload is (two rows of the same layout compare
  their fields). Rejected CSV rows keep the row exactly as it was in the file.
- A natural key that appears twice in one batch (API window or CSV file) keeps
  its last record; the earlier copy is rejected as ``duplicate_key``.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.config import (
    CRIME_DATASETS_SETTING,
    DEFAULT_CRIME_DATASETS,
    KNOWN_CRIME_DATASETS,
    Settings,
    get_settings,
)
from crimejob.dbcopy import copy_frame
from crimejob.errors import SourceError, check_range
from crimejob.grid import staleweeks
from crimejob.ingest.rejects import store_rejects
from crimejob.ingest.sources import lapd
from crimejob.ingest.sources.http import HttpStatusError
from crimejob.ingest.sources.soda import SodaClient, WindowQuery
from crimejob.reports import IngestReport
from crimejob.runs import finish_run, start_run

log = logging.getLogger(__name__)

CSV_CHUNK_ROWS = 250_000
CSV_WORK_MEM = "256MB"
_TS_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.MS'  # a SODA floating timestamp

_SELECTED = (
    "s.source, s.record_id, s.incident_id, s.series, s.occurred_at, s.reported_at, "
    "s.week_start, s.lat, s.lon, s.cell_id, s.offense_codes::text[], s.is_violent"
)
_MAPPED_COLUMNS_SQL = """
    source text, record_id text, incident_id text, series text,
    occurred_at timestamp, reported_at timestamp, week_start date,
    lat double precision, lon double precision, cell_id integer,
    offense_codes text, is_violent boolean"""


# --- fetch ----------------------------------------------------------------------


def dataset_windows(
    start: date, end: date, datasets: list[str] | None, settings: Settings
) -> list[tuple[str, date, date]]:
    """Which dataset serves which part of the report dates [start, end].

    With ``datasets`` given, each is asked for the whole window; otherwise
    ``settings.crime_datasets`` decides (its ``reported_to`` is exclusive).
    """
    if datasets:
        return [(dataset_id, start, end) for dataset_id in datasets]
    windows = []
    for ds in settings.crime_datasets:
        lo = max(start, ds.reported_from)
        hi = min(end, ds.reported_to - timedelta(days=1)) if ds.reported_to else end
        if lo <= hi:
            windows.append((ds.dataset_id, lo, hi))
    return windows


# Answers that mean the dataset itself is gone or closed, not that a request failed.
GONE_STATUSES = {403: "Forbidden", 404: "Not Found", 410: "Gone"}


def _gone(dataset_id: str, exc: HttpStatusError, from_option: bool) -> SourceError:
    """One line naming the dataset and what to change (LAPD freezes and closes datasets:
    y8y3-fqfu answers 403 since its rows moved to k7nn-b2ep)."""
    if from_option:
        change = f"drop {dataset_id} from --dataset"
    elif any(ds.dataset_id == dataset_id for ds in DEFAULT_CRIME_DATASETS):
        change = f"set {CRIME_DATASETS_SETTING} to the datasets that serve these report dates"
    else:
        change = f"remove {dataset_id} from {CRIME_DATASETS_SETTING}"
    nibrs = KNOWN_CRIME_DATASETS["k7nn-b2ep"]
    return SourceError(
        f"SODA dataset {dataset_id} answered HTTP {exc.status} "
        f"({GONE_STATUSES[exc.status]}) at {exc.url.split('?')[0]}: it is closed or gone; "
        f"{change} (k7nn-b2ep serves every NIBRS report since {nibrs.reported_from})"
    )


def fetch_crime_api(
    start: date, end: date, datasets: list[str] | None = None, settings: Settings | None = None
) -> list[tuple[str, list[dict]]]:
    """Records whose report date is in [start, end] from each dataset serving those dates,
    each window verified complete against a count query. No database writes.

    A dataset that answers 403, 404 or 410 fails the fetch with one line naming it
    and the setting to change."""
    settings = settings or get_settings()
    client = SodaClient(settings)
    fetched = []
    for dataset_id, lo, hi in dataset_windows(start, end, datasets, settings):
        adapter = lapd.adapter_for(dataset_id)
        query = WindowQuery(
            dataset_id=dataset_id,
            date_field=adapter.report_field,
            start=lo,
            end=hi,
            order=adapter.order_field,
            key_field=adapter.key_field,
            required_fields=adapter.required_fields,
        )
        try:
            fetched.append((dataset_id, client.fetch_window(query)))
        except HttpStatusError as exc:
            if exc.status in GONE_STATUSES:
                raise _gone(dataset_id, exc, bool(datasets)) from exc
            raise
    return fetched


# --- load -----------------------------------------------------------------------


# How a record keeps its source form: the API's jsonb payload, or a CSV export's row
# (csv_layout, csv_fields; migration 240). A stored record is unchanged when its payload
# is: two rows of the same CSV layout compare their fields, anything else the payloads.
_API_FORM = "s.payload, NULL::integer, NULL::text[]"
_CHANGED = """
    CASE WHEN r.csv_layout = EXCLUDED.csv_layout
         THEN r.csv_fields IS DISTINCT FROM EXCLUDED.csv_fields
         ELSE raw.crime_payload(r.payload, r.csv_layout, r.csv_fields) IS DISTINCT FROM
              raw.crime_payload(EXCLUDED.payload, EXCLUDED.csv_layout, EXCLUDED.csv_fields)
    END"""


def _merge(
    conn: Connection, staging: str, form_sql: str, params: dict | None = None
) -> tuple[int, int, set[date]]:
    """Upsert ``staging`` into raw.crime_records; returns (loaded, updated, weeks touched).

    ``form_sql`` selects the record's source form from ``staging AS s``: its
    payload, csv_layout and csv_fields. Weeks touched are the weeks of every inserted
    or changed record, and the old week of a changed record that moved weeks.
    """
    moved_from = conn.exec_driver_sql(
        f"SELECT DISTINCT r.week_start FROM raw.crime_records AS r JOIN {staging} AS s "
        "ON r.source = s.source AND r.record_id = s.record_id WHERE r.week_start <> s.week_start"
    ).scalars()
    weeks = set(moved_from)
    rows = conn.exec_driver_sql(
        f"""
        WITH merged AS (
            INSERT INTO raw.crime_records AS r
                (source, record_id, incident_id, series, occurred_at, reported_at, week_start,
                 lat, lon, cell_id, offense_codes, is_violent, payload, csv_layout, csv_fields)
            SELECT {_SELECTED}, {form_sql}
            FROM {staging} AS s
            ON CONFLICT (source, record_id) DO UPDATE SET
                incident_id = EXCLUDED.incident_id, series = EXCLUDED.series,
                occurred_at = EXCLUDED.occurred_at, reported_at = EXCLUDED.reported_at,
                week_start = EXCLUDED.week_start, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
                cell_id = EXCLUDED.cell_id, offense_codes = EXCLUDED.offense_codes,
                is_violent = EXCLUDED.is_violent, payload = EXCLUDED.payload,
                csv_layout = EXCLUDED.csv_layout, csv_fields = EXCLUDED.csv_fields,
                updated_at = now()
            WHERE {_CHANGED}
            RETURNING (xmax = 0) AS inserted, week_start
        )
        SELECT inserted, week_start, count(*) FROM merged GROUP BY inserted, week_start
        """,
        params or {},
    ).all()
    loaded = sum(n for inserted, _, n in rows if inserted)
    updated = sum(n for inserted, _, n in rows if not inserted)
    weeks |= {week for _, week, _ in rows}
    staleweeks.mark(conn, weeks)
    # Records usable now resolve their earlier rejects.
    conn.exec_driver_sql(
        f"DELETE FROM ops.rejects AS j USING {staging} AS s "
        "WHERE j.source = s.source AND j.record_key = s.record_id"
    )
    return loaded, updated, weeks


def _batch_report(
    label: str, fetched: int, valid: int, rejects: pd.DataFrame, merged: tuple[int, int, set]
) -> IngestReport:
    loaded, updated, weeks = merged
    return IngestReport(
        source=label,
        fetched=fetched,
        loaded=loaded,
        updated=updated,
        unchanged=valid - loaded - updated,
        rejected=Counter(rejects["reason"].tolist()) if not rejects.empty else Counter(),
        weeks_touched=weeks,
    )


def _load_api_batch(conn: Connection, dataset_id: str, records: list[dict]) -> IngestReport:
    mapped = lapd.map_api_records(dataset_id, records)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS _crime_api_in ({_MAPPED_COLUMNS_SQL}, payload jsonb) "
        "ON COMMIT DROP"
    )
    conn.exec_driver_sql("TRUNCATE _crime_api_in")
    copy_frame(conn, mapped.records, "_crime_api_in", [*lapd.RECORD_COLUMNS, "payload"])
    merged = _merge(conn, "_crime_api_in", _API_FORM)
    store_rejects(conn, mapped.rejects)
    return _batch_report(dataset_id, len(records), len(mapped.records), mapped.rejects, merged)


@contextmanager
def _run(engine: Engine, params: dict, report: IngestReport) -> Iterator[dict[str, float]]:
    """Record the ingest in ops.runs: 'running' now, then its counts, how it ended and
    the seconds of each step (the body adds its steps to the dict it is given)."""
    run_id = start_run(engine, "ingest_crime", params=params)
    started = time.perf_counter()
    steps: dict[str, float] = {}
    status, message = "succeeded", None
    try:
        yield steps
    except BaseException as exc:
        status, message = "failed", str(exc)[:2000]
        raise
    finally:
        steps["total"] = time.perf_counter() - started
        finish_run(
            engine, run_id, status, counts=report.as_dict(),
            step_seconds={k: round(v, 3) for k, v in steps.items()}, message=message,
        )  # fmt: skip


@contextmanager
def _timed(steps: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        steps[name] = steps.get(name, 0.0) + time.perf_counter() - started


def _load(engine: Engine, fetched: list[tuple[str, list[dict]]], report: IngestReport) -> None:
    for dataset_id, records in fetched:
        with engine.begin() as conn:
            report.merge(_load_api_batch(conn, dataset_id, records))
        log.info("%s: %d records merged", dataset_id, len(records))


def load_crime_records(engine: Engine, fetched: list[tuple[str, list[dict]]]) -> IngestReport:
    """Map, upsert and reject fetched SODA records, one transaction per dataset window.

    Counts loaded (new), updated (payload changed), unchanged and rejected by
    reason; ``weeks_touched`` holds the week of every loaded or updated record.
    """
    report = IngestReport(source="lapd-crime")
    params = {"datasets": [d for d, _ in fetched], "records": sum(len(r) for _, r in fetched)}
    with _run(engine, params, report):
        _load(engine, fetched, report)
    return report


def ingest_crime_api(
    engine: Engine, start: date, end: date, datasets: list[str] | None = None
) -> IngestReport:
    """Fetch report dates [start, end] from the SODA API and load them."""
    check_range(start, end, "ingest crime")
    report = IngestReport(source="lapd-crime")
    params = {"start": start, "end": end, "datasets": datasets}
    with _run(engine, params, report):
        fetched = fetch_crime_api(start, end, datasets)
        _load(engine, fetched, report)
    return report


# --- the portal CSV export --------------------------------------------------------
#
# PostgreSQL parses the file itself into _csv_raw (every column as text, numbered by
# line), pandas reads only the fields the mapping needs and COPYs the mapped columns
# into _csv_mapped, and one INSERT joins the two, building each payload in SQL. The
# raw columns never pass through Python, which is what keeps the import near the
# speed of a bare COPY.


def _column(position: int) -> str:
    """The staging column of the file's ``position``-th column: named by position, so no
    text from the file's header ever becomes part of a statement."""
    return f"c{int(position)}"


def _literal(text: str) -> str:
    """A SQL string literal of a constant of this module (never of file text) for
    statements run with exec_driver_sql (which passes them through the driver's
    %-formatting, hence the doubled %)."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class CsvLayout:
    """Where each field sits in an export: the header as data, positions as code.

    ``known`` maps the SODA fields this job knows (the adapter's and the legacy
    dataset's, all plain identifiers fixed in code) to their column position;
    every other column is ``extra``: kept in the payload under its own name,
    which reaches PostgreSQL only as a bound parameter.
    """

    header: tuple[str, ...]
    fields: tuple[str, ...]
    known: dict[str, int]
    extra: tuple[int, ...]

    @classmethod
    def of(cls, header: list[str], adapter: lapd.DatasetAdapter) -> CsvLayout:
        vocabulary = set(lapd.LEGACY_FIELDS) | lapd.mapped_fields(adapter)
        fields = tuple(lapd.field_name(h) for h in header)
        known = {f: i for i, f in enumerate(fields) if f in vocabulary and _IDENTIFIER.match(f)}
        extra = tuple(i for i, f in enumerate(fields) if f not in known)
        return cls(tuple(header), fields, known, extra)

    @property
    def columns(self) -> list[str]:
        return [_column(i) for i in range(len(self.header))]

    def column(self, field: str) -> str:
        return _column(self.known[field])


def _csv_fields_sql(layout: CsvLayout) -> str:
    """The stored row (``csv_fields``): one value per column of the file, in its order, in
    the dataset's API form (empty fields NULL, floating timestamps, four-digit time_occ),
    built from the staged row ``s``. With the layout's keys it is the payload
    (``raw.crime_payload``); no header text is part of the statement."""
    values = []
    for position, field in enumerate(layout.fields):
        column = f"s.{_column(position)}"
        if layout.known.get(field) != position:
            value = f"nullif({column}, '')"
        elif field == "date_rptd":
            value = f"to_char(s.reported_at, '{_TS_FORMAT}')"
        elif field == "date_occ":
            value = f"to_char(s.date_occ_ts, '{_TS_FORMAT}')"
        elif field == "time_occ":
            value = (
                f"CASE WHEN length({column}) BETWEEN 1 AND 3 THEN lpad({column}, 4, '0') "
                f"ELSE nullif({column}, '') END"
            )
        else:
            value = f"nullif({column}, '')"
        values.append(value)
    return f"ARRAY[{', '.join(values)}]::text[]"


def _csv_layout_id(conn: Connection, layout: CsvLayout) -> int:
    """The id of the export's header in raw.crime_csv_layouts (the field names are bound
    parameters); a header seen before keeps its id, and concurrent imports agree on it."""
    keys = list(layout.fields)
    conn.execute(
        sa.text(
            "INSERT INTO raw.crime_csv_layouts (keys) VALUES (CAST(:keys AS text[])) "
            "ON CONFLICT (keys) DO NOTHING"
        ),
        {"keys": keys},
    )
    return conn.execute(
        sa.text("SELECT layout_id FROM raw.crime_csv_layouts WHERE keys = CAST(:keys AS text[])"),
        {"keys": keys},
    ).scalar_one()


def _stage_raw(conn: Connection, path: Path, layout: CsvLayout) -> int:
    """COPY the export as it is into _csv_raw; ``line`` is the row's line in the file."""
    columns = layout.columns
    conn.exec_driver_sql(
        "CREATE TEMP TABLE _csv_raw (line bigint GENERATED ALWAYS AS IDENTITY (START WITH 2), "
        + ", ".join(f"{c} text" for c in columns)
        + ") ON COMMIT DROP"
    )
    cursor = conn.connection.driver_connection.cursor()
    try:
        with lapd.open_text(path) as handle:
            cursor.copy_expert(
                f"COPY _csv_raw ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, HEADER true, "
                f"FORCE_NOT_NULL ({', '.join(columns)}))",
                handle,
                size=1 << 20,  # 1 MB reads: fewer round trips through Python
            )
        return cursor.rowcount
    except (psycopg2.DataError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise lapd.unreadable(path, exc) from exc
    finally:
        cursor.close()


def ingest_crime_csv(engine: Engine, path: Path, source: str | None = None) -> IngestReport:
    """Bulk-import a portal CSV export of the legacy dataset (both date formats).

    One transaction for the whole file. A rerun of the same file loads 0,
    updates 0 and finds every record unchanged.
    """
    path = Path(path)
    dataset_id = source or lapd.LEGACY
    adapter = lapd.adapter_for(dataset_id)
    report = IngestReport(source=f"csv:{path.name}")
    params = {"csv": str(path), "dataset": dataset_id}
    stop = threading.Event()
    with (
        _run(engine, params, report) as steps,
        ThreadPoolExecutor(1, thread_name_prefix="csv-map") as pool,
        engine.begin() as conn,
    ):
        layout = CsvLayout.of(lapd.portal_header(path), adapter)
        # pandas reads and maps the fields the mapping needs on one core while PostgreSQL
        # parses the whole file on another.
        mapping = pool.submit(_read_and_map, path, adapter, stop)
        try:
            # Memory for the joins of the staged tables and the index builds, this
            # transaction only: the defaults (4 MB, 64 MB) spill to disk.
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{CSV_WORK_MEM}'")
            conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{CSV_WORK_MEM}'")
            with _timed(steps, "copy_raw"):
                copied = _stage_raw(conn, path, layout)
            conn.exec_driver_sql(
                "CREATE TEMP TABLE _csv_mapped (line bigint, occurred_at timestamp, "
                "reported_at timestamp, date_occ_ts timestamp, week_start date, "
                "lat double precision, lon double precision, cell_id integer, "
                "offense_id integer) ON COMMIT DROP"
            )
            conn.exec_driver_sql(
                "CREATE TEMP TABLE _csv_rejects (line bigint, record_key text, reason text, "
                "detail text) ON COMMIT DROP"
            )
            keys: list[pd.Series] = []
            offenses: dict[str, tuple[int, bool]] = {}
            with _timed(steps, "read_map_stage"):
                chunks, steps["read_map_beside_copy"] = mapping.result()
                for mapped in chunks:
                    keys.append(_stage_mapped(conn, mapped, report, offenses))
        except BaseException:
            stop.set()
            raise
        del chunks
        with _timed(steps, "read_map_stage"):
            if report.fetched != copied:
                raise SourceError(
                    f"{path.name}: PostgreSQL read {copied} rows but pandas read "
                    f"{report.fetched}; the file is not a consistent CSV"
                )
            _stage_offenses(conn, offenses)
            _reject_duplicates(conn, pd.concat(keys) if keys else pd.Series(dtype=object), report)
            _create_staging_view(conn, adapter, layout)
            # Temporary tables have no statistics until analysed: without them the planner
            # takes the narrow _csv_mapped for a million rows and sorts both sides of its
            # join with _csv_raw on disk. Analysed, it hashes _csv_mapped (the wide
            # _csv_raw needs none: its size estimate from its pages is enough).
            conn.exec_driver_sql("ANALYZE _csv_mapped, _csv_offenses")
            valid = conn.exec_driver_sql("SELECT count(*) FROM _csv_mapped").scalar_one()
        form = f"NULL::jsonb, {int(_csv_layout_id(conn, layout))}, {_csv_fields_sql(layout)}"
        with _deferred_indexes(conn, steps) as deferred, _timed(steps, "merge"):
            load = _insert_into_empty if deferred else _merge
            loaded, updated, weeks = load(conn, "_csv_in", form)
        with _timed(steps, "rejects"):
            _store_csv_rejects(conn, dataset_id, layout)
        conn.exec_driver_sql("DROP VIEW _csv_in")
        report.loaded, report.updated = loaded, updated
        report.unchanged = valid - loaded - updated
        report.weeks_touched = weeks
    return report


@contextmanager
def _deferred_indexes(conn: Connection, steps: dict[str, float]) -> Iterator[bool]:
    """Into an empty raw.crime_records, load first and index after.

    PostgreSQL's advice for populating a table: one sorted index build and one
    foreign-key check over the whole table cost a fraction of a million
    per-row index insertions and trigger calls. The definitions are read from
    the catalog, dropped, and created again in the same transaction (a failure
    rolls them back with the rows). Yields False, changing nothing, when the
    table has rows or a definition cannot be dropped.
    """
    has_rows = "SELECT EXISTS (SELECT 1 FROM raw.crime_records)"
    if conn.exec_driver_sql(has_rows).scalar_one():
        yield False
        return
    conn.exec_driver_sql("LOCK TABLE raw.crime_records IN ACCESS EXCLUSIVE MODE")
    # Another import may have filled the table between the look and the lock: then load
    # the ordinary way (keeping the lock to the end of this transaction).
    if conn.exec_driver_sql(has_rows).scalar_one():
        yield False
        return
    constraints = conn.exec_driver_sql(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'raw.crime_records'::regclass AND contype IN ('p', 'u', 'f') "
        "ORDER BY contype = 'f', conname"
    ).all()
    indexes = conn.exec_driver_sql(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index AS i "
        "WHERE i.indrelid = 'raw.crime_records'::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid "
        " AND c.conrelid = i.indrelid)"
    ).all()
    savepoint = conn.begin_nested()
    try:
        for name, _ in indexes:
            conn.exec_driver_sql(f"DROP INDEX {name}")
        for name, _, _ in reversed(constraints):
            conn.exec_driver_sql(f'ALTER TABLE raw.crime_records DROP CONSTRAINT "{name}"')
    except sa.exc.DBAPIError as exc:  # something depends on them: load the ordinary way
        log.info("indexes of raw.crime_records stay during the load: %s", exc)
        savepoint.rollback()
        yield False
        return
    savepoint.commit()
    yield True
    with _timed(steps, "build_indexes"):
        for name, _, definition in constraints:
            conn.exec_driver_sql(
                f'ALTER TABLE raw.crime_records ADD CONSTRAINT "{name}" {definition}'
            )
        for _, definition in indexes:
            conn.exec_driver_sql(definition)


def _insert_into_empty(
    conn: Connection, staging: str, form_sql: str, params: dict | None = None
) -> tuple[int, int, set[date]]:
    """The merge for an empty table with its keys deduplicated: every row is new."""
    rows = conn.exec_driver_sql(
        f"""
        WITH inserted AS (
            INSERT INTO raw.crime_records
                (source, record_id, incident_id, series, occurred_at, reported_at, week_start,
                 lat, lon, cell_id, offense_codes, is_violent, payload, csv_layout, csv_fields)
            SELECT {_SELECTED}, {form_sql}
            FROM {staging} AS s
            RETURNING week_start
        )
        SELECT week_start, count(*) FROM inserted GROUP BY week_start
        """,
        params or {},
    ).all()
    conn.exec_driver_sql(
        f"DELETE FROM ops.rejects AS j USING {staging} AS s "
        "WHERE j.source = s.source AND j.record_key = s.record_id"
    )
    weeks = {week for week, _ in rows}
    staleweeks.mark(conn, weeks)
    return sum(n for _, n in rows), 0, weeks


@dataclass
class _MappedChunk:
    """One chunk of the export mapped by pandas: its rejects (line, record_key, reason,
    detail) and its usable rows (indexed by line, the columns _stage_mapped sends)."""

    rows: int
    rejects: pd.DataFrame
    good: pd.DataFrame


_GOOD_COLUMNS = [
    "record_id", "occurred_at", "reported_at", "date_occ_ts", "week_start", "lat", "lon",
    "cell_id", "offense_codes", "is_violent",
]  # fmt: skip


def _map_chunk(chunk: pd.DataFrame, adapter: lapd.DatasetAdapter, file_name: str) -> _MappedChunk:
    """Map one chunk (pandas only, no database: it runs beside the COPY of the file)."""
    mapped, reason = lapd.map_frame(chunk, adapter)
    bad = (reason != "").to_numpy()
    rejects = pd.DataFrame(
        {
            "line": chunk.index[bad],
            "record_key": mapped.loc[bad, "record_id"],
            "reason": reason[bad],
            "detail": mapped.loc[bad, "detail"].fillna("")
            + f" (csv:{file_name} line "
            + pd.Series(chunk.index[bad].astype(str), index=chunk.index[bad])
            + ")",
        }
    )
    return _MappedChunk(len(chunk), rejects, mapped.loc[~bad, _GOOD_COLUMNS])


def _read_and_map(
    path: Path, adapter: lapd.DatasetAdapter, stop: threading.Event
) -> tuple[list[_MappedChunk], float]:
    """Read the fields the mapping needs and map them, chunk by chunk; returns the chunks
    and the seconds it took. Stops early once ``stop`` is set (the import failed)."""
    started = time.perf_counter()
    chunks = []
    first_line = 2  # line 1 is the header
    for chunk in lapd.read_portal_csv(path, CSV_CHUNK_ROWS, lapd.mapped_fields(adapter)):
        if stop.is_set():
            break
        chunk.index = pd.RangeIndex(first_line, first_line + len(chunk))
        first_line += len(chunk)
        chunks.append(_map_chunk(chunk, adapter, path.name))
    return chunks, time.perf_counter() - started


def _stage_mapped(
    conn: Connection,
    mapped: _MappedChunk,
    report: IngestReport,
    offenses: dict[str, tuple[int, bool]],
) -> pd.Series:
    """COPY a mapped chunk's usable rows to _csv_mapped and its rejects to _csv_rejects.

    Offense code lists become small integer ids (``offenses`` collects them across
    chunks), so every mapped column is fixed-width and goes in COPY's binary format.
    Returns the usable rows' keys, indexed by line (duplicates are settled at the end).
    """
    report.fetched += mapped.rows
    if not mapped.rejects.empty:
        copy_frame(conn, mapped.rejects, "_csv_rejects", list(mapped.rejects.columns))
        report.rejected.update(mapped.rejects["reason"].tolist())
    good = mapped.good
    for literal, violent in good.drop_duplicates("offense_codes")[
        ["offense_codes", "is_violent"]
    ].itertuples(index=False):
        offenses.setdefault(literal, (len(offenses), bool(violent)))
    offense_id = good["offense_codes"].map({k: v[0] for k, v in offenses.items()})
    _copy_fixed_width(
        conn,
        "_csv_mapped",
        [
            ("line", "int8", good.index.to_numpy()),
            ("occurred_at", "timestamp", good["occurred_at"].to_numpy()),
            ("reported_at", "timestamp", good["reported_at"].to_numpy()),
            ("date_occ_ts", "timestamp", good["date_occ_ts"].to_numpy()),
            ("week_start", "date", good["week_start"].to_numpy()),
            ("lat", "float8", good["lat"].to_numpy()),
            ("lon", "float8", good["lon"].to_numpy()),
            ("cell_id", "int4", good["cell_id"].to_numpy()),
            ("offense_id", "int4", offense_id.to_numpy()),
        ],
    )
    return good["record_id"]


_BINARY_TYPES = {"int8": ">i8", "int4": ">i4", "float8": ">f8", "timestamp": ">i8", "date": ">i4"}
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")


def _copy_fixed_width(
    conn: Connection, table: str, columns: list[tuple[str, str, np.ndarray]]
) -> None:
    """COPY non-null fixed-width columns in PostgreSQL's binary format, built by numpy.

    Each row is an int16 field count, then per field an int32 length and the
    big-endian value; timestamps are microseconds and dates days since 2000-01-01.
    A million rows take milliseconds, where text formatting takes seconds.
    """
    layout = [("fields", ">i2")]
    for name, kind, _ in columns:
        layout += [(f"{name}__len", ">i4"), (name, _BINARY_TYPES[kind])]
    rows = np.empty(len(columns[0][2]), dtype=np.dtype(layout))
    rows["fields"] = len(columns)
    for name, kind, values in columns:
        rows[f"{name}__len"] = np.dtype(_BINARY_TYPES[kind]).itemsize
        if kind == "timestamp":
            values = (values.astype("datetime64[us]") - _PG_EPOCH).astype(np.int64)
        elif kind == "date":
            values = (values.astype("datetime64[D]") - _PG_EPOCH.astype("datetime64[D]")).astype(
                np.int64
            )
        rows[name] = values
    body = io.BytesIO(
        b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + rows.tobytes()
        + struct.pack(">h", -1)
    )  # fmt: skip
    cursor = conn.connection.driver_connection.cursor()
    try:
        names = ", ".join(name for name, _, _ in columns)
        cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT binary)", body)
    finally:
        cursor.close()


def _stage_offenses(conn: Connection, offenses: dict[str, tuple[int, bool]]) -> None:
    frame = pd.DataFrame(
        [(i, literal, violent) for literal, (i, violent) in offenses.items()],
        columns=["offense_id", "offense_codes", "is_violent"],
    )
    conn.exec_driver_sql(
        "CREATE TEMP TABLE _csv_offenses (offense_id integer, offense_codes text[], "
        "is_violent boolean) ON COMMIT DROP"
    )
    copy_frame(conn, frame, "_csv_offenses", list(frame.columns))


def _create_staging_view(conn: Connection, adapter: lapd.DatasetAdapter, layout: CsvLayout) -> None:
    """_csv_in: the mapped columns, the keys as written (trimmed the way the mapping
    trims them) and every raw field, one row per usable line."""
    blank = _literal(lapd.WHITESPACE)
    conn.exec_driver_sql(
        f"""
        CREATE TEMP VIEW _csv_in AS
        SELECT m.line, {_literal(adapter.dataset_id)}::text AS source,
               btrim(r.{layout.column(adapter.key_field)}, {blank}) AS record_id,
               btrim(r.{layout.column(adapter.incident_field)}, {blank}) AS incident_id,
               {_literal(adapter.series)}::text AS series,
               m.occurred_at, m.reported_at, m.date_occ_ts, m.week_start, m.lat, m.lon,
               m.cell_id, o.offense_codes, o.is_violent,
               {", ".join(f"r.{c}" for c in layout.columns)}
        FROM _csv_mapped AS m
        JOIN _csv_raw AS r USING (line)
        JOIN _csv_offenses AS o USING (offense_id)
        """
    )


def _reject_duplicates(conn: Connection, keys: pd.Series, report: IngestReport) -> None:
    """A key on several lines keeps its last line; the earlier ones become rejects."""
    earlier = keys[keys.duplicated(keep="last")]
    if earlier.empty:
        return
    rejects = pd.DataFrame(
        {
            "line": earlier.index,
            "record_key": earlier.to_numpy(),
            "reason": lapd.DUPLICATE_KEY,
            "detail": "a later line has the same key (line " + earlier.index.astype(str) + ")",
        }
    )
    copy_frame(conn, rejects, "_csv_rejects", list(rejects.columns))
    conn.exec_driver_sql(
        "DELETE FROM _csv_mapped AS m USING _csv_rejects AS j "
        f"WHERE m.line = j.line AND j.reason = '{lapd.DUPLICATE_KEY}'"
    )
    report.rejected.update(rejects["reason"].tolist())


def _store_csv_rejects(conn: Connection, dataset_id: str, layout: CsvLayout) -> None:
    """Rejected lines into ops.rejects with the row exactly as written (display-name keys,
    passed as a parameter; empty fields as ""); a line without a key is keyed by the md5
    of that row."""
    raw = (
        f"jsonb_object(%(display_names)s::text[], "
        f"ARRAY[{', '.join(f'r.{c}' for c in layout.columns)}]::text[])"
    )
    # Statistics tell the planner the rejects are few: hash them, scan the raw lines once.
    conn.exec_driver_sql("ANALYZE _csv_rejects")
    conn.exec_driver_sql(
        f"""
        INSERT INTO ops.rejects (source, record_key, reason, detail, payload)
        SELECT DISTINCT ON (record_key, reason)
               {_literal(dataset_id)}, record_key, reason, detail, payload
        FROM (
            SELECT coalesce(j.record_key, md5(({raw})::text)) AS record_key,
                   j.reason, j.detail, ({raw}) AS payload, j.line
            FROM _csv_rejects AS j JOIN _csv_raw AS r USING (line)
        ) AS rows
        ORDER BY record_key, reason, line DESC
        ON CONFLICT (source, record_key, reason) DO UPDATE
        SET detail = EXCLUDED.detail, payload = EXCLUDED.payload
        WHERE ops.rejects.payload IS DISTINCT FROM EXCLUDED.payload
        """,
        {"display_names": list(layout.header)},
    )
