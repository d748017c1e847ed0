"""NCEI Access Data Service client: GHCN-Daily summaries (TMAX, TMIN, PRCP) as records.

The service answers ``GET {CRIMEJOB_NCEI_URL}?dataset=daily-summaries&stations=...``
with a JSON array of flat objects whose values are all strings, and a value the
station did not report is a missing key. We ask for ``units=standard`` (deg F,
inches) so no unit conversion happens here, and for the station name and
location so ``raw.weather_stations`` can learn stations that are not configured.

Long ranges are split into chunks (one per calendar year by default) so no single
response is huge and a retry repeats little. Every record is checked against
the field names we know: a renamed field (the service changing ``TMAX`` to
``tmax``, say) fails the fetch with a :class:`SourceError` that names it, rather
than silently loading days without temperatures.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from crimejob.config import Settings, get_settings
from crimejob.errors import SourceError
from crimejob.ingest.sources.http import HttpClient

log = logging.getLogger(__name__)

DATASET = "daily-summaries"
DATA_TYPES = ("TMAX", "TMIN", "PRCP")
# Fields a daily-summaries record may carry with the parameters we send (and
# the columns of a CDO/Access CSV download). ``*_ATTRIBUTES`` columns (measurement,
# quality and source flags) are allowed for any data type.
KEY_FIELDS = ("STATION", "DATE")
LOCATION_FIELDS = ("LATITUDE", "LONGITUDE", "ELEVATION", "NAME")
KNOWN_FIELDS = frozenset(KEY_FIELDS + LOCATION_FIELDS + DATA_TYPES)


def check_fields(records: Iterable[dict[str, Any]], where: str) -> None:
    """Raise :class:`SourceError` if a record lacks a key field or has a field we do not know.

    A missing *value* is a missing key in this format, so the only way to see a
    renamed data field is as an unknown one; both mean the format changed.
    """
    unknown: set[str] = set()
    missing: set[str] = set()
    for record in records:
        if not isinstance(record, dict):
            raise SourceError(f"{where}: expected JSON objects, got {type(record).__name__}")
        for key in record:
            if key not in KNOWN_FIELDS and not key.endswith("_ATTRIBUTES"):
                unknown.add(key)
        missing.update(k for k in KEY_FIELDS if k not in record)
    if unknown:
        raise SourceError(
            f"{where}: unexpected field(s) {', '.join(sorted(unknown))} in daily summaries "
            f"(expected {', '.join(sorted(KNOWN_FIELDS))}); has the format changed?"
        )
    if missing:
        raise SourceError(
            f"{where}: daily summaries without field(s) {', '.join(sorted(missing))}; "
            "has the format changed?"
        )


def date_chunks(start: date, end: date, days: int | None = None) -> list[tuple[date, date]]:
    """Split ``start..end`` (inclusive) into consecutive inclusive ranges.

    By default one range per calendar year (a year of five stations is a few
    thousand records); with ``days``, ranges of at most that many days.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    chunks = []
    first = start
    while first <= end:
        if days is None:
            last = min(date(first.year, 12, 31), end)
        else:
            last = min(first + timedelta(days=days - 1), end)
        chunks.append((first, last))
        first = last + timedelta(days=1)
    return chunks


def check_units(records: Iterable[dict[str, Any]], where: str) -> None:
    """Raise :class:`SourceError` if values look like raw GHCN tenths rather than deg F/inches.

    Without ``units=standard`` the service sends tenths of deg C and of mm,
    right-aligned with spaces; many such values would pass a range check and
    silently become wrong degrees, so the whole response or file is refused.
    """
    for record in records:
        for key in DATA_TYPES:
            value = record.get(key)
            if isinstance(value, str) and value[:1] == " " and value.strip():
                raise SourceError(
                    f"{where}: {key} value {value!r} is space-padded raw tenths; "
                    "request or download the data with units=standard (deg F, inches)"
                )


