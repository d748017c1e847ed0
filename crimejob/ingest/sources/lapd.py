"""LAPD crime datasets: one adapter per SODA dataset, mapping records to ``raw.crime_records``.

Three datasets serve different report dates (see ``crimejob.config.DEFAULT_CRIME_DATASETS``):

- ``2nrs-mtv8``, legacy "Crime Data from 2020 to Present": one row per report,
  natural key ``dr_no``; ``date_occ`` is always midnight and the time of day is
  ``time_occ`` (HHMM); offense codes ``crm_cd`` and ``crm_cd_1..crm_cd_4``.
- ``y8y3-fqfu`` and ``k7nn-b2ep``, NIBRS offenses: one row per offense, natural
  key ``uniquenibrno``, incident ``caseno``, offense ``nibr_code``. Both name the
  report date ``date_rptd`` (the field the window is queried on). ``k7nn-b2ep``
  names its coordinates ``hndrdth_lat``/``hndrdth_lon``; for ``y8y3-fqfu`` public
  descriptions disagree (``lat``/``lon`` or no coordinates at all), so its adapter
  takes whichever pair is present and does not require either: records without
  one are rejected as ``missing_location`` and counted, never dropped silently.

Everything is vectorised over a DataFrame of source strings (SODA field names,
NaN for a missing field), so the same mapping serves a week from the API and a
million-row portal CSV export. A record that cannot be used becomes a reject
with its reason (``crimejob.ingest.rejects``) and its raw payload.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crimejob.errors import SourceError
from crimejob.grid.cells import cell_of
from crimejob.ingest import rejects as R

LEGACY = "2nrs-mtv8"
NIBRS_2024 = "y8y3-fqfu"
NIBRS_2026 = "k7nn-b2ep"

# FBI Part I violent crime as LAPD codes it (the categories: docs/categories.md).
LEGACY_VIOLENT_CODES = frozenset(
    "110 113 121 122 815 820 821 210 220 230 231 235 236 250 251 761 926".split()
)
# NIBRS: murder (09A), rape (11A), sodomy (11B), sexual assault with an object
# (11C), robbery (120), aggravated assault (13A).
NIBRS_VIOLENT_CODES = frozenset("09A 11A 11B 11C 120 13A".split())

# NIBRS time_occ 0000 and 1200 mostly mean "time unknown" (LAPD's placeholder values).
NIBRS_UNKNOWN_TIMES = frozenset({0, 12 * 60})
# Occurrence dates before this, or after the report date, are junk (the NIBRS datasets
# hold dates back to 1800-01-06): such records are rejected, with the date, not loaded.
EARLIEST_OCCURRENCE = pd.Timestamp("2000-01-01")

# Code formats: legacy crm_cd is a three-digit number (110..999); NIBRS offense
# codes are three characters, digits with an optional trailing letter (09A, 120, 90Z).
_LEGACY_CODE = r"^[1-9]\d{2}$"
_NIBRS_CODE = r"^\d{2}[0-9A-Z]$"

# Legacy field names in the order the dataset lists them; the portal CSV export
# uses display names that normalise to these (``Crm Cd 1`` -> ``crm_cd_1``).
LEGACY_FIELDS = (
    "dr_no date_rptd date_occ time_occ area area_name rpt_dist_no part_1_2 crm_cd "
    "crm_cd_desc mocodes vict_age vict_sex vict_descent premis_cd premis_desc "
    "weapon_used_cd weapon_desc status status_desc crm_cd_1 crm_cd_2 crm_cd_3 crm_cd_4 "
    "location cross_street lat lon"
).split()

RECORD_COLUMNS = [
    "source",
    "record_id",
    "incident_id",
    "series",
    "occurred_at",
    "reported_at",
    "week_start",
    "lat",
    "lon",
    "cell_id",
    "offense_codes",
    "is_violent",
]
REJECT_COLUMNS = ["source", "record_key", "reason", "detail", "payload"]

# Rejects of a record whose natural key appears twice in one batch (the last wins).
DUPLICATE_KEY = "duplicate_key"
# An occurrence date that cannot be true: before 2000, or after the report date.
IMPLAUSIBLE_DATE = "implausible_date"


@dataclass(frozen=True)
class DatasetAdapter:
    """How one SODA dataset names its fields, and what makes its records violent."""

    dataset_id: str
    series: str  # "legacy" or "nibrs"
    key_field: str
    incident_field: str
    code_fields: tuple[str, ...]
    coordinate_fields: tuple[tuple[str, str], ...]  # candidates, first present wins
    violent_codes: frozenset[str]
    code_pattern: str
    coordinates_required: bool = True
    report_field: str = "date_rptd"
    occurred_field: str = "date_occ"
    time_field: str = "time_occ"
    # time_occ values (minutes after midnight) that mean "time unknown", not a time
    unknown_times: frozenset[int] = frozenset()

    @property
    def required_fields(self) -> tuple[str, ...]:
        """Fields every healthy page carries; one absent from a whole page means a rename."""
        fields = [self.key_field, self.report_field, self.occurred_field, self.code_fields[0]]
        if self.incident_field != self.key_field:
            fields.append(self.incident_field)
        if self.coordinates_required:
            fields.extend(self.coordinate_fields[0])
        return tuple(fields)

    @property
    def order_field(self) -> str:
        """The natural key: a stable ``$order`` for paging."""
        return self.key_field


ADAPTERS: dict[str, DatasetAdapter] = {
    LEGACY: DatasetAdapter(
        dataset_id=LEGACY,
        series="legacy",
        key_field="dr_no",
        incident_field="dr_no",
        code_fields=("crm_cd", "crm_cd_1", "crm_cd_2", "crm_cd_3", "crm_cd_4"),
        coordinate_fields=(("lat", "lon"),),
        violent_codes=LEGACY_VIOLENT_CODES,
        code_pattern=_LEGACY_CODE,
    ),
    NIBRS_2024: DatasetAdapter(
        dataset_id=NIBRS_2024,
        series="nibrs",
        key_field="uniquenibrno",
        incident_field="caseno",
        code_fields=("nibr_code",),
        coordinate_fields=(("lat", "lon"), ("hndrdth_lat", "hndrdth_lon")),
        violent_codes=NIBRS_VIOLENT_CODES,
        code_pattern=_NIBRS_CODE,
        coordinates_required=False,
        unknown_times=NIBRS_UNKNOWN_TIMES,
    ),
    NIBRS_2026: DatasetAdapter(
        dataset_id=NIBRS_2026,
        series="nibrs",
        key_field="uniquenibrno",
        incident_field="caseno",
        code_fields=("nibr_code",),
        coordinate_fields=(("hndrdth_lat", "hndrdth_lon"),),
        violent_codes=NIBRS_VIOLENT_CODES,
        code_pattern=_NIBRS_CODE,
        unknown_times=NIBRS_UNKNOWN_TIMES,
    ),
}


def adapter_for(dataset_id: str) -> DatasetAdapter:
    """The adapter of a dataset id; an unknown id is a clear error, not a guess."""
    try:
        return ADAPTERS[dataset_id]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise SourceError(f"no adapter for SODA dataset {dataset_id!r} (known: {known})") from None


@dataclass
class Mapped:
    """One batch mapped: rows for ``raw.crime_records`` and rejects with reasons.

    ``records`` has :data:`RECORD_COLUMNS` (``offense_codes`` as a PostgreSQL
    array literal) plus the source's fields under their SODA names, so the
    caller can build the payload; ``rejects`` has :data:`REJECT_COLUMNS`.
    """

    records: pd.DataFrame
    rejects: pd.DataFrame


# --- parsing helpers ------------------------------------------------------------


def _per_distinct(values: pd.Series, func, missing) -> np.ndarray:
    """``func`` applied to the distinct values only, spread back to every row.

    Sources repeat a few thousand distinct dates, times and codes across a
    million rows, and pandas string methods run per element, so this is where
    most of the mapping time would otherwise go. ``missing`` fills NaN rows.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.asarray(func(pd.Series(np.asarray(uniques, dtype=object), dtype=object)))
    out = np.append(mapped, np.array([missing], dtype=mapped.dtype if len(mapped) else object))
    return out[codes]  # code -1 (missing) picks the appended value


