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
with its reason (``crimejob.rejects``) and its raw payload.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crimejob import rejects as R
from crimejob.errors import SourceError
from crimejob.grid import cell_of

LEGACY = "2nrs-mtv8"
NIBRS_2024 = "y8y3-fqfu"
NIBRS_2026 = "k7nn-b2ep"

# FBI Part I violent crime as LAPD codes it (../shared/data/README.md).
LEGACY_VIOLENT_CODES = frozenset(
    "110 113 121 122 815 820 821 210 220 230 231 235 236 250 251 761 926".split()
)
# NIBRS: murder (09A), rape (11A), sodomy (11B), sexual assault with an object
# (11C), robbery (120), aggravated assault (13A).
NIBRS_VIOLENT_CODES = frozenset("09A 11A 11B 11C 120 13A".split())

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


def _strings(frame: pd.DataFrame, column: str) -> pd.Series:
    """The column as stripped strings, NaN where missing or blank."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=object)
    values = frame[column].astype(object)
    stripped = values.where(values.isna(), values.astype(str).str.strip())
    return stripped.where(stripped != "", np.nan)


# Portal CSV exports: "03/01/2020 12:00:00 AM" (untouched) and "11/6/2022 0:00"
# (re-saved by a spreadsheet). SODA JSON: floating timestamps "2020-01-31T00:00:00.000".
_CSV_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y")


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse source dates (SODA floating timestamps or either portal CSV format) to naive
    LA wall-clock times; NaT where unparseable. Unique values are parsed once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(uniques, dtype=object).astype(str).str.strip()
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    for fmt in _CSV_FORMATS:
        todo = parsed.isna()
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:  # an offset would mean instants, not LA time
        parsed = parsed.dt.tz_convert("America/Los_Angeles").dt.tz_localize(None)
    taken = parsed.to_numpy(dtype="datetime64[us]")[np.where(codes < 0, 0, codes)]
    result = pd.Series(taken, index=values.index, dtype="datetime64[us]")
    result[codes < 0] = pd.NaT
    return result


def parse_time_of_day(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``time_occ`` HHMM, padded or not (``100`` = 01:00), to minutes after midnight.

    Returns ``(minutes, bad)``: a missing time counts as midnight; a value that is
    not a time of day (``2460``, ``ab``) is flagged bad.
    """
    number = pd.to_numeric(values, errors="coerce")
    hours, minutes = number // 100, number % 100
    valid = number.notna() & (number >= 0) & (hours < 24) & (minutes < 60) & (number % 1 == 0)
    bad = values.notna() & ~valid
    total = (hours * 60 + minutes).where(valid, 0).astype("int64")
    return total, bad


def _coordinates(frame: pd.DataFrame, adapter: DatasetAdapter) -> tuple[pd.Series, pd.Series]:
    lat = pd.Series(np.nan, index=frame.index)
    lon = pd.Series(np.nan, index=frame.index)
    for lat_field, lon_field in adapter.coordinate_fields:
        take = lat.isna() & lon.isna()
        lat = lat.where(~take, pd.to_numeric(_strings(frame, lat_field), errors="coerce"))
        lon = lon.where(~take, pd.to_numeric(_strings(frame, lon_field), errors="coerce"))
    return lat.astype(float), lon.astype(float)


def _offense_codes(frame: pd.DataFrame, adapter: DatasetAdapter) -> tuple[pd.Series, ...]:
    """Distinct codes per record in field order, as columns (NaN where none)."""
    columns = [_strings(frame, field) for field in adapter.code_fields]
    # Codes may arrive as "110.0" from a spreadsheet; keep them as written otherwise.
    columns = [c.str.replace(r"\.0$", "", regex=True) for c in columns]
    kept = []
    for i, column in enumerate(columns):
        repeat = pd.Series(False, index=frame.index)
        for earlier in columns[:i]:
            repeat |= column == earlier
        kept.append(column.where(~repeat))
    return tuple(kept)


def _array_literal(columns: tuple[pd.Series, ...]) -> pd.Series:
    """PostgreSQL text[] literals, e.g. ``{624,998}``, from code columns (NaN skipped)."""
    joined = columns[0].fillna("")
    for column in columns[1:]:
        joined = joined + "," + column.fillna("")
    joined = joined.str.replace(r",{2,}", ",", regex=True).str.strip(",")
    return "{" + joined + "}"


# --- mapping --------------------------------------------------------------------


