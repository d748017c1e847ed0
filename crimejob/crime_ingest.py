"""Land LAPD crime records in ``raw.crime_records``: from the SODA API, or a portal CSV export.

Both paths map records with the dataset adapters (``crimejob.sources.lapd``),
COPY the usable ones into a temporary staging table and merge them with one
``INSERT ... ON CONFLICT (source, record_id) DO UPDATE ... WHERE payload IS
DISTINCT FROM`` statement, so a rerun over the same records changes nothing
and counts them as unchanged. Records that cannot be used go to ``ops.rejects``
with their reason in the same transaction.

The CSV path is built for the million-row backfill: PostgreSQL parses the file
itself, pandas reads only the fields the mapping needs, the payload is built in
SQL, and a load into an empty table builds its indexes after the rows are in.

Decisions worth knowing:

- Transactions: one per dataset window (API), one for the whole file (CSV), so
  a failure leaves nothing partial behind.
- Which dataset serves which report dates is ``settings.crime_datasets``; each
  dataset is asked only for its own dates (so legacy records reported after
  the NIBRS switch are not fetched unless ``datasets`` names the legacy set).
- A record rejected in an earlier run that now arrives usable is loaded, and
  its earlier rejects (same source and key) are deleted: ``ops.rejects`` holds
  what is unusable now. A record loaded earlier that now arrives unusable keeps
  its loaded row and gains a reject, so both are visible.
- Rejects are keyed by dataset id whichever path read them (the CSV file name
  and line are in ``detail``), so an API run can resolve a CSV reject.
- CSV payloads are stored in the dataset's API shape: SODA field names, empty
  fields left out, dates as floating timestamps, ``time_occ`` as four digits.
  The same record therefore reads the same whether the API or the export
  loaded it. Rejected CSV rows keep the row exactly as it was in the file.
- A natural key that appears twice in one batch (API window or CSV file) keeps
  its last record; the earlier copy is rejected as ``duplicate_key``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import psycopg2
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.config import Settings, get_settings
from crimejob.dbcopy import copy_frame
from crimejob.errors import SourceError
from crimejob.rejects import store_rejects
from crimejob.reports import IngestReport
from crimejob.runs import finish_run, start_run
from crimejob.sources import lapd
from crimejob.sources.soda import SodaClient, WindowQuery

log = logging.getLogger(__name__)

CSV_CHUNK_ROWS = 250_000
_TS_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.MS'  # a SODA floating timestamp

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


def fetch_crime_api(
    start: date, end: date, datasets: list[str] | None = None, settings: Settings | None = None
) -> list[tuple[str, list[dict]]]:
    """Records whose report date is in [start, end] from each dataset serving those dates,
    each window verified complete against a count query. No database writes."""
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
        fetched.append((dataset_id, client.fetch_window(query)))
    return fetched


# --- load -----------------------------------------------------------------------


def _merge(
    conn: Connection, staging: str, payload_sql: str, rows_sql: str | None = None
) -> tuple[int, int, set[date]]:
    """Upsert ``staging`` into raw.crime_records; returns (loaded, updated, weeks touched).

    ``rows_sql`` (default: ``staging``) is what the rows and ``payload_sql`` are
    selected from, when the payload needs columns kept elsewhere. Weeks touched
    are the weeks of every inserted or changed record, and the old week of a
    changed record that moved to another week.
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
                 lat, lon, cell_id, offense_codes, is_violent, payload)
            SELECT source, record_id, incident_id, series, occurred_at, reported_at, week_start,
                   lat, lon, cell_id, offense_codes::text[], is_violent, {payload_sql}
            FROM {rows_sql or staging}
            ON CONFLICT (source, record_id) DO UPDATE SET
                incident_id = EXCLUDED.incident_id, series = EXCLUDED.series,
                occurred_at = EXCLUDED.occurred_at, reported_at = EXCLUDED.reported_at,
                week_start = EXCLUDED.week_start, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
                cell_id = EXCLUDED.cell_id, offense_codes = EXCLUDED.offense_codes,
                is_violent = EXCLUDED.is_violent, payload = EXCLUDED.payload,
                updated_at = now()
            WHERE r.payload IS DISTINCT FROM EXCLUDED.payload
            RETURNING (xmax = 0) AS inserted, week_start
        )
        SELECT inserted, week_start, count(*) FROM merged GROUP BY inserted, week_start
        """
    ).all()
    loaded = sum(n for inserted, _, n in rows if inserted)
    updated = sum(n for inserted, _, n in rows if not inserted)
    weeks |= {week for _, week, _ in rows}
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
    merged = _merge(conn, "_crime_api_in", "payload")
    store_rejects(conn, mapped.rejects)
    return _batch_report(dataset_id, len(records), len(mapped.records), mapped.rejects, merged)


@contextmanager
def _run(engine: Engine, params: dict, report: IngestReport) -> Iterator[None]:
    """Record the ingest in ops.runs: 'running' now, then its counts and how it ended."""
    run_id = start_run(engine, "ingest_crime", params=params)
    started = time.perf_counter()
    status, message = "succeeded", None
    try:
        yield
    except BaseException as exc:
        status, message = "failed", str(exc)[:2000]
        raise
    finally:
        finish_run(
            engine, run_id, status, counts=report.as_dict(),
            step_seconds={"ingest": round(time.perf_counter() - started, 3)}, message=message,
        )  # fmt: skip


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


def _column(field: str) -> str:
    return "f_" + re.sub(r"[^a-z0-9_]", "_", field)


def _literal(text: str) -> str:
    """A SQL string literal for statements run with exec_driver_sql (which passes them
    through the driver's %-formatting, hence the doubled %)."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def _json_object(pairs: list[tuple[str, str]]) -> str:
    """jsonb_build_object over (key, SQL expression) pairs, in parts of 40 (it takes at
    most 100 arguments)."""
    items = [f"{_literal(k)}, {v}" for k, v in pairs]
    parts = [
        "jsonb_build_object(" + ", ".join(items[i : i + 40]) + ")"
        for i in range(0, len(items), 40)
    ]
    return " || ".join(parts) if parts else "'{}'::jsonb"


def _csv_payload_sql(fields: list[str]) -> str:
    """The stored payload: the dataset's API shape (SODA names, empty fields left out,
    floating timestamps, four-digit time_occ), built from the staged columns."""
    pairs = []
    for field in fields:
        column = _column(field)
        if field == "date_rptd":
            value = f"to_char(reported_at, '{_TS_FORMAT}')"
        elif field == "date_occ":
            value = f"to_char(date_occ_ts, '{_TS_FORMAT}')"
        elif field == "time_occ":
            value = (
                f"CASE WHEN length({column}) BETWEEN 1 AND 3 THEN lpad({column}, 4, '0') "
                f"ELSE nullif({column}, '') END"
            )
        else:
            value = f"nullif({column}, '')"
        pairs.append((field, value))
    return f"jsonb_strip_nulls({_json_object(pairs)})"


def _stage_raw(conn: Connection, path: Path, header: list[str], fields: list[str]) -> int:
    """COPY the export as it is into _csv_raw; ``line`` is the row's line in the file."""
    columns = [_column(f) for f in fields]
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
            )
        return cursor.rowcount
    except (psycopg2.DataError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise SourceError(f"{path.name} is not a readable CSV file: {exc}") from exc
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
    with _run(engine, params, report), engine.begin() as conn:
        header = lapd.portal_header(path)
        fields = [lapd.field_name(h) for h in header]
        copied = _stage_raw(conn, path, header, fields)
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE _csv_mapped (line bigint, {_MAPPED_COLUMNS_SQL}, "
            "date_occ_ts timestamp) ON COMMIT DROP"
        )
        conn.exec_driver_sql(
            "CREATE TEMP TABLE _csv_rejects (line bigint, record_key text, reason text, "
            "detail text) ON COMMIT DROP"
        )
        keys: list[pd.Series] = []
        first_line = 2  # line 1 is the header
        for chunk in lapd.read_portal_csv(path, CSV_CHUNK_ROWS, lapd.mapped_fields(adapter)):
            chunk.index = pd.RangeIndex(first_line, first_line + len(chunk))
            first_line += len(chunk)
            keys.append(_stage_chunk(conn, chunk, adapter, path.name, report))
        if report.fetched != copied:
            raise SourceError(
                f"{path.name}: PostgreSQL read {copied} rows but pandas read {report.fetched}; "
                "the file is not a consistent CSV"
            )
        _reject_duplicates(conn, pd.concat(keys) if keys else pd.Series(dtype=object), report)
        valid = conn.exec_driver_sql("SELECT count(*) FROM _csv_mapped").scalar_one()
        rows_sql = "_csv_mapped JOIN _csv_raw USING (line)"
        payload_sql = _csv_payload_sql(fields)
        with _deferred_indexes(conn) as deferred:
            if deferred:
                loaded, updated, weeks = _insert_into_empty(conn, payload_sql, rows_sql)
            else:
                loaded, updated, weeks = _merge(conn, "_csv_mapped", payload_sql, rows_sql)
        _store_csv_rejects(conn, dataset_id, header, fields)
        report.loaded, report.updated = loaded, updated
        report.unchanged = valid - loaded - updated
        report.weeks_touched = weeks
    return report


@contextmanager
def _deferred_indexes(conn: Connection) -> Iterator[bool]:
    """Into an empty raw.crime_records, load first and index after.

    PostgreSQL's advice for populating a table: one sorted index build and one
    foreign-key check over the whole table cost a fraction of a million
    per-row index insertions and trigger calls. The definitions are read from
    the catalog, dropped, and created again in the same transaction (a failure
    rolls them back with the rows). Yields False, changing nothing, when the
    table has rows or a definition cannot be dropped.
    """
    if conn.exec_driver_sql("SELECT EXISTS (SELECT 1 FROM raw.crime_records)").scalar_one():
        yield False
        return
    conn.exec_driver_sql("LOCK TABLE raw.crime_records IN ACCESS EXCLUSIVE MODE")
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
    for name, _, definition in constraints:
        conn.exec_driver_sql(
            f'ALTER TABLE raw.crime_records ADD CONSTRAINT "{name}" {definition}'
        )
    for _, definition in indexes:
        conn.exec_driver_sql(definition)


def _insert_into_empty(
    conn: Connection, payload_sql: str, rows_sql: str
) -> tuple[int, int, set[date]]:
    """The merge for an empty table with its keys deduplicated: every row is new."""
    rows = conn.exec_driver_sql(
        f"""
        WITH inserted AS (
            INSERT INTO raw.crime_records
                (source, record_id, incident_id, series, occurred_at, reported_at, week_start,
                 lat, lon, cell_id, offense_codes, is_violent, payload)
            SELECT source, record_id, incident_id, series, occurred_at, reported_at, week_start,
                   lat, lon, cell_id, offense_codes::text[], is_violent, {payload_sql}
            FROM {rows_sql}
            RETURNING week_start
        )
        SELECT week_start, count(*) FROM inserted GROUP BY week_start
        """
    ).all()
    conn.exec_driver_sql(
        "DELETE FROM ops.rejects AS j USING _csv_mapped AS s "
        "WHERE j.source = s.source AND j.record_key = s.record_id"
    )
    return sum(n for _, n in rows), 0, {week for week, _ in rows}


def _stage_chunk(
    conn: Connection,
    chunk: pd.DataFrame,
    adapter: lapd.DatasetAdapter,
    file_name: str,
    report: IngestReport,
) -> pd.Series:
    """Map one chunk; COPY its usable rows to _csv_mapped and its rejects to _csv_rejects.
    Returns the usable rows' keys, indexed by line (duplicates are settled at the end)."""
    mapped, reason = lapd.map_frame(chunk, adapter)
    bad = (reason != "").to_numpy()
    report.fetched += len(chunk)
    if bad.any():
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
        copy_frame(conn, rejects, "_csv_rejects", list(rejects.columns))
        report.rejected.update(rejects["reason"].tolist())
    good = mapped.loc[~bad, lapd.RECORD_COLUMNS + ["date_occ_ts"]]
    good.insert(0, "line", good.index)
    copy_frame(conn, good, "_csv_mapped", list(good.columns))
    return good["record_id"]


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


def _store_csv_rejects(
    conn: Connection, dataset_id: str, header: list[str], fields: list[str]
) -> None:
    """Rejected lines into ops.rejects with the row exactly as written (display-name keys,
    empty fields as ""); a line without a key is keyed by the md5 of that row."""
    raw = _json_object([(h, _column(f)) for h, f in zip(header, fields, strict=True)])
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
        """
    )