# What a value is trimmed of (the bulk CSV path trims keys the same way in SQL).
WHITESPACE = " \t\r\n"


def _clean(uniques: pd.Series) -> pd.Series:
    """Stripped strings, NaN for blanks (and for anything that is not a string)."""
    stripped = uniques.str.strip(WHITESPACE)
    return stripped.where(stripped != "", np.nan)


def _strings(frame: pd.DataFrame, column: str, repeats: bool = True) -> pd.Series:
    """The column as stripped strings, NaN where missing or blank. A column of keys
    (``repeats=False``: about one value per row) is cleaned row by row, as finding its
    distinct values would cost more than it saves."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=object)
    if not repeats:
        values = pd.Series(frame[column].to_numpy(dtype=object), index=frame.index, dtype=object)
        return _clean(values).astype(object)
    return pd.Series(_per_distinct(frame[column], _clean, np.nan), index=frame.index, dtype=object)


# Portal CSV exports: "03/01/2020 12:00:00 AM" (untouched) and "11/6/2022 0:00"
# (re-saved by a spreadsheet). SODA JSON: floating timestamps "2020-01-31T00:00:00.000".
_CSV_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y")


def _parse_distinct_timestamps(text: pd.Series) -> np.ndarray:
    text = text.astype(str).str.strip()
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    for fmt in _CSV_FORMATS:
        todo = parsed.isna()
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:  # an offset would mean instants, not LA time
        parsed = parsed.dt.tz_convert("America/Los_Angeles").dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[us]")


def _timestamps(frame: pd.DataFrame, column: str) -> pd.Series:
    """``parse_timestamps`` of a column of the frame (NaT when the frame has none)."""
    if column not in frame:
        return pd.Series(np.datetime64("NaT", "us"), index=frame.index, dtype="datetime64[us]")
    return parse_timestamps(frame[column])


class _CleanText:
    """A column's stripped strings (NaN where missing or blank) made only for the rows
    asked for (a boolean mask): the mapping shows them in rejected rows' details alone."""

    def __init__(self, frame: pd.DataFrame, column: str) -> None:
        self.frame, self.column = frame, column

    def __getitem__(self, rows: np.ndarray) -> pd.Series:
        return _strings(self.frame[rows], self.column)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse source dates (SODA floating timestamps or either portal CSV format) to naive
    LA wall-clock times; NaT where missing or unparseable."""
    parsed = _per_distinct(
        values,
        lambda uniques: _parse_distinct_timestamps(_clean(uniques)),  # each stripped once
        np.datetime64("NaT", "us"),
    )
    return pd.Series(parsed, index=values.index, dtype="datetime64[us]")


def _distinct_times(text: pd.Series) -> np.ndarray:
    number = pd.to_numeric(text.astype(str).str.strip(), errors="coerce")
    hours, minutes = number // 100, number % 100
    valid = number.notna() & (number >= 0) & (hours < 24) & (minutes < 60) & (number % 1 == 0)
    return np.where(valid, (hours * 60 + minutes).fillna(-1), -1).astype("int64")


def parse_time_of_day(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``time_occ`` HHMM, padded or not (``100`` = 01:00), to minutes after midnight.

    Returns ``(minutes, bad)``: a missing time counts as midnight; a value that is
    not a time of day (``2460``, ``ab``) is flagged bad.
    """
    total = pd.Series(_per_distinct(values, _distinct_times, 0), index=values.index)
    return total.clip(lower=0), total < 0


