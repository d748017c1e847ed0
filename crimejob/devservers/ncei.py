"""A local NCEI Access Data Service (``/access/services/data/v1``) on 127.0.0.1.

It implements the query subset crimejob uses, the way the real service answers:
``dataset=daily-summaries`` (anything else is a 400), ``stations`` (comma
separated), ``startDate``/``endDate`` (inclusive, YYYY-MM-DD), ``dataTypes``,
``units=standard`` (deg F, inches; without it raw tenths, space-padded, as
GHCN-Daily stores them), ``format=json|csv``, ``includeStationName`` and
``includeStationLocation``. JSON records are flat objects of strings, in the
service's key order, and a value a station did not report is a missing key.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta

import numpy as np

from crimejob.config import DEFAULT_STATIONS, Station
from crimejob.devservers.http import FakeServer

PATH = "/access/services/data/v1"
DATA_TYPES = ("PRCP", "TMAX", "TMIN")  # the service lists data types alphabetically
ELEVATION = {"USW00023174": "29.6", "USW00093134": "70.1", "USW00023152": "222.7"}


def daily_values(station_id: str, day: date, seed: int = 0) -> dict[str, str]:
    """Deterministic, plausible LA values for one station and day, formatted as NCEI does.

    Temperatures are whole deg F, precipitation inches with two decimals; rain
    falls mostly in winter.
    """
    key = (seed, sum(map(ord, station_id)), day.toordinal())
    rng = np.random.default_rng(abs(hash(key)) % (2**32))
    season = np.cos(2 * np.pi * (day.timetuple().tm_yday - 200) / 365.25)
    tmax = int(round(72 + 10 * season + rng.normal(0, 4)))
    tmin = int(round(tmax - 14 - abs(rng.normal(0, 3))))
    wet = rng.random() < (0.25 if day.month in (12, 1, 2, 3) else 0.03)
    prcp = round(float(rng.gamma(0.8, 0.4)), 2) if wet else 0.0
    return {"PRCP": f"{prcp:.2f}", "TMAX": str(tmax), "TMIN": str(tmin)}


def make_daily_summaries(
    stations: Sequence[Station | str] = DEFAULT_STATIONS,
    start: date = date(2024, 1, 1),
    end: date = date(2024, 1, 7),
    *,
    seed: int = 0,
    missing: dict[tuple[str, date], Sequence[str]] | None = None,
    skip_days: dict[str, Sequence[date]] | None = None,
) -> list[dict]:
    """Daily summaries in the JSON API's exact format (``units=standard``), all fields.

    Every record carries the station's name and location, as with
    ``includeStationName=1&includeStationLocation=1``; the server strips what a
    query did not ask for. ``missing`` drops data types for a (station, day)
    (a missing value is a missing key); ``skip_days`` drops whole days.
    """
    missing = missing or {}
    skip_days = {k: set(v) for k, v in (skip_days or {}).items()}
    known = {s.station_id: s for s in DEFAULT_STATIONS}
    records = []
    for station in stations:
        if isinstance(station, str):
            station = known[station]
        for offset in range((end - start).days + 1):
            day = start + timedelta(days=offset)
            if day in skip_days.get(station.station_id, ()):
                continue
            values = daily_values(station.station_id, day, seed)
            for dtype in missing.get((station.station_id, day), ()):
                values.pop(dtype, None)
            records.append(
                {
                    "DATE": day.isoformat(),
                    "STATION": station.station_id,
                    **values,
                    "ELEVATION": ELEVATION.get(station.station_id, "50.0"),
                    "LATITUDE": f"{station.lat:g}",
                    "LONGITUDE": f"{station.lon:g}",
                    "NAME": station.name,
                }
            )
    return records


def _raw_tenths(dtype: str, value: str) -> str:
    """A standard-units value as GHCN stores it (tenths of deg C / mm), space-padded."""
    number = float(value)
    tenths = (number - 32) * 5 / 9 * 10 if dtype in ("TMAX", "TMIN") else number * 254
    return f"{round(tenths):>5d}"


class NceiApp:
    """The request handler logic: filter the records like the real service would."""

    def __init__(self, records: list[dict]):
        self.records = records

    def error(self, status: int, message: str) -> tuple[int, dict, bytes]:
        body = {"errorMessage": message, "errorCode": status, "errors": [{"message": message}]}
        return status, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def __call__(self, path: str, query: dict, headers: dict) -> tuple[int, dict, bytes]:
        if path.rstrip("/") != PATH:
            return self.error(404, f"no such service {path}")
        if query.get("dataset") != "daily-summaries":
            return self.error(400, f"dataset {query.get('dataset')!r} is not supported here")
        try:
            start = date.fromisoformat(query["startDate"])
            end = date.fromisoformat(query["endDate"])
        except (KeyError, ValueError):
            return self.error(400, "startDate and endDate (YYYY-MM-DD) are required")
        if end < start:
            return self.error(400, "endDate is before startDate")
        stations = set(filter(None, query.get("stations", "").split(",")))
        if not stations:
            return self.error(400, "stations is required for this dataset")
        dtypes = [d for d in query.get("dataTypes", ",".join(DATA_TYPES)).split(",") if d]
        standard = query.get("units") == "standard"
        with_name = query.get("includeStationName") in ("1", "true")
        with_location = query.get("includeStationLocation") in ("1", "true")
        out = []
        for record in self.records:
            if record.get("STATION") not in stations:
                continue
            try:
                day = date.fromisoformat(record["DATE"])
            except (KeyError, ValueError):
                day = start  # junk dates are served as they are
            if not start <= day <= end:
                continue
            row = {"DATE": record.get("DATE"), "STATION": record.get("STATION")}
            for key, value in record.items():
                if key in ("DATE", "STATION"):
                    continue
                if key in DATA_TYPES:
                    if key in dtypes:
                        row[key] = value if standard else _raw_tenths(key, value)
                elif key in ("LATITUDE", "LONGITUDE", "ELEVATION"):
                    if with_location:
                        row[key] = value
                elif key == "NAME":
                    if with_name:
                        row[key] = value
                else:  # a field the test planted (a renamed field, junk)
                    row[key] = value
            out.append(row)
        if query.get("format", "csv") == "json":
            return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()
        return 200, {"Content-Type": "text/csv"}, to_csv(out).encode()


def to_csv(records: list[dict], columns: Sequence[str] | None = None) -> str:
    """Records as the service's CSV: every header and value quoted, empty for missing."""
    if columns is None:
        columns = ["STATION", "DATE"]
        for record in records:
            columns += [k for k in record if k not in columns]
        order = ["STATION", "DATE", "LATITUDE", "LONGITUDE", "ELEVATION", "NAME"]
        columns = [c for c in order if c in columns] + [c for c in columns if c not in order]
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([record.get(c, "") for c in columns])
    return buffer.getvalue()


class FakeNcei(FakeServer):
    """A :class:`FakeServer` serving ``records``; ``base_url`` is what CRIMEJOB_NCEI_URL takes."""

    def __init__(self, records: list[dict]):
        self.ncei = NceiApp(records)
        super().__init__(self.ncei)

    @property
    def base_url(self) -> str:
        return self.url + PATH

    @property
    def records(self) -> list[dict]:
        return self.ncei.records

    def data_requests(self) -> list[dict]:
        """The query of every request that reached the data path, in order."""
        return [query for path, query, _ in self.requests if path.startswith(PATH)]


@contextmanager
def ncei_server(records: list[dict] | None = None, **generate) -> Iterator[FakeNcei]:
    """Run a fake NCEI service; without ``records``, ``make_daily_summaries(**generate)``."""
    if records is None:
        records = make_daily_summaries(**generate)
    with FakeNcei(records) as server:
        yield server