class NceiClient:
    """Fetch daily summaries for a list of stations from the Access Data Service."""

    def __init__(
        self,
        settings: Settings | None = None,
        http: HttpClient | None = None,
        chunk_days: int | None = None,
    ):
        self.settings = settings or get_settings()
        self.http = http or HttpClient(self.settings)
        self.chunk_days = chunk_days

    def params(self, stations: Sequence[str], start: date, end: date) -> dict[str, str]:
        """The query for one chunk (deg F and inches, with station name and location)."""
        return {
            "dataset": DATASET,
            "stations": ",".join(stations),
            "startDate": start.isoformat(),
            "endDate": end.isoformat(),
            "dataTypes": ",".join(DATA_TYPES),
            "units": "standard",
            "includeStationName": "1",
            "includeStationLocation": "1",
            "format": "json",
        }

    def fetch_chunk(self, stations: Sequence[str], start: date, end: date) -> list[dict]:
        """One request; retried by :class:`HttpClient`, validated before it is returned."""
        body = self.http.get_json(self.settings.ncei_url, self.params(stations, start, end))
        where = f"NCEI {start}..{end}"
        if body is None:
            return []
        if not isinstance(body, list):
            raise SourceError(f"{where}: expected a JSON array, got {type(body).__name__}")
        check_fields(body, where)
        check_units(body, where)
        return body

    def fetch(self, stations: Sequence[str], start: date, end: date) -> list[dict]:
        """Every record for ``stations`` from ``start`` to ``end`` inclusive, all chunks.

        Raises :class:`SourceError` if any chunk fails, so the caller gets all
        or nothing and never writes a partial range.
        """
        if not stations:
            raise ValueError("no weather stations configured")
        records: list[dict] = []
        for first, last in date_chunks(start, end, self.chunk_days):
            chunk = self.fetch_chunk(stations, first, last)
            log.info("NCEI %s..%s: %d records", first, last, len(chunk))
            records.extend(chunk)
        return records


def read_daily_csv(path: Path | str) -> list[dict[str, str]]:
    """Read an NCEI daily-summaries CSV (Access ``format=csv`` or a CDO download) as records.

    Records come out exactly as the JSON API would send them: string values,
    and an empty cell becomes a missing key. Columns vary between downloads
    (name, location and ``*_ATTRIBUTES`` columns are optional); the header is
    checked like an API response, so a renamed column is a clear error.
    """
    path = Path(path)
    text = read_csv_text(path)
    if text and not text.endswith(("\n", "\r")):
        # A download cut short ends mid-line: its last value may be a shorter number
        # ("7" of "72") that would pass every check, and the rest of the file is lost.
        line = text.count("\n") + 1
        raise SourceError(
            f"{path.name} ends in the middle of line {line} (no line end): the file is "
            "truncated; download it again"
        )
    reader = csv.DictReader(io.StringIO(text), strict=True)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
        if not header:
            raise SourceError(f"{path.name}: empty file, no CSV header")
        repeated = sorted({h for h in header if header.count(h) > 1})
        if repeated:
            raise SourceError(f"{path.name}: column(s) {', '.join(repeated)} appear twice")
        reader.fieldnames = header
        check_fields([dict.fromkeys(header, "")], f"{path.name}")
        records = []
        for row in reader:
            if None in row:  # more cells than header columns
                extra = row.pop(None)
                row["_extra_cells"] = ",".join(extra)
            records.append({k: v for k, v in row.items() if v is not None and v.strip() != ""})
    except csv.Error as exc:
        raise SourceError(
            f"{path.name} is not a readable CSV file: {exc} (line {reader.line_num})"
        ) from exc
    check_units(records, path.name)
    return records


def read_csv_text(path: Path) -> str:
    """The whole file as UTF-8 text; anything else (a directory, binary, UTF-16,
    Latin-1, a NUL byte) is a :class:`SourceError` in one line."""
    if not path.is_file():
        raise SourceError(f"no such file: {path}" if not path.exists() else f"{path} is not a file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path.name} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8 CSV"
        ) from None
    if "\x00" in text:
        raise SourceError(f"{path.name} contains a NUL byte at character {text.index(chr(0))}")
    return text
