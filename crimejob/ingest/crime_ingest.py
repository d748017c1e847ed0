"""Land LAPD crime records in ``raw.crime_records``: from the SODA API, or a portal CSV export.

Both paths map records with the dataset adapters (``crimejob.ingest.sources.lapd``),
COPY the usable ones into a temporary staging table and merge them with one
``INSERT ... ON CONFLICT (source, record_id) DO UPDATE ... WHERE`` the payload
changed, so a rerun over the same records changes nothing and counts them as
unchanged. Records that cannot be used go to ``ops.rejects``
with their reason in the same transaction.

The CSV path is built for the million-row backfill: every stored row is written
once, by one binary COPY the client builds (the mapped columns and the export's
line as written), in the order of the natural key, each chunk encoded while
PostgreSQL stores the last; into an empty table the rows go straight into
``raw.crime_records`` and its indexes are built after (the key order makes the
primary key's build one pass). No jsonb is built per row. A large export is found and
mapped in two halves at once, the second in a forked child process.

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
- How a record keeps its source form (migrations 240, 280): an API record its
  jsonb ``payload``; a CSV record the export's line exactly as written,
  ``csv_line``, its columns named by ``csv_layout`` (``raw.crime_csv_layouts``,
  the header's SODA field names, kept as data); records imported between the
  two migrations keep ``csv_fields`` (the row as a text[] in the API's form).
  ``raw.crime_payload()`` and the view ``raw.crime_record_payloads`` build the
  payload on read: the line split as PostgreSQL's COPY reads CSV, in the API's
  form (empty fields left out, dates as floating timestamps, ``time_occ`` as
  four digits), under SODA field names. The same record therefore reads the
  same whether the API or the export loaded it, and a record is unchanged when
  that payload is (the same line of the same layout is, without building it).
  Rejected CSV rows keep the row exactly as it was in the file.
- A natural key that appears twice in one batch (API window or CSV file) keeps
  its last record; the earlier copy is rejected as ``duplicate_key``. (The CSV
  path sends only the last line of a key to COPY.)
- A CSV file is refused whole, in one line, when it is not CSV as PostgreSQL's
  COPY reads it: a quote left open, a record whose number of fields is not the
  header's, a NUL byte, text that is not UTF-8.
"""

from __future__ import annotations

import gzip
import logging
import queue
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
from crimejob.dbcopy import EncodedRows, column_types, copy_frame, encode_rows, send_rows
from crimejob.errors import SourceError, check_range
from crimejob.grid import staleweeks
from crimejob.ingest import forked
from crimejob.ingest.collector import collector_paused
from crimejob.ingest.rejects import store_rejects
from crimejob.ingest.sources import lapd
from crimejob.ingest.sources.http import HttpStatusError
from crimejob.ingest.sources.soda import SodaClient, WindowQuery
from crimejob.reports import IngestReport
from crimejob.runs import finish_run, start_run

log = logging.getLogger(__name__)

CSV_CHUNK_ROWS = 50_000  # small enough that the COPY of one overlaps the encoding of the next
CSV_READ_ROWS = 1_000_000  # pandas reads the export in parts this large, mapped as one
CSV_WORK_MEM = "256MB"

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


# How a record keeps its source form: the API's jsonb payload, or a CSV export's line as
# written (csv_layout, csv_line; migration 280; csv_fields from migration 240 on older
# rows). A stored record is unchanged when its payload is: the same line of the same
# layout is, anything else compares the payloads built on read.
_API_FORM = "s.payload, NULL::integer, NULL::text[], NULL::text"
_CHANGED = """
    CASE WHEN r.csv_layout = EXCLUDED.csv_layout AND r.csv_line = EXCLUDED.csv_line
         THEN false
         ELSE raw.crime_payload(r.payload, r.csv_layout, r.csv_fields, r.csv_line)
              IS DISTINCT FROM raw.crime_payload(EXCLUDED.payload, EXCLUDED.csv_layout,
                                                 EXCLUDED.csv_fields, EXCLUDED.csv_line)
    END"""