def map_frame(frame: pd.DataFrame, adapter: DatasetAdapter) -> tuple[pd.DataFrame, pd.Series]:
    """Map source fields to crime-record columns; returns ``(records, reason)``.

    ``records`` is indexed like ``frame`` and keeps the source fields; ``reason``
    is "" for a usable record, else the first reason it cannot be used (checked
    in order: key, dates, code, location), with details in ``records['detail']``.
    """
    out = frame.copy()
    key = _strings(frame, adapter.key_field)
    incident = _strings(frame, adapter.incident_field)
    reported = parse_timestamps(_strings(frame, adapter.report_field))
    occurred_date = parse_timestamps(_strings(frame, adapter.occurred_field))
    minutes, bad_time = parse_time_of_day(_strings(frame, adapter.time_field))
    has_time = _strings(frame, adapter.time_field).notna()
    # Legacy dates are midnight with the time in time_occ; k7nn-b2ep dates carry the
    # time themselves. Use time_occ when given, else the timestamp as sent.
    occurred = occurred_date.where(
        ~has_time, occurred_date.dt.normalize() + pd.to_timedelta(minutes, unit="min")
    )
    codes = _offense_codes(frame, adapter)
    any_code = pd.concat(codes, axis=1).notna().any(axis=1)
    known = codes[0].str.match(adapter.code_pattern).fillna(False).astype(bool)
    for column in codes[1:]:
        # Secondary legacy codes hold placeholders (998); only the primary must be known.
        known |= codes[0].isna() & column.str.match(adapter.code_pattern).fillna(False).astype(bool)
    violent = pd.Series(False, index=frame.index)
    for column in codes:
        violent |= column.isin(adapter.violent_codes)
    lat, lon = _coordinates(frame, adapter)
    cell, where = cell_of(lat.to_numpy(), lon.to_numpy())

    reason = pd.Series("", index=frame.index, dtype=object)
    detail = pd.Series(None, index=frame.index, dtype=object)

    def flag(mask: pd.Series, why: str, text: pd.Series | str) -> None:
        hit = mask & (reason == "")
        reason[hit] = why
        detail[hit] = text[hit] if isinstance(text, pd.Series) else text

    flag(key.isna(), R.MISSING_KEY, f"no {adapter.key_field}")
    flag(incident.isna(), R.MISSING_KEY, f"no {adapter.incident_field}")
    flag(
        reported.isna(),
        R.BAD_DATE,
        f"{adapter.report_field}=" + _strings(frame, adapter.report_field).fillna("<missing>"),
    )
    flag(
        occurred_date.isna(),
        R.BAD_DATE,
        f"{adapter.occurred_field}=" + _strings(frame, adapter.occurred_field).fillna("<missing>"),
    )
    flag(bad_time, R.BAD_DATE, f"{adapter.time_field}=" + _strings(frame, adapter.time_field))
    flag(~any_code, R.MISSING_CODE, f"no {'/'.join(adapter.code_fields)}")
    flag(~known, R.UNKNOWN_CODE, f"{adapter.code_fields[0]}=" + codes[0].fillna("<missing>"))
    where_series = pd.Series(where, index=frame.index)
    coords = "lat,lon=" + lat.astype(str) + "," + lon.astype(str)
    flag(where_series == R.MISSING_LOCATION, R.MISSING_LOCATION, coords)
    flag(where_series == R.OUTSIDE_GRID, R.OUTSIDE_GRID, coords)

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
    out["offense_codes"] = _array_literal(codes)
    out["is_violent"] = violent
    out["detail"] = detail
    return out, reason


def split_duplicates(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the last record of each natural key; earlier copies come back separately."""
    dup = records.duplicated("record_id", keep="last")
    return records[~dup], records[dup]


def reject_frame(
    source: str, keys: pd.Series, reasons: pd.Series, details: pd.Series, payloads: list
) -> pd.DataFrame:
    """Rejects in the shape ``crimejob.rejects.store_rejects`` takes; a record without a
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


def read_portal_csv(path: Path, chunksize: int = 200_000) -> Iterator[pd.DataFrame]:
    """Read a portal CSV export in chunks, columns renamed to SODA field names, all values
    strings (NaN for an empty field). The original header is in ``frame.attrs['header']``.

    A file without the legacy columns is rejected whole with a SourceError naming them.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = pd.read_csv(
            handle,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            chunksize=chunksize,
            skipinitialspace=False,
        )
        header: list[str] | None = None
        for chunk in _chunks(reader, path):
            if header is None:
                header = list(chunk.columns)
                names = [field_name(c) for c in header]
                missing = [f for f in CSV_REQUIRED if f not in names]
                if missing:
                    raise SourceError(
                        f"{path.name} is not an LAPD portal export: no column(s) "
                        f"{', '.join(missing)} (header: {', '.join(header)})"
                    )
            chunk.columns = names
            chunk.attrs["header"] = header
            yield chunk


def _chunks(reader, path: Path) -> Iterator[pd.DataFrame]:
    """The reader's chunks; a file pandas cannot parse is a SourceError naming the file."""
    try:
        yield from reader
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path.name} is not a readable CSV file: {exc}") from exc


def csv_reject_payloads(frame: pd.DataFrame, mask: pd.Series) -> list[dict]:
    """The rejected rows as they stood in the file: display-name header, empty fields kept."""
    header = frame.attrs.get("header") or list(frame.columns)
    raw = frame.loc[mask, [field_name(h) for h in header]].fillna("")
    raw.columns = header
    return raw.to_dict(orient="records")


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
