"""Load NCEI daily summaries into raw.weather_daily, and holidays into raw.holidays.

Records arrive in the Access Data Service's shape (string values, a missing
value is a missing key), from the API or from a CSV download read into the same
shape, and take one path: validated with pandas, unusable ones stored in
ops.rejects with the reason, usable ones upserted on (station_id, day) through
COPY. Nothing is written until every record of the request is in hand, and
everything is written in one transaction, so a failed fetch leaves no trace
but its ops.runs row.

Rules worth knowing:
- values are deg F and inches (``units=standard``); implausible values
  (TMAX/TMIN outside -80..140 F, PRCP outside 0..50 in, TMIN above TMAX) are
  rejected as ``bad_value``, which also catches a CSV downloaded in raw tenths;
  a DATE before 1900 or after tomorrow is a ``bad_date``;
- a missing value never erases a stored one (a CSV without a TMAX column must
  not wipe temperatures); a row counts as updated only if a value changed, so
  re-running an ingest reports everything unchanged and writes nothing;
- a station needs coordinates for interpolation: from the record
  (``includeStationLocation``), from ``CRIMEJOB_STATIONS`` or from
  raw.weather_stations; a record of a station with none is ``unknown_station``.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection, Engine

from crimejob import runs
from crimejob.config import Settings, get_settings
from crimejob.dbcopy import copy_frame
from crimejob.errors import CrimejobError, check_range
from crimejob.grid import staleweeks
from crimejob.grid.calendar import load_holidays
from crimejob.grid.weeks import week_start
from crimejob.ingest import rejects as rj
from crimejob.ingest.sources import ncei
from crimejob.reports import IngestReport

log = logging.getLogger(__name__)

API_SOURCE = "ncei-api"
CSV_SOURCE = "ncei-csv"

MISSING_VALUES = "missing_values"
UNKNOWN_STATION = "unknown_station"
UNKNOWN_FIELD = "unknown_field"

VALUE_COLUMNS = {"TMAX": "tmax_f", "TMIN": "tmin_f", "PRCP": "prcp_in"}
PLAUSIBLE = {"TMAX": (-80.0, 140.0), "TMIN": (-80.0, 140.0), "PRCP": (0.0, 50.0)}
# Daily summaries before this are not what the stations measure today (and a year
# like 0202 is a typo); after tomorrow they have not happened.
EARLIEST_DAY = pd.Timestamp("1900-01-01")


# --- ops.runs -------------------------------------------------------------------


# --- fetch --------------------------------------------------------------------------


def fetch_weather_api(start: date, end: date, settings: Settings | None = None) -> list[dict]:
    """Every daily summary of the configured stations from ``start`` to ``end`` (no DB writes).

    Raises :class:`~crimejob.errors.SourceError` if the service fails after its
    retries or sends something we cannot trust.
    """
    settings = settings or get_settings()
    client = ncei.NceiClient(settings)
    return client.fetch([s.station_id for s in settings.stations], start, end)


# --- validation ---------------------------------------------------------------------


def _text(series: pd.Series) -> pd.Series:
    """Strings stripped of padding; missing or blank values become NA."""
    text = series.astype("string").str.strip()
    return text.mask(text == "")


def parse_records(records: list[dict], source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split records into ``(rows, rejects)``.

    ``rows`` has station_id, day, tmax_f, tmin_f, prcp_in, lat, lon, elevation,
    name, payload (JSON text as sent). ``rejects`` has the columns
    :func:`crimejob.ingest.rejects.store_rejects` takes; each record is rejected for
    its first problem only.
    """
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    for column in (*ncei.KEY_FIELDS, *ncei.DATA_TYPES, *ncei.LOCATION_FIELDS):
        if column not in frame:
            frame[column] = pd.NA
    frame["payload"] = [json.dumps(r) for r in records]
    station = _text(frame["STATION"])
    date_text = _text(frame["DATE"])
    # A key for the reject row: station:date when the record has both, else md5 of it.
    key = (station.fillna("") + ":" + date_text.fillna("")).astype(object)
    no_key = station.isna() | date_text.isna()
    key[no_key] = [rj.payload_key(records[i]) for i in np.flatnonzero(no_key.to_numpy())]

    reason = pd.Series(pd.NA, index=frame.index, dtype="string")
    detail = pd.Series(pd.NA, index=frame.index, dtype="string")

    def flag(mask: pd.Series, why: str, text: pd.Series | str) -> None:
        hit = mask & reason.isna()
        reason[hit] = why
        detail[hit] = text[hit] if isinstance(text, pd.Series) else text

    unknown_fields = [
        c
        for c in frame.columns
        if c not in ncei.KNOWN_FIELDS and c != "payload" and not str(c).endswith("_ATTRIBUTES")
    ]
    for column in unknown_fields:
        flag(
            frame[column].notna(), UNKNOWN_FIELD, f"field {column!r} is not a daily-summaries field"
        )
    flag(station.isna(), rj.MISSING_KEY, "no STATION")
    day = pd.to_datetime(date_text, format="%Y-%m-%d", errors="coerce")
    flag(day.isna(), rj.BAD_DATE, "DATE " + date_text.fillna("<missing>").map(repr))
    tomorrow = pd.Timestamp.now(tz="America/Los_Angeles").tz_localize(None).normalize()
    tomorrow += pd.Timedelta(days=1)
    flag(
        (day < EARLIEST_DAY) | (day > tomorrow),
        rj.BAD_DATE,
        "DATE " + date_text.fillna("") + f" is before {EARLIEST_DAY.date()} or in the future",
    )

    values = {}
    for field, column in VALUE_COLUMNS.items():
        text = _text(frame[field])
        number = pd.to_numeric(text, errors="coerce")
        flag(
            text.notna() & number.isna(),
            rj.BAD_VALUE,
            f"{field} " + text.map(repr) + " is not a number",
        )
        low, high = PLAUSIBLE[field]
        flag(
            number.notna() & ~number.between(low, high),
            rj.BAD_VALUE,
            f"{field} " + text.fillna("") + f" outside {low:g}..{high:g}",
        )
        values[column] = number
    flag(
        values["tmin_f"] > values["tmax_f"],
        rj.BAD_VALUE,
        "TMIN "
        + _text(frame["TMIN"]).fillna("")
        + " is above TMAX "
        + _text(frame["TMAX"]).fillna(""),
    )
    no_values = pd.concat([v.isna() for v in values.values()], axis=1).all(axis=1)
    flag(no_values, MISSING_VALUES, "none of TMAX, TMIN, PRCP")

    rows = pd.DataFrame(
        {
            "station_id": station,
            "day": day.dt.date,
            **values,
            "lat": pd.to_numeric(_text(frame["LATITUDE"]), errors="coerce"),
            "lon": pd.to_numeric(_text(frame["LONGITUDE"]), errors="coerce"),
            "elevation": pd.to_numeric(_text(frame["ELEVATION"]), errors="coerce"),
            "name": _text(frame["NAME"]),
            "payload": frame["payload"],
        }
    )
    bad = reason.notna()
    rejected = pd.DataFrame(
        {
            "source": source,
            "record_key": key[bad],
            "reason": reason[bad].astype(object),
            "detail": detail[bad].astype(object),
            "payload": frame.loc[bad, "payload"],
        }
    )
    return rows[~bad].reset_index(drop=True), rejected.reset_index(drop=True)


