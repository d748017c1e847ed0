"""Land LAPD crime records in ``raw.crime_records``: from the SODA API, or a portal CSV export.

Both paths map records with the dataset adapters (``crimejob.sources.lapd``),
COPY the usable ones into a temporary staging table and merge them with one
``INSERT ... ON CONFLICT (source, record_id) DO UPDATE ... WHERE payload IS
DISTINCT FROM`` statement, so a rerun over the same records changes nothing
and counts them as unchanged. Records that cannot be used go to ``ops.rejects``
with their reason in the same transaction.

Decisions worth knowing:

- Transactions: one per dataset window (API), one for the whole file (CSV), so
  a failure leaves nothing partial behind.
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
- A natural key that appears twice in one batch keeps its last record; the
  earlier copy is rejected as ``duplicate_key``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.config import Settings, get_settings
from crimejob.dbcopy import copy_frame
from crimejob.rejects import store_rejects
from crimejob.reports import IngestReport
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


def _merge(conn: Connection, staging: str, payload_sql: str) -> tuple[int, int, set[date]]:
    """Upsert ``staging`` into raw.crime_records; returns (loaded, updated, weeks touched).

    Weeks touched are the weeks of every inserted or changed record, and the old
    week of a changed record that moved to another week.
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
            FROM {staging}
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
    with engine.begin() as conn:
        run_id = conn.execute(
            sa.text(
                "INSERT INTO ops.runs (kind, params) VALUES ('ingest_crime', CAST(:p AS jsonb)) "
                "RETURNING run_id"
            ),
            {"p": json.dumps(params, default=str)},
        ).scalar_one()
    status, message = "succeeded", None
    try:
        yield
    except BaseException as exc:
        status, message = "failed", str(exc)[:2000]
        raise
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE ops.runs SET status = :s, counts = CAST(:c AS jsonb), message = :m, "
                    "finished_at = now() WHERE run_id = :id"
                ),
                {"s": status, "c": json.dumps(report.as_dict()), "m": message, "id": run_id},
            )


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


def _column(field: str) -> str:
    return "f_" + re.sub(r"[^a-z0-9_]", "_", field)


def _csv_payload_sql(fields: list[str]) -> str:
    """The payload built in SQL from the staged source fields (SODA names, nulls left out)."""
    pairs = []
    for field in fields:
        if field == "date_rptd":
            value = f"to_char(reported_at, '{_TS_FORMAT}')"
        elif field == "date_occ":
            value = f"to_char(date_occ_ts, '{_TS_FORMAT}')"
        else:
            value = _column(field)
        pairs.append(f"'{field}', {value}")
    # jsonb_build_object takes at most 100 arguments: build in parts of 40 fields.
    parts = [
        "jsonb_build_object(" + ", ".join(pairs[i : i + 40]) + ")"
        for i in range(0, len(pairs), 40)
    ]
    return "jsonb_strip_nulls(" + " || ".join(parts) + ")"


def ingest_crime_csv(engine: Engine, path: Path, source: str | None = None) -> IngestReport:
    """Bulk-import a portal CSV export of the legacy dataset (both date formats).

    Read in chunks with pandas, mapped vectorised, COPYed to a staging table and
    merged per chunk, all in one transaction. A rerun of the same file loads 0,
    updates 0 and finds every record unchanged.
    """
    path = Path(path)
    dataset_id = source or lapd.LEGACY
    adapter = lapd.adapter_for(dataset_id)
    report = IngestReport(source=f"csv:{path.name}")
    params = {"csv": str(path), "dataset": dataset_id}
    with _run(engine, params, report), engine.begin() as conn:
        staged = False
        first_line = 2  # line 1 is the header
        for chunk in lapd.read_portal_csv(path, CSV_CHUNK_ROWS):
            fields = list(chunk.columns)
            if not staged:
                raw_columns = ", ".join(f"{_column(f)} text" for f in fields)
                conn.exec_driver_sql(
                    f"CREATE TEMP TABLE _crime_csv_in ({_MAPPED_COLUMNS_SQL}, "
                    f"date_occ_ts timestamp, {raw_columns}) ON COMMIT DROP"
                )
                payload_sql = _csv_payload_sql(fields)
                staged = True
            chunk.index = pd.RangeIndex(first_line, first_line + len(chunk))
            first_line += len(chunk)
            report.merge(_load_csv_chunk(conn, chunk, adapter, fields, payload_sql, path.name))
    return report


def _load_csv_chunk(
    conn: Connection,
    chunk: pd.DataFrame,
    adapter: lapd.DatasetAdapter,
    fields: list[str],
    payload_sql: str,
    file_name: str,
) -> IngestReport:
    mapped, reason = lapd.map_frame(chunk, adapter)
    bad = reason != ""
    good, dups = lapd.split_duplicates(mapped[~bad])
    line = pd.Series(chunk.index.astype(str), index=chunk.index)
    where = f" (csv:{file_name} line " + line + ")"
    dup_mask = chunk.index.isin(dups.index)
    rejects = pd.concat(
        [
            lapd.reject_frame(
                adapter.dataset_id,
                mapped.loc[bad, "record_id"],
                reason[bad],
                mapped.loc[bad, "detail"].fillna("") + where[bad],
                lapd.csv_reject_payloads(chunk, bad),
            ),
            lapd.reject_frame(
                adapter.dataset_id,
                dups["record_id"],
                pd.Series(lapd.DUPLICATE_KEY, index=dups.index),
                "a later line has the same key" + where[dup_mask],
                lapd.csv_reject_payloads(chunk, pd.Series(dup_mask, index=chunk.index)),
            ),
        ],
        ignore_index=True,
    )
    staged = good[lapd.RECORD_COLUMNS + ["date_occ_ts"]].copy()
    for field in fields:
        staged[_column(field)] = chunk.loc[good.index, field]
    if "time_occ" in fields:
        staged[_column("time_occ")] = staged[_column("time_occ")].str.zfill(4)
    conn.exec_driver_sql("TRUNCATE _crime_csv_in")
    copy_frame(conn, staged, "_crime_csv_in", list(staged.columns))
    merged = _merge(conn, "_crime_csv_in", payload_sql)
    store_rejects(conn, rejects)
    return _batch_report(f"csv:{file_name}", len(chunk), len(good), rejects, merged)