def occurrence_times(
    dates: pd.Series, time_text: pd.Series, minutes: pd.Series, unknown: frozenset[int]
) -> pd.Series:
    """When each record's offense occurred (naive LA wall clock).

    Legacy dates are always midnight, the time of day in ``time_occ``; some
    ``k7nn-b2ep`` dates carry the time themselves and others are midnight. A
    date that carries a time keeps it; otherwise ``time_occ`` gives it, unless
    it is one of the dataset's ``unknown`` placeholders (NIBRS ``0000``/``1200``)
    or missing: then the date alone, at midnight. The week is the date's either way.
    """
    day = dates.dt.normalize()
    known = time_text.notna() & ~minutes.isin(list(unknown))
    from_time_occ = day + pd.to_timedelta(minutes.where(known, 0), unit="min")
    return dates.where(dates != day, from_time_occ)


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    if frame[column].dtype == np.float64:  # read as numbers already
        return pd.Series(frame[column].to_numpy(), index=frame.index)
    values = _per_distinct(
        frame[column], lambda u: pd.to_numeric(_clean(u), errors="coerce"), np.nan
    )
    return pd.Series(values.astype(float), index=frame.index)


def _coordinates(frame: pd.DataFrame, adapter: DatasetAdapter) -> tuple[pd.Series, pd.Series]:
    lat = pd.Series(np.nan, index=frame.index)
    lon = pd.Series(np.nan, index=frame.index)
    for lat_field, lon_field in adapter.coordinate_fields:
        take = lat.isna() & lon.isna()
        lat = lat.where(~take, _numbers(frame, lat_field))
        lon = lon.where(~take, _numbers(frame, lon_field))
    return lat, lon