def _merge(
    conn: Connection, staging: str, form_sql: str, params: dict | None = None
) -> tuple[int, int, set[date]]:
    """Upsert ``staging`` into raw.crime_records; returns (loaded, updated, weeks touched).

    ``form_sql`` selects the record's source form from ``staging AS s``: its
    payload, csv_layout, csv_fields and csv_line. Weeks touched are the weeks of every inserted
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
                 lat, lon, cell_id, offense_codes, is_violent, payload, csv_layout, csv_fields,
                 csv_line)
            SELECT {_SELECTED}, {form_sql}
            FROM {staging} AS s
            ON CONFLICT (source, record_id) DO UPDATE SET
                incident_id = EXCLUDED.incident_id, series = EXCLUDED.series,
                occurred_at = EXCLUDED.occurred_at, reported_at = EXCLUDED.reported_at,
                week_start = EXCLUDED.week_start, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
                cell_id = EXCLUDED.cell_id, offense_codes = EXCLUDED.offense_codes,
                is_violent = EXCLUDED.is_violent, payload = EXCLUDED.payload,
                csv_layout = EXCLUDED.csv_layout, csv_fields = EXCLUDED.csv_fields,
                csv_line = EXCLUDED.csv_line, updated_at = now()
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
# Each stored row is sent whole, once: numpy finds the file's records (byte ranges),
# then pandas reads and maps only the fields the mapping needs (a large export in two
# parts at once, one in a forked child process); the rows to store (the
# last line of each key) go out in the order of their key as COPY's binary format (the
# mapped columns and the record's line as written), one chunk encoded in a thread while
# the last is stored. Into an empty table the rows go straight into
# raw.crime_records (truncated first, so the heap keeps that order; indexes built after,
# the key order making the primary key's sort one pass); otherwise into a staging table
# merged with one INSERT ... ON CONFLICT. No jsonb is built: the payload is derived from
# the line when it is read (migration 280).


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


@dataclass
class CsvRecords:
    """The records of an export as byte ranges of its text (the header is record 0).

    Found with numpy, a few MiB of the text at a time: a record ends at a line end outside
    double quotes (RFC 4180: a quoted field may hold line ends), a CR before it is
    dropped. Every record must have the header's number of fields (commas outside
    quotes), as PostgreSQL's COPY required when it parsed the file.
    """

    data: bytes
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.starts) - 1  # without the header

    @staticmethod
    def load(path: Path) -> bytes:
        """The export's bytes (ungzipped), without a byte-order mark; a NUL byte (which
        PostgreSQL text cannot hold) is a one-line SourceError."""
        opener = gzip.open if str(path).endswith(".gz") else open
        try:
            with opener(path, "rb") as handle:
                data = handle.read()
        except (EOFError, OSError) as exc:
            raise lapd.unreadable(path, exc) from exc
        if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
            data = data[3:]
        nul = data.find(b"\x00")
        if nul >= 0:  # PostgreSQL text cannot hold one
            line = data.count(b"\n", 0, nul) + 1
            raise SourceError(
                f"{path.name} is not a readable CSV file: a NUL byte (0x00) on line {line}"
            )
        return data

    @classmethod
    def split(cls, data: bytes, path: Path, start: int = 0, end: int | None = None) -> CsvRecords:
        """The records of the header line and of ``data[start:end]`` (the whole text by
        default; ``start`` is 0 or the first byte of a record), at their places in
        ``data``: found in place, the text is not copied."""
        end = len(data) if end is None else end
        whole = np.frombuffer(data, dtype=np.uint8)
        spans = [(0, end)] if start == 0 else [(0, _header_end(data, start)), (start, end)]
        starts, ends, fields = [], [], []
        for first, last in spans:
            text = whole[first:last]  # a view
            found, quotes = _records_of(text, path)
            fields.append(_fields_of(text, found[0], quotes))
            starts.append(found[0] + first)
            ends.append(found[1] + first)
        records = cls(data, np.concatenate(starts), np.concatenate(ends))
        fields = np.concatenate(fields)
        wrong = np.flatnonzero(fields != fields[0]) if len(fields) else fields
        if len(wrong):
            bad = int(wrong[0])
            raise SourceError(
                f"{path.name} is not a readable CSV file: record {bad} (from line "
                f"{records.line_number(bad)}) has {fields[bad]} fields, the header {fields[0]}"
            )
        return records

    def line_number(self, record: int) -> int:
        """The file line a record starts on (1 = the header)."""
        return (
            int(np.count_nonzero(np.frombuffer(self.data, np.uint8, self.starts[record]) == 10)) + 1
        )

    def lines(self, records: np.ndarray) -> list[memoryview]:
        """The given records' text as written (views of the export's bytes: half the cost
        of copying each line out, and ``b"".join`` takes them as they are)."""
        data = memoryview(self.data)
        return [
            data[s:e]
            for s, e in zip(self.starts[records].tolist(), self.ends[records].tolist(), strict=True)
        ]


def _records_of(text: np.ndarray, path: Path) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The records of ``text`` as (starts, ends) (a record ends at a line end outside
    double quotes, a CR before it dropped), and where its quotes are."""
    newlines, quotes = _positions(text, 10), _positions(text, 34)
    if len(quotes) % 2:
        opened = int(quotes[-1])
        raise SourceError(
            f"{path.name} is not a readable CSV file: unterminated CSV quoted field (the "
            f"quote opened on line {int(np.searchsorted(newlines, opened)) + 1} is still "
            f"open at the end of the file, line {len(newlines) + 1})"
        )
    if len(quotes):  # a line end inside quotes is part of its field
        newlines = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
    ends = newlines
    if len(text) and (not len(ends) or ends[-1] != len(text) - 1):
        ends = np.append(ends, len(text))  # a last line without a line end
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    ends = ends.astype(np.int64)
    has_cr = (ends > starts) & (text[np.maximum(ends - 1, 0)] == 13)
    return (starts, ends - has_cr), quotes