# --- stations -----------------------------------------------------------------------


def _upsert_stations(conn: Connection, rows: pd.DataFrame, settings: Settings) -> set[str]:
    """Keep raw.weather_stations current; returns every station id that has coordinates.

    NCEI's own location (sent with the records) wins over configuration;
    configured stations fill in stations never seen in a response.
    """
    configured = pd.DataFrame(
        [(s.station_id, s.name, s.lat, s.lon) for s in settings.stations],
        columns=["station_id", "name", "lat", "lon"],
    )
    configured["elevation"] = np.nan
    located = rows.dropna(subset=["lat", "lon"]).drop_duplicates("station_id", keep="last")
    located = located[["station_id", "name", "lat", "lon", "elevation"]]
    columns = ["station_id", "name", "lat", "lon", "elevation"]
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS _stations_in (station_id text, name text, "
        "lat float8, lon float8, elevation float8, from_source boolean) ON COMMIT DROP"
    )
    conn.exec_driver_sql("TRUNCATE _stations_in")
    copy_frame(
        conn, configured.assign(from_source=False), "_stations_in", [*columns, "from_source"]
    )
    copy_frame(conn, located.assign(from_source=True), "_stations_in", [*columns, "from_source"])
    conn.exec_driver_sql(
        "INSERT INTO raw.weather_stations AS s (station_id, name, lat, lon, elevation) "
        "SELECT station_id, name, lat, lon, elevation FROM _stations_in WHERE NOT from_source "
        "ON CONFLICT (station_id) DO NOTHING"
    )
    conn.exec_driver_sql(
        "INSERT INTO raw.weather_stations AS s (station_id, name, lat, lon, elevation) "
        "SELECT station_id, name, lat, lon, elevation FROM _stations_in WHERE from_source "
        "ON CONFLICT (station_id) DO UPDATE SET name = COALESCE(EXCLUDED.name, s.name), "
        "lat = EXCLUDED.lat, lon = EXCLUDED.lon, "
        "elevation = COALESCE(EXCLUDED.elevation, s.elevation), updated_at = now() "
        "WHERE (s.name, s.lat, s.lon, s.elevation) IS DISTINCT FROM "
        "(COALESCE(EXCLUDED.name, s.name), EXCLUDED.lat, EXCLUDED.lon, "
        "COALESCE(EXCLUDED.elevation, s.elevation))"
    )
    return {r[0] for r in conn.exec_driver_sql("SELECT station_id FROM raw.weather_stations")}