@dataclass(frozen=True)
class Offenses:
    """Per record: its distinct codes in field order as a text[] literal, the code that
    must be known (the first given), and whether any code is violent."""

    literal: pd.Series
    first: pd.Series
    known: pd.Series
    violent: pd.Series


def _code(value) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    # A spreadsheet may have turned codes into floats ("110.0"); otherwise as written.
    return value[:-2] if value.endswith(".0") else (value or None)


def _offenses(frame: pd.DataFrame, adapter: DatasetAdapter) -> Offenses:
    """Codes from all code fields, worked out once per distinct combination of codes."""
    present = [f for f in adapter.code_fields if f in frame]
    if not present:
        none = pd.Series(np.nan, index=frame.index, dtype=object)
        no = pd.Series(False, index=frame.index)
        return Offenses(pd.Series("{}", index=frame.index), none, no, no)
    factorized = [pd.factorize(frame[f], use_na_sentinel=True) for f in present]
    # One integer per combination (mixed radix over each field's distinct codes, 0 = none).
    key = np.zeros(len(frame), dtype=np.int64)
    radix = 1
    for codes, uniques in factorized:
        key += (codes.astype(np.int64) + 1) * radix
        radix *= len(uniques) + 1
        if radix > 2**62:
            raise ValueError("too many distinct offense codes to combine")
    inverse, combos = pd.factorize(key)
    pattern = re.compile(adapter.code_pattern)
    literals, firsts, known, violent = [], [], [], []
    for combo in combos:
        codes = []
        for _, uniques in factorized:
            digit = int(combo % (len(uniques) + 1))
            combo //= len(uniques) + 1
            codes.append(_code(uniques[digit - 1]) if digit else None)
        distinct = list(dict.fromkeys(c for c in codes if c))
        literals.append("{" + ",".join(distinct) + "}")
        firsts.append(distinct[0] if distinct else np.nan)
        known.append(bool(distinct) and pattern.match(distinct[0]) is not None)
        violent.append(any(c in adapter.violent_codes for c in distinct))
    return Offenses(
        literal=pd.Series(np.array(literals, dtype=object)[inverse], index=frame.index),
        first=pd.Series(np.array(firsts, dtype=object)[inverse], index=frame.index),
        known=pd.Series(np.array(known, dtype=bool)[inverse], index=frame.index),
        violent=pd.Series(np.array(violent, dtype=bool)[inverse], index=frame.index),
    )


# --- mapping --------------------------------------------------------------------