def _fields_of(text: np.ndarray, starts: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """Each record's number of fields: commas outside quotes, plus one."""
    if not len(starts):
        return np.empty(0, np.int64)
    # Commas from each record's start to the next one's (its line end between: none),
    # and from each quote to the next (quote 2k to 2k+1: inside a quoted span).
    per_record, spans = _span_counts(text, 44, starts, quotes)
    if len(quotes):  # commas inside a quoted span do not count
        record = np.searchsorted(starts, quotes[0::2], side="right") - 1
        per_record -= np.bincount(record, weights=spans[0::2], minlength=len(starts)).astype(
            np.int64
        )
    return per_record + 1


# Bytes compared at a time: a scratch array this size stays in the cache, where one the
# size of the export would first cost a page fault every 4 KiB (dearly, in a VM).
_SCAN_BLOCK = 1 << 22


def _blocks(buf: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    for at in range(0, len(buf), _SCAN_BLOCK):
        yield at, buf[at : at + _SCAN_BLOCK]


def _positions(buf: np.ndarray, byte: int) -> np.ndarray:
    """Where ``byte`` occurs in ``buf``, in order (int64)."""
    hits = np.empty(min(len(buf), _SCAN_BLOCK), dtype=bool)
    found = [
        np.flatnonzero(np.equal(block, byte, out=hits[: len(block)])) + at
        for at, block in _blocks(buf)
    ]
    return np.concatenate(found) if found else np.empty(0, np.int64)


def _span_counts(buf: np.ndarray, byte: int, *starts: np.ndarray) -> list[np.ndarray]:
    """For each array of increasing ``starts``: how often ``byte`` occurs from each start
    to the next (the last: to the end), without a list of where it occurs. Summed in 16
    bits, numpy's quickest; the rare span of 64 KiB or more in a block is counted again."""
    counts = [np.zeros(len(s), np.int64) for s in starts]
    flags = np.empty(min(len(buf), _SCAN_BLOCK), dtype=np.uint8)
    for at, block in _blocks(buf):
        found = flags[: len(block)]
        np.equal(block, byte, out=found)
        for begin, total in zip(starts, counts, strict=True):
            lo, hi = np.searchsorted(begin, [at, at + len(block)]).tolist()
            head = int(begin[lo]) - at if lo < hi else len(block)
            if lo and head:  # the block's head belongs to a span begun before it
                total[lo - 1] += np.count_nonzero(found[:head])
            if lo < hi:
                local = begin[lo:hi] - at
                sums = np.add.reduceat(found, local, dtype=np.uint16).astype(np.int64)
                lengths = np.diff(local, append=len(block))
                for i in np.flatnonzero(lengths > 0xFFFF).tolist():
                    sums[i] = np.count_nonzero(found[local[i] : local[i] + lengths[i]])
                total[lo:hi] += sums
    return counts


@dataclass
class _MappedExport:
    """The export mapped by pandas: its rejects (line, record_key, reason, detail), its
    usable rows (indexed by line, in file order, the columns the binary COPY sends) and
    which of those a later line of the same key replaces (``earlier``: not stored)."""

    rows: int
    rejects: pd.DataFrame
    good: pd.DataFrame
    earlier: np.ndarray
    earlier_keys: np.ndarray  # the keys of the earlier lines, in file order
    stored: np.ndarray  # positions in good of the rows to store, in the order of their key
    stored_keys: np.ndarray  # their keys, in that order (numpy strings)
    incident_is_record: bool  # else good has an incident_id column (it never has record_id)


_GOOD_COLUMNS = [
    "record_id", "incident_id", "occurred_at", "reported_at", "week_start", "lat", "lon",
    "cell_id", "offense_codes", "is_violent",
]  # fmt: skip

# An export at least this large is found and mapped in two parts at once, one in a forked
# child process: pandas holds the interpreter while it builds its strings, so a thread
# would wait for it. Below this, forking costs more than it saves.
CSV_PARALLEL_BYTES = 32_000_000


@dataclass
class _MappedPart:
    """What one process makes of a part of the export (its header line, then whole
    records): the records' byte ranges in the whole export, the rejects and the usable
    rows, lines numbered from the part's first record (line 2)."""

    starts: np.ndarray
    ends: np.ndarray
    rows: int
    rejects: pd.DataFrame
    good: pd.DataFrame
    keys: np.ndarray  # the usable rows' keys, sorted
    key_order: np.ndarray  # positions in good in the order of keys (file order within a key)
    incident_is_record: bool  # else good has an incident_id column (it never has record_id:
    # the keys are sent back as numpy strings, and one Python string per row would cost
    # pickling and unpickling)


def _map_part(
    data: bytes, path: Path, adapter: lapd.DatasetAdapter, start: int = 0, end: int | None = None
) -> _MappedPart:
    """Find the records of the header line and ``data[start:end]`` (numpy) and map them
    (pandas); no database. ``start`` is 0 or the start of a record."""
    records = CsvRecords.split(data, path, start, end)
    whole = memoryview(data)
    header = () if start == 0 else (whole[: _header_end(data, start)],)
    text = (*header, whole[start:end])  # read in place, one buffer after the other
    fields = lapd.mapped_fields(adapter)
    try:  # coordinates parsed as numbers by pandas' reader: no string per row
        coordinates = frozenset(f for pair in adapter.coordinate_fields for f in pair)
        frames = list(lapd.read_portal_csv(path, CSV_READ_ROWS, fields, text, coordinates))
    except ValueError:  # a coordinate that is not a number: as text, for the mapping to reject
        frames = list(lapd.read_portal_csv(path, CSV_READ_ROWS, fields, text))
    frame = pd.concat(frames) if len(frames) > 1 else frames[0]
    if len(frame) != len(records):
        raise SourceError(
            f"{path.name}: the file has {len(records)} records but pandas read "
            f"{len(frame)}; the file is not a consistent CSV"
        )
    frame.index = pd.RangeIndex(2, 2 + len(frame))  # line 1 is the header
    mapped, reason = lapd.map_frame(frame, adapter)
    bad = (reason != "").to_numpy()
    rejects = pd.DataFrame(
        {
            "line": frame.index[bad],
            "record_key": mapped.loc[bad, "record_id"].to_numpy(),
            "reason": reason[bad].to_numpy(),
            "detail": mapped.loc[bad, "detail"].fillna("").to_numpy(),
        }
    )
    good = mapped.loc[~bad, _GOOD_COLUMNS]
    keys = good["record_id"].to_numpy(str)
    key_order = np.argsort(keys, kind="stable")
    incident_is_record = good["incident_id"].equals(good["record_id"])
    good = good.drop(columns=["record_id", "incident_id"] if incident_is_record else "record_id")
    return _MappedPart(
        records.starts,
        records.ends,
        len(frame),
        rejects,
        good,
        keys[key_order],
        key_order,
        incident_is_record,
    )


def _record_end(data: bytes, position: int, within: int = 1 << 20) -> int | None:
    """Just past the first line end at or after ``position`` that ends a record (one
    outside double quotes: RFC 4180 fields may hold line ends), searching ``within``
    bytes; None if there is none."""
    newline = data.find(b"\n", position)
    quotes = data.count(b'"', 0, newline)
    while 0 <= newline < position + within:
        if quotes % 2 == 0:
            return newline + 1
        following = data.find(b"\n", newline + 1)
        quotes += data.count(b'"', newline, following)
        newline = following
    return None


def _header_end(data: bytes, start: int) -> int:
    """Just past the header line of an export whose records from ``start`` on are read."""
    return _record_end(data, 0, start) or start


def _split_point(data: bytes) -> int | None:
    """Where a second part of the export can start: the first record after about the
    middle; None for a file too small to split (or with no record end found there)."""
    if len(data) < CSV_PARALLEL_BYTES:
        return None
    # Past the middle: the child also pickles its part back, and the parent unpickles it
    # (52%: 2.14 s for the two, 50%: 2.29 s, 55%: 2.22 s; medians of 7, 1M rows, 2 cores).
    split = _record_end(data, len(data) * 13 // 25)
    return split if split is not None and split < len(data) else None


def _find_and_map(path: Path, adapter: lapd.DatasetAdapter) -> tuple[CsvRecords, _MappedExport]:
    """The export's records and their mapping; a large export in two parts at once (the
    second in a forked child), with the same result as in one."""
    data = CsvRecords.load(path)
    split = _split_point(data) if forked.available() else None
    if split is None:
        return _find_and_map_whole(data, path, adapter)
    try:
        with forked.Forked(_map_part, data, path, adapter, split) as child:
            first = _map_part(data, path, adapter, 0, split)
            second = child.result()
    except (SourceError, forked.ChildFailed):
        # A part that is not CSV: the whole file, in one, says where exactly.
        return _find_and_map_whole(data, path, adapter)
    return _combine(data, [first, second], path.name)


def _find_and_map_whole(
    data: bytes, path: Path, adapter: lapd.DatasetAdapter
) -> tuple[CsvRecords, _MappedExport]:
    return _combine(data, [_map_part(data, path, adapter)], path.name)


def _combine(
    data: bytes, parts: list[_MappedPart], file_name: str
) -> tuple[CsvRecords, _MappedExport]:
    """The parts as one export: records and lines numbered through the whole file; a key
    on several lines keeps its last."""
    starts = np.concatenate([parts[0].starts, *(p.starts[1:] for p in parts[1:])])
    ends = np.concatenate([parts[0].ends, *(p.ends[1:] for p in parts[1:])])
    rejects, good, before = [], [], 0
    incident_is_record = all(p.incident_is_record for p in parts)
    for part in parts:
        rejects.append(part.rejects.assign(line=part.rejects["line"] + before))
        rows = part.good.set_axis(part.good.index + before)
        if part.incident_is_record and not incident_is_record:  # its keys, in row order
            incidents = np.empty(len(rows), dtype=object)
            incidents[part.key_order] = part.keys.tolist()
            rows = rows.assign(incident_id=incidents)
        good.append(rows)
        before += part.rows
    rejects = pd.concat(rejects, ignore_index=True) if len(parts) > 1 else rejects[0]
    rejects["detail"] = (
        rejects["detail"] + f" (csv:{file_name} line " + rejects["line"].astype(str) + ")"
    )
    good = pd.concat(good) if len(parts) > 1 else good[0]
    # The parts' sorted keys merged (a stable sort of sorted runs: one pass), so the lines
    # of one key stay in file order.
    keys = np.concatenate([p.keys for p in parts])
    first_row = np.cumsum([0] + [len(p.good) for p in parts[:-1]])
    order = np.concatenate([p.key_order + first for p, first in zip(parts, first_row, strict=True)])
    if len(parts) > 1:
        merged = np.argsort(keys, kind="stable")
        keys, order = keys[merged], order[merged]
    earlier = np.zeros(len(keys), dtype=bool)
    repeated = keys[:-1] == keys[1:]
    earlier[order[:-1]] = repeated
    file_order = np.argsort(order[:-1][repeated])
    kept = ~earlier[order]
    mapped = _MappedExport(
        before,
        rejects,
        good,
        earlier,
        keys[:-1][repeated][file_order],
        order[kept],
        keys[kept],
        incident_is_record,
    )
    return CsvRecords(data, starts, ends), mapped


# The columns of raw.crime_records the binary COPY sends, in its order: fixed-width ones
# first (one numpy record per row), then the variable-length ones.
_COPY_COLUMNS = (
    "source, series, csv_layout, occurred_at, reported_at, week_start, lat, lon, cell_id, "
    "is_violent, record_id, incident_id, offense_codes, csv_line"
)
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)


class _RowEncoder:
    """Mapped rows to COPY's binary format (the stored row, whole).

    Offense code lists become text[] in PostgreSQL's own binary form (array_send of
    the literal the mapping wrote, asked once per distinct list on a side connection,
    so they parse exactly as a cast of the literal would).
    """

    def __init__(self, engine: Engine, source: str, series: str, layout_id: int) -> None:
        self.engine = engine
        self.offenses: dict[str, bytes] = {}
        src, ser = source.encode(), series.encode()
        self.fixed = np.dtype(
            [("fields", ">i2"),
             ("source_len", ">i4"), ("source", f"S{len(src)}"),
             ("series_len", ">i4"), ("series", f"S{len(ser)}"),
             ("layout_len", ">i4"), ("layout", ">i4"),
             ("occurred_len", ">i4"), ("occurred", ">i8"),
             ("reported_len", ">i4"), ("reported", ">i8"),
             ("week_len", ">i4"), ("week", ">i4"),
             ("lat_len", ">i4"), ("lat", ">f8"),
             ("lon_len", ">i4"), ("lon", ">f8"),
             ("cell_len", ">i4"), ("cell", ">i4"),
             ("violent_len", ">i4"), ("violent", "u1"),
             ("record_id_len", ">i4")]
        )  # fmt: skip
        constants = {
            "fields": 14, "source_len": len(src), "source": src, "series_len": len(ser),
            "series": ser, "layout_len": 4, "layout": layout_id, "occurred_len": 8,
            "reported_len": 8, "week_len": 4, "lat_len": 8, "lon_len": 8, "cell_len": 4,
            "violent_len": 1,
        }  # fmt: skip
        self.template = np.zeros(1, dtype=self.fixed)  # a row's constant parts, copied per row
        for name, value in constants.items():
            self.template[name] = value

    def _offense_pieces(self, literals: list[str]) -> list[bytes]:
        """Each distinct literal's field (length and array_send), fetched once per import."""
        new = [lit for lit in literals if lit not in self.offenses]
        if new:
            with self.engine.connect() as side:
                sent = side.execute(
                    sa.text(
                        "SELECT array_send(CAST(l AS text[])) FROM unnest(CAST(:l AS text[])) "
                        "WITH ORDINALITY AS u (l, n) ORDER BY n"
                    ),
                    {"l": new},
                ).scalars()
                for literal, value in zip(new, sent, strict=True):
                    value = bytes(value)
                    self.offenses[literal] = struct.pack(">i", len(value)) + value
        table = self.offenses
        return [table[lit] for lit in literals]

    def encode(self, rows_of: dict[str, np.ndarray], records: CsvRecords) -> bytes:
        """The rows in COPY's binary format, in the order of their columns ``rows_of``
        (the mapped columns and ``line``; ``incident_id`` may be ``record_id`` itself).

        Each row is two pieces for one join: the line as written, and everything before
        it (the fixed-width columns, the keys, the offense codes, the line's length) built
        by numpy for all rows whose variable-length parts have the same lengths at once."""
        n = len(rows_of["line"])
        if not n:
            return b""
        rows = np.repeat(self.template, n)
        rows["occurred"] = (rows_of["occurred_at"].astype("datetime64[us]") - _PG_EPOCH).astype(
            np.int64
        )
        rows["reported"] = (rows_of["reported_at"].astype("datetime64[us]") - _PG_EPOCH).astype(
            np.int64
        )
        rows["week"] = (
            rows_of["week_start"].astype("datetime64[D]") - _PG_EPOCH.astype("datetime64[D]")
        ).astype(np.int64)
        rows["lat"] = rows_of["lat"]
        rows["lon"] = rows_of["lon"]
        rows["cell"] = rows_of["cell_id"]
        rows["violent"] = rows_of["is_violent"]
        record_ids = _Texts.of(rows_of["record_id"])
        rows["record_id_len"] = record_ids.lengths
        if rows_of["incident_id"] is rows_of["record_id"]:
            incident_ids = record_ids
        else:
            incident_ids = _Texts.of(rows_of["incident_id"])
        codes, literals = pd.factorize(rows_of["offense_codes"])
        offenses = _Texts(self._offense_pieces(literals.tolist()))
        line_ids = rows_of["line"] - 1  # line 2 is record 1 (the header is 0)
        line_lengths = records.ends[line_ids] - records.starts[line_ids]
        fixed = rows.view(f"V{self.fixed.itemsize}")
        prefixes = np.empty(n, dtype=object)
        lengths = np.stack([record_ids.lengths, incident_ids.lengths, offenses.lengths[codes]])
        group, shapes = pd.factorize(lengths[0] << 42 | lengths[1] << 21 | lengths[2])
        if lengths.max() >= 1 << 21:  # a key of 2 MB: group without packing the lengths
            shapes, group = np.unique(lengths, axis=1, return_inverse=True)
            group = group.ravel()
        members_of = np.argsort(group, kind="stable")
        bounds = np.searchsorted(group[members_of], np.arange(len(shapes) + 1))
        for g in range(len(shapes)):
            members = members_of[bounds[g] : bounds[g + 1]]
            rid_len, inc_len, off_len = lengths[:, members[0]].tolist()
            prefix = np.empty(
                len(members),
                dtype=[("fixed", fixed.dtype), ("record_id", "u1", (rid_len,)),
                       ("incident_len", ">i4"), ("incident_id", "u1", (inc_len,)),
                       ("offenses", "u1", (off_len,)), ("line_len", ">i4")],
            )  # fmt: skip
            prefix["fixed"] = fixed[members]
            prefix["record_id"] = record_ids.gather(members, rid_len)
            prefix["incident_len"] = inc_len
            prefix["incident_id"] = (
                prefix["record_id"]
                if incident_ids is record_ids
                else incident_ids.gather(members, inc_len)
            )
            prefix["offenses"] = offenses.gather(codes[members], off_len)
            prefix["line_len"] = line_lengths[members]
            prefixes[members] = prefix.view(f"V{prefix.dtype.itemsize}").tolist()  # bytes each
        pieces: list = [None] * (2 * n)
        pieces[0::2] = prefixes.tolist()
        pieces[1::2] = records.lines(line_ids)
        return b"".join(pieces)


class _Texts:
    """Byte strings side by side (one buffer, their lengths) for numpy to gather from."""

    def __init__(self, texts: list) -> None:
        encoded = [t.encode() if isinstance(t, str) else t for t in texts]
        self.lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        self.offsets = np.cumsum(self.lengths) - self.lengths
        self.buffer = np.frombuffer(b"".join(encoded), np.uint8)

    @classmethod
    def of(cls, values: np.ndarray) -> _Texts:
        """Strings as UTF-8: numpy strings of ASCII characters (keys, as a rule) as they
        are, side by side at their fixed width, without a Python string per value."""
        values = np.ascontiguousarray(values)
        if values.dtype.kind != "U" or not len(values) or values.view(np.uint32).max() >= 128:
            return cls(values.tolist())
        width = values.dtype.itemsize // 4  # UTF-32 code units: ASCII ones are the bytes
        texts = cls.__new__(cls)
        texts.lengths = np.strings.str_len(values).astype(np.int64)
        texts.offsets = np.arange(len(values), dtype=np.int64) * width
        texts.buffer = values.view(np.uint32).astype(np.uint8)
        return texts

    def gather(self, which: np.ndarray, length: int) -> np.ndarray:
        """The bytes of ``which`` (all ``length`` long) as rows of a uint8 matrix."""
        return self.buffer[self.offsets[which][:, None] + np.arange(length)]


class _CopyStream:
    """A file-like object COPY reads: the binary header, each chunk as the mapping
    thread encodes it, the trailer."""

    def __init__(self, chunks: queue.Queue) -> None:
        self.chunks = chunks
        self.pending = [COPY_HEADER]
        self.done = False

    def read(self, size: int = -1) -> bytes:
        while not self.pending and not self.done:
            item = self.chunks.get()
            if item is None:
                self.done = True
                self.pending.append(COPY_TRAILER)
            elif isinstance(item, BaseException):
                raise item
            elif item:
                self.pending.append(item)
        return self.pending.pop(0) if self.pending else b""


def _encode_rows(
    mapped: _MappedExport,
    records: CsvRecords,
    encoder: _RowEncoder,
    out: queue.Queue,
    stop: threading.Event,
) -> float:
    """Encode the rows to store (the last line of each key) in the order of their key,
    chunk by chunk into ``out`` (then None, or the exception that stopped it); returns
    the seconds it took. Stops once ``stop`` is set.

    Why the key order: the rows go into the heap sorted by ``record_id`` (and, where the
    incident is the record, by ``incident_id``), and PostgreSQL's sort checks for
    presorted input first, so the builds of the primary key and the incident index after
    a load into an empty table take one pass over the keys instead of a full sort of
    text under the database's collation. Any order stores the same rows."""
    started = time.perf_counter()

    def put(item) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    try:
        good = mapped.good
        same = mapped.incident_is_record
        columns = {name: good[name].to_numpy() for name in good.columns}
        columns["line"] = good.index.to_numpy()
        for first in range(0, len(mapped.stored), CSV_CHUNK_ROWS):
            if stop.is_set():
                break
            which = mapped.stored[first : first + CSV_CHUNK_ROWS]
            chunk = {name: values[which] for name, values in columns.items()}
            chunk["record_id"] = mapped.stored_keys[first : first + CSV_CHUNK_ROWS]
            if same:
                chunk["incident_id"] = chunk["record_id"]
            put(encoder.encode(chunk, records))
        put(None)
    except BaseException as exc:  # handed to the COPY, which fails with it
        put(exc)
    return time.perf_counter() - started


def _copy_rows(conn: Connection, table: str, stream: _CopyStream, path: Path) -> None:
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.copy_expert(
            f"COPY {table} ({_COPY_COLUMNS}) FROM STDIN WITH (FORMAT binary)", stream
        )
    except (psycopg2.DataError, UnicodeDecodeError) as exc:
        raise lapd.unreadable(path, exc) from exc
    finally:
        cursor.close()


@contextmanager
def _set_on_exit(event: threading.Event) -> Iterator[None]:
    try:
        yield
    finally:
        event.set()


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
        collector_paused(),  # the import's millions of objects make no cycles
        ThreadPoolExecutor(1, thread_name_prefix="csv-encode") as pool,
        _set_on_exit(stop),  # before the pool waits for its thread, whatever happened
        engine.begin() as conn,
    ):
        layout = CsvLayout.of(lapd.portal_header(path), adapter)
        # Memory for the index builds and the merge's joins, this transaction only.
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{CSV_WORK_MEM}'")
        conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{CSV_WORK_MEM}'")
        encoder = _RowEncoder(engine, dataset_id, adapter.series, _csv_layout_id(conn, layout))
        with _timed(steps, "find_and_map"):
            records, mapped = _find_and_map(path, adapter)
        report.fetched = mapped.rows
        chunks: queue.Queue = queue.Queue(maxsize=2)
        stream = _CopyStream(chunks)
        encoding = pool.submit(_encode_rows, mapped, records, encoder, chunks, stop)
        conn.exec_driver_sql(
            "CREATE TEMP TABLE _csv_rejects (line bigint, record_key text, reason text, "
            "detail text, csv_line text) ON COMMIT DROP"
        )
        reject_types = column_types(conn, "_csv_rejects")
        report.rejected.update(mapped.rejects["reason"].tolist())
        if mapped.earlier.any():
            report.rejected[lapd.DUPLICATE_KEY] += int(mapped.earlier.sum())
        valid = len(mapped.stored)
        with _deferred_indexes(conn, steps) as deferred:
            table = "raw.crime_records" if deferred else "_csv_in"
            if not deferred:
                conn.exec_driver_sql(
                    "CREATE TEMP TABLE _csv_in (LIKE raw.crime_records INCLUDING DEFAULTS) "
                    "ON COMMIT DROP"
                )
            try:
                with _timed(steps, "copy"):
                    _copy_rows(conn, table, stream, path)
            finally:
                stop.set()
                steps["encode_beside_copy"] = encoding.result()
            # The rejected lines are encoded for their COPY while PostgreSQL builds the
            # indexes (or merges): the connection is busy, the client idle.
            staging = pool.submit(_rejected_rows, mapped, records, reject_types)
            if deferred:
                loaded, updated = valid, 0
                stored_weeks = mapped.good["week_start"].to_numpy("datetime64[D]")[mapped.stored]
                weeks = {d.date() for d in pd.to_datetime(np.unique(stored_weeks))}
                staleweeks.mark(conn, weeks)
                conn.exec_driver_sql(
                    "DELETE FROM ops.rejects AS j USING raw.crime_records AS s "
                    "WHERE j.source = s.source AND j.record_key = s.record_id"
                )
            else:
                with _timed(steps, "merge"):
                    conn.exec_driver_sql("ANALYZE _csv_in")
                    loaded, updated, weeks = _merge(conn, "_csv_in", _CSV_FORM)
        with _timed(steps, "rejects"):
            send_rows(conn, staging.result(), "_csv_rejects")
            _store_csv_rejects(conn, dataset_id, layout)
        report.loaded, report.updated = loaded, updated
        report.unchanged = valid - loaded - updated
        report.weeks_touched = weeks
    return report


def _rejected_rows(
    mapped: _MappedExport, records: CsvRecords, types: dict[str, str]
) -> EncodedRows:
    """The rejected lines, with their text, encoded for _csv_rejects: the mapping's rejects,
    and the earlier lines of a key on several lines (the rows sent to COPY are the last
    lines only)."""
    earlier = mapped.good[mapped.earlier]
    duplicates = pd.DataFrame(
        {
            "line": earlier.index,
            "record_key": mapped.earlier_keys.astype(object),
            "reason": lapd.DUPLICATE_KEY,
            "detail": "a later line has the same key (line " + earlier.index.astype(str) + ")",
        }
    )
    rejects = pd.concat([mapped.rejects, duplicates], ignore_index=True)
    rejects["line"] = rejects["line"].astype(np.int64)
    rejects["csv_line"] = [bytes(b).decode() for b in records.lines(rejects["line"].to_numpy() - 1)]
    return encode_rows(rejects, list(rejects.columns), types)


_CSV_FORM = "s.payload, s.csv_layout, s.csv_fields, s.csv_line"


@contextmanager
def _deferred_indexes(conn: Connection, steps: dict[str, float]) -> Iterator[bool]:
    """Into an empty raw.crime_records, load first and index after.

    PostgreSQL's advice for populating a table: one sorted index build (and one
    foreign-key check, were there one) over the whole table cost a fraction of a million
    per-row index insertions and trigger calls. An index whose input is presorted (led
    by the key the rows come in) is built without parallel workers, the others with the
    server's. The definitions are read from
    the catalog, dropped, and created again in the same transaction (a failure
    rolls them back with the rows). Yields False, changing nothing, when the
    table has rows or a definition cannot be dropped (or the table truncated).
    """
    has_rows = "SELECT EXISTS (SELECT 1 FROM raw.crime_records)"
    # The first look on a connection of its own: made in this transaction, it would hold
    # a lock on the table to the end, and two imports that both looked before either
    # asked for the exclusive lock would each wait for the other (a deadlock).
    with conn.engine.connect() as look:
        filled = look.exec_driver_sql(has_rows).scalar_one()
    if filled:
        yield False
        return
    conn.exec_driver_sql("LOCK TABLE raw.crime_records IN ACCESS EXCLUSIVE MODE")
    # Another import may have filled the table between the look and the lock: then load
    # the ordinary way (keeping the lock to the end of this transaction).
    if conn.exec_driver_sql(has_rows).scalar_one():
        yield False
        return
    constraints = conn.exec_driver_sql(
        "SELECT conname, contype, pg_get_constraintdef(oid), "
        f"  {_LEADING_COLUMN.format(index='c.conindid')} "
        "FROM pg_constraint AS c "
        "WHERE conrelid = 'raw.crime_records'::regclass AND contype IN ('p', 'u', 'f') "
        "ORDER BY contype = 'f', conname"
    ).all()
    indexes = conn.exec_driver_sql(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), "
        f"  {_LEADING_COLUMN.format(index='i.indexrelid')} "
        "FROM pg_index AS i "
        "WHERE i.indrelid = 'raw.crime_records'::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid "
        " AND c.conrelid = i.indrelid)"
    ).all()
    savepoint = conn.begin_nested()
    try:
        for name, _, _ in indexes:
            conn.exec_driver_sql(f"DROP INDEX {name}")
        for name, _, _, _ in reversed(constraints):
            conn.exec_driver_sql(f'ALTER TABLE raw.crime_records DROP CONSTRAINT "{name}"')
        # The table is empty and locked: truncated in this transaction, it gets a new file,
        # which COPY fills page after page without looking for free space in earlier ones,
        # so the heap keeps the order the rows are sent in (see _produce).
        conn.exec_driver_sql("TRUNCATE raw.crime_records")
    except sa.exc.DBAPIError as exc:  # something depends on them: load the ordinary way
        log.info("indexes of raw.crime_records stay during the load: %s", exc)
        savepoint.rollback()
        yield False
        return
    savepoint.commit()
    yield True
    with _timed(steps, "build_indexes"):
        workers = int(conn.exec_driver_sql("SHOW max_parallel_maintenance_workers").scalar_one())
        for name, _, definition, leading in constraints:
            _workers_for(conn, leading, workers)
            conn.exec_driver_sql(
                f'ALTER TABLE raw.crime_records ADD CONSTRAINT "{name}" {definition}'
            )
        for _, definition, leading in indexes:
            _workers_for(conn, leading, workers)
            conn.exec_driver_sql(definition)