# --- load ---------------------------------------------------------------------------

_UPSERT_DAILY = """
WITH written AS (
    INSERT INTO raw.weather_daily AS w
           (station_id, day, tmax_f, tmin_f, prcp_in, source, payload)
    SELECT station_id, day, tmax_f, tmin_f, prcp_in, source, payload FROM _weather_in
    ON CONFLICT (station_id, day) DO UPDATE
       SET tmax_f = COALESCE(EXCLUDED.tmax_f, w.tmax_f),
           tmin_f = COALESCE(EXCLUDED.tmin_f, w.tmin_f),
           prcp_in = COALESCE(EXCLUDED.prcp_in, w.prcp_in),
           source = EXCLUDED.source,
           payload = EXCLUDED.payload,
           updated_at = now()
     WHERE (w.tmax_f, w.tmin_f, w.prcp_in) IS DISTINCT FROM
           (COALESCE(EXCLUDED.tmax_f, w.tmax_f), COALESCE(EXCLUDED.tmin_f, w.tmin_f),
            COALESCE(EXCLUDED.prcp_in, w.prcp_in))
    RETURNING (xmax = 0) AS inserted, day
)
SELECT inserted, day FROM written
"""


def load_weather_records(
    engine: Engine, records: list[dict], source: str = API_SOURCE
) -> IngestReport:
    """Upsert daily summaries (and the holidays of their years) in one transaction.

    Returns counts of new, changed, unchanged and rejected records and the
    weeks whose weather changed, which are the weeks to re-aggregate.
    """
    settings = get_settings()
    report = IngestReport(source=source, fetched=len(records))
    rows, rejected = parse_records(records, source)
    with engine.begin() as conn:
        located = _upsert_stations(conn, rows, settings)
        unknown = ~rows["station_id"].isin(located)
        if unknown.any():
            extra = rows[unknown]
            rejected = pd.concat(
                [
                    rejected,
                    pd.DataFrame(
                        {
                            "source": source,
                            "record_key": extra["station_id"] + ":" + extra["day"].astype(str),
                            "reason": UNKNOWN_STATION,
                            "detail": "station " + extra["station_id"] + " has no coordinates; "
                            "configure it in CRIMEJOB_STATIONS as ID:lat:lon",
                            "payload": extra["payload"],
                        }
                    ),
                ],
                ignore_index=True,
            )
            rows = rows[~unknown]
        rows = rows.drop_duplicates(["station_id", "day"], keep="last").assign(source=source)
        conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS _weather_in (station_id text, day date, "
            "tmax_f float8, tmin_f float8, prcp_in float8, source text, payload jsonb) "
            "ON COMMIT DROP"
        )
        conn.exec_driver_sql("TRUNCATE _weather_in")
        copy_frame(
            conn,
            rows,
            "_weather_in",
            ["station_id", "day", "tmax_f", "tmin_f", "prcp_in", "source", "payload"],
        )
        written = conn.exec_driver_sql(_UPSERT_DAILY).fetchall()
        rj.store_rejects(conn, rejected)
        staleweeks.mark(conn, {week_start(day) for _, day in written})
        years = {d.year for d in rows["day"]}
        load_holidays(conn, years)
    report.loaded = sum(1 for inserted, _ in written if inserted)
    report.updated = len(written) - report.loaded
    report.unchanged = len(rows) - len(written)
    report.rejected.update(rejected["reason"].value_counts().to_dict())
    report.weeks_touched = {week_start(day) for _, day in written}
    return report


# --- commands -------------------------------------------------------------------------


def ingest_weather_api(engine: Engine, start: date, end: date) -> IngestReport:
    """Fetch the configured stations' daily summaries for ``start..end`` and load them."""
    check_range(start, end, "ingest weather")
    with runs.track_run(
        engine, "ingest_weather", {"source": API_SOURCE, "start": start, "end": end}
    ) as counts:
        records = fetch_weather_api(start, end)
        report = load_weather_records(engine, records, API_SOURCE)
        counts.update(report.as_dict())
    return report


def ingest_weather_csv(engine: Engine, path: Path) -> IngestReport:
    """Import an NCEI daily-summaries CSV (standard units) through the same checks as the API."""
    path = Path(path)
    params = {"source": CSV_SOURCE, "path": str(path)}
    with runs.track_run(engine, "ingest_weather", params) as counts:
        if not path.is_file():
            raise CrimejobError(f"ingest weather: no such file {path}")
        records = ncei.read_daily_csv(path)
        report = load_weather_records(engine, records, CSV_SOURCE)
        counts.update(report.as_dict())
    return report