def map_frame(frame: pd.DataFrame, adapter: DatasetAdapter) -> tuple[pd.DataFrame, pd.Series]:
    """Map source fields to crime-record columns; returns ``(records, reason)``.

    ``records`` is indexed like ``frame`` and keeps the source fields; ``reason``
    is "" for a usable record, else the first reason it cannot be used (checked
    in order: key, dates, code, location), with details in ``records['detail']``.
    """
    out = frame.copy(deep=False)  # copy-on-write: the columns added here stay out of frame
    key = _strings(frame, adapter.key_field, repeats=False)
    incident = (
        key if adapter.incident_field == adapter.key_field
        else _strings(frame, adapter.incident_field, repeats=False)
    )  # fmt: skip
    report_text = _CleanText(frame, adapter.report_field)
    occurred_text = _CleanText(frame, adapter.occurred_field)
    time_text = _strings(frame, adapter.time_field)
    reported = _timestamps(frame, adapter.report_field)
    occurred_date = _timestamps(frame, adapter.occurred_field)
    minutes, bad_time = parse_time_of_day(time_text)
    occurred = occurrence_times(occurred_date, time_text, minutes, adapter.unknown_times)
    offenses = _offenses(frame, adapter)
    lat, lon = _coordinates(frame, adapter)
    cell, where = cell_of(lat.to_numpy(), lon.to_numpy())

    reason = pd.Series("", index=frame.index, dtype=object)
    detail = pd.Series(None, index=frame.index, dtype=object)
    usable = np.ones(len(frame), dtype=bool)  # no reason yet

    def flag(mask: pd.Series | np.ndarray, why: str, explain) -> None:
        """Give rows not yet rejected this reason; ``explain(rows)`` words the detail."""
        hit = np.asarray(mask, dtype=bool) & usable
        if hit.any():
            reason[hit] = why
            detail[hit] = explain(hit)
            usable[hit] = False

    def shown(name: str, values: pd.Series | _CleanText):
        return lambda hit: f"{name}=" + values[hit].fillna("<missing>").astype(str)

    flag(key.isna(), R.MISSING_KEY, lambda hit: f"no {adapter.key_field}")
    flag(incident.isna(), R.MISSING_KEY, lambda hit: f"no {adapter.incident_field}")
    flag(reported.isna(), R.BAD_DATE, shown(adapter.report_field, report_text))
    flag(occurred_date.isna(), R.BAD_DATE, shown(adapter.occurred_field, occurred_text))
    flag(bad_time, R.BAD_DATE, shown(adapter.time_field, time_text))
    flag(occurred_date < EARLIEST_OCCURRENCE, IMPLAUSIBLE_DATE,
         lambda hit: f"{adapter.occurred_field}=" + occurred_text[hit].astype(str)
         + f" is before {EARLIEST_OCCURRENCE.date()}")  # fmt: skip
    # A report from the future is a typo or a test record (the day after today in LA is
    # allowed for clocks); one before the earliest occurrence cannot be true either.
    not_yet = pd.Timestamp.now(tz="America/Los_Angeles").tz_localize(None) + pd.Timedelta(days=1)
    flag(reported > not_yet, IMPLAUSIBLE_DATE,
         lambda hit: f"{adapter.report_field}=" + report_text[hit].astype(str)
         + " is in the future")  # fmt: skip
    flag(reported < EARLIEST_OCCURRENCE, IMPLAUSIBLE_DATE,
         lambda hit: f"{adapter.report_field}=" + report_text[hit].astype(str)
         + f" is before {EARLIEST_OCCURRENCE.date()}")  # fmt: skip
    flag(occurred_date.dt.normalize() > reported.dt.normalize(), IMPLAUSIBLE_DATE,
         lambda hit: f"{adapter.occurred_field}=" + occurred_text[hit].astype(str)
         + f" is after {adapter.report_field}=" + report_text[hit].astype(str))  # fmt: skip
    flag(offenses.first.isna(), R.MISSING_CODE, lambda hit: f"no {'/'.join(adapter.code_fields)}")
    flag(~offenses.known, R.UNKNOWN_CODE, shown(adapter.code_fields[0], offenses.first))

    def coords(hit):
        # (pandas 3 keeps NaN missing through astype(str); format keeps it visible)
        return "lat,lon=" + lat[hit].map("{}".format) + "," + lon[hit].map("{}".format)

    flag(where == R.MISSING_LOCATION, R.MISSING_LOCATION, coords)
    flag(where == R.OUTSIDE_GRID, R.OUTSIDE_GRID, coords)

    out["source"] = adapter.dataset_id
    out["record_id"] = key
    out["incident_id"] = incident
    out["series"] = adapter.series
    out["occurred_at"] = occurred
    out["reported_at"] = reported
    out["date_occ_ts"] = occurred_date
    # Kept as datetime64 (a Monday at midnight): it goes to a DATE column by COPY.
    out["week_start"] = occurred.dt.normalize() - pd.to_timedelta(occurred.dt.day_of_week, unit="D")
    out["lat"] = lat
    out["lon"] = lon
    out["cell_id"] = cell
    out["offense_codes"] = offenses.literal
    out["is_violent"] = offenses.violent
    out["detail"] = detail
    return out, reason