# The first column an index (or a constraint's index) sorts on.
_LEADING_COLUMN = (
    "(SELECT a.attname FROM pg_index AS x JOIN pg_attribute AS a "
    "ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] WHERE x.indexrelid = {index})"
)
# The heap is in the order of (source, record_id), and of (series, incident_id) where the
# incident is the record (the legacy dataset's): an index led by these reads presorted
# input, which PostgreSQL's sort takes in one pass; one parallel worker reading half the
# heap beside the leader still helps (0.47 s against 0.52 s alone), more only add runs to
# merge. The others sort a million rows: one worker sorting half of them beside the leader
# took 0.72 s for the two, against 1.2 s alone (1,000,000 rows, 2 cores).
_PRESORTED_LEADS = frozenset({"source", "record_id", "series", "incident_id"})


def _workers_for(conn: Connection, leading: str | None, workers: int) -> None:
    """Parallel workers for one index build: the server's ``max_parallel_maintenance_workers``
    (``workers``), at most one for presorted input."""
    if leading in _PRESORTED_LEADS:
        workers = min(workers, 1)
    conn.exec_driver_sql(f"SET LOCAL max_parallel_maintenance_workers = {int(workers)}")


def _store_csv_rejects(conn: Connection, dataset_id: str, layout: CsvLayout) -> None:
    """Rejected lines into ops.rejects with the row exactly as written (display-name keys,
    passed as a parameter; empty fields as ""); a line without a key is keyed by the md5
    of that row."""
    raw = "jsonb_object(%(display_names)s::text[], raw.crime_csv_split(j.csv_line))"
    conn.exec_driver_sql(
        f"""
        INSERT INTO ops.rejects (source, record_key, reason, detail, payload)
        SELECT DISTINCT ON (record_key, reason)
               {_literal(dataset_id)}, record_key, reason, detail, payload
        FROM (
            SELECT coalesce(j.record_key, md5(({raw})::text)) AS record_key,
                   j.reason, j.detail, ({raw}) AS payload, j.line
            FROM _csv_rejects AS j
        ) AS rows
        ORDER BY record_key, reason, line DESC
        ON CONFLICT (source, record_key, reason) DO UPDATE
        SET detail = EXCLUDED.detail, payload = EXCLUDED.payload
        WHERE ops.rejects.payload IS DISTINCT FROM EXCLUDED.payload
        """,
        {"display_names": list(layout.header)},
    )