def split_duplicates(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the last record of each natural key; earlier copies come back separately."""
    dup = records.duplicated("record_id", keep="last")
    return records[~dup], records[dup]


def reject_frame(
    source: str, keys: pd.Series, reasons: pd.Series, details: pd.Series, payloads: list
) -> pd.DataFrame:
    """Rejects in the shape ``crimejob.ingest.rejects.store_rejects`` takes; a record without a
    natural key is keyed by the md5 of its payload."""
    keys = keys.reset_index(drop=True)
    record_key = [
        k if isinstance(k, str) and k else R.payload_key(p)
        for k, p in zip(keys, payloads, strict=True)
    ]
    return pd.DataFrame(
        {
            "source": source,
            "record_key": record_key,
            "reason": reasons.to_numpy(),
            "detail": details.to_numpy(),
            "payload": payloads,
        },
        columns=REJECT_COLUMNS,
    )


def map_api_records(dataset_id: str, records: list[dict]) -> Mapped:
    """Map SODA JSON records (dicts of strings, empty fields left out) of one dataset.

    ``records`` keeps a ``payload`` column: each record as the source sent it (JSON text).
    """
    adapter = adapter_for(dataset_id)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame.index = pd.RangeIndex(len(records))
    mapped, reason = map_frame(frame, adapter)
    mapped["payload"] = [json.dumps(r, sort_keys=True) for r in records]
    bad = reason != ""
    good, dups = split_duplicates(mapped[~bad])
    rejects = pd.concat(
        [
            reject_frame(
                dataset_id,
                mapped.loc[bad, "record_id"],
                reason[bad],
                mapped.loc[bad, "detail"],
                [records[i] for i in np.flatnonzero(bad.to_numpy())],
            ),
            reject_frame(
                dataset_id,
                dups["record_id"],
                pd.Series(DUPLICATE_KEY, index=dups.index),
                pd.Series("a later record has the same key", index=dups.index),
                [records[i] for i in dups.index],
            ),
        ],
        ignore_index=True,
    )
    return Mapped(records=good.reset_index(drop=True), rejects=rejects)


# --- the portal CSV export ----------------------------------------------------------


def field_name(display_name: str) -> str:
    """Portal display name to SODA field name: ``Crm Cd 1`` -> ``crm_cd_1``."""
    return display_name.strip().lower().replace(" ", "_").replace("-", "_")


CSV_REQUIRED = ("dr_no", "date_rptd", "date_occ", "time_occ", "crm_cd", "lat", "lon")


def open_text(path: Path):
    """A CSV export as text, gzipped or not (a UTF-8 byte-order mark is skipped)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8-sig", newline="")


def check_file(path: Path) -> None:
    """A path that is not a readable file is a one-line SourceError."""
    if not path.exists():
        raise SourceError(f"no such file: {path}")
    if not path.is_file():
        raise SourceError(f"{path} is not a file")


def unreadable(path: Path, exc: BaseException) -> SourceError:
    """The one line for a file that is not UTF-8 CSV text (binary, UTF-16, Latin-1, a NUL
    byte, a field over the size limit, a cut gzip): the first line of the reason, and
    where PostgreSQL says it found it."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    if isinstance(exc, UnicodeDecodeError):
        reason = f"not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8 CSV"
    where = next((line for line in lines[1:] if line.startswith("CONTEXT:")), "")
    return SourceError(
        f"{path.name} is not a readable CSV file: {reason}"
        + (f" ({where.removeprefix('CONTEXT:').strip()})" if where else "")
    )


def portal_header(path: Path) -> list[str]:
    """The export's header row; a file without the legacy columns is a SourceError naming them."""
    check_file(path)
    try:
        with open_text(path) as handle:
            header = next(csv.reader(handle), [])
    except (UnicodeDecodeError, csv.Error, EOFError, OSError) as exc:
        raise unreadable(path, exc) from None
    names = [field_name(c) for c in header]
    missing = [f for f in CSV_REQUIRED if f not in names]
    if missing:
        raise SourceError(
            f"{path.name} is not an LAPD portal export: no column(s) "
            f"{', '.join(missing)} (header: {_shown(header)})"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SourceError(
            f"{path.name}: column(s) {', '.join(map(repr, repeated))} appear more than once "
            "in the header; which one to load is ambiguous"
        )
    return header


def _shown(header: list[str], limit: int = 300) -> str:
    """The header for a one-line message: no line breaks, at most ``limit`` characters."""
    text = ", ".join(header).replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def mapped_fields(adapter: DatasetAdapter) -> set[str]:
    """The source fields the mapping reads (a bulk reader need not convert the others)."""
    fields = {adapter.key_field, adapter.incident_field, adapter.report_field,
              adapter.occurred_field, adapter.time_field, *adapter.code_fields}  # fmt: skip
    for pair in adapter.coordinate_fields:
        fields.update(pair)
    return fields


def read_portal_csv(
    path: Path,
    chunksize: int = 200_000,
    fields: set[str] | None = None,
    text: Sequence[bytes | memoryview] | None = None,
    numbers: frozenset[str] = frozenset(),
) -> Iterator[pd.DataFrame]:
    """Read a portal CSV export in chunks, columns renamed to SODA field names, all values
    strings (NaN for an empty field); only ``fields`` when given. The original header is
    in ``frame.attrs['header']``. With ``text`` (UTF-8 bytes in one or more buffers, read
    one after the other: the export's header line, then any of its records), that is read
    instead of the file's records.

    Fields in ``numbers`` come as float64 (the values ``pd.to_numeric`` makes of their
    stripped text), without a string per row; a value that is not a number raises
    ``ValueError``: read the file again without ``numbers``."""
    header = portal_header(path)
    names = [field_name(c) for c in header]
    wanted = [i for i, n in enumerate(names) if fields is None or n in fields]
    opened = open_text(path) if text is None else io.BufferedReader(_Buffers(text))
    # Columns named by position for the reader: pandas 3 reads a column whose dtype is
    # given by its position as its str dtype, by its name as object (plain Python
    # strings, which the mapping handles at about two thirds of the cost).
    slots = [f"_{i}" for i in range(len(header))]
    with opened as handle:
        reader = pd.read_csv(
            handle,
            header=0,
            names=slots,
            dtype={slots[i]: np.float64 if names[i] in numbers else object for i in wanted},
            keep_default_na=False,
            na_values=[""],
            chunksize=chunksize,
            usecols=[slots[i] for i in wanted],
        )
        for chunk in _chunks(reader, path):
            chunk.columns = [names[i] for i in wanted]
            chunk.attrs["header"] = header
            yield chunk


class _Buffers(io.RawIOBase):
    """Buffers read one after the other as one stream, without joining them first."""

    def __init__(self, buffers: Sequence[bytes | memoryview]) -> None:
        self.pending = [memoryview(b).cast("B") for b in buffers]

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while self.pending and not len(self.pending[0]):
            self.pending.pop(0)
        if not self.pending:
            return 0
        size = min(len(target), len(self.pending[0]))
        target[:size] = self.pending[0][:size]
        self.pending[0] = self.pending[0][size:]
        return size


def _chunks(reader, path: Path) -> Iterator[pd.DataFrame]:
    """The reader's chunks; a file pandas cannot parse is a SourceError naming the file."""
    try:
        yield from reader
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise unreadable(path, exc) from exc


def read_crime_codes(path: Path) -> pd.DataFrame:
    """A ``crm_cd`` description table (``Crm Cd,Crm Cd Desc``) as ``crm_cd, crm_cd_desc``.

    Rows that repeat the header (a concatenated export) are dropped; codes are
    stripped strings, and the first description of a repeated code wins.
    """
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.columns = [field_name(c) for c in frame.columns]
    if list(frame.columns[:2]) != ["crm_cd", "crm_cd_desc"]:
        raise SourceError(f"{path.name}: expected columns 'Crm Cd,Crm Cd Desc'")
    frame = frame.iloc[:, :2].apply(lambda s: s.str.strip())
    frame = frame[frame["crm_cd"].str.lower() != "crm cd"]
    return frame.drop_duplicates("crm_cd").reset_index(drop=True)
