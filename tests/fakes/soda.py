"""A fake SODA 2.0 server for the LAPD datasets, and synthetic records in their real formats.

The server speaks the query subset the job uses, over real HTTP on 127.0.0.1:
``$where`` (comparisons of a field with a quoted literal, joined by AND),
``$order`` (one field, ASC/DESC), ``$limit`` (default 1,000, at most 50,000),
``$offset``, and ``$select=count(*)`` answered ``[{"count": "N"}]``. Unknown
columns and other clauses get the API's 400 error object. Responses carry the
``X-SODA2-Fields`` header, as the real API does.

Records look like the real ones: every value a string, empty fields left out,
floating timestamps ``2024-01-31T00:00:00.000``, ``location`` padded with runs
of spaces, missing coordinates ``"0"``/``"0"``. Generators are vectorised
(numpy), so a test can serve a week and a benchmark can write a million-row
portal CSV export from the same code.

Reuse::

    records = make_legacy_records(500, date(2023, 1, 2), date(2023, 1, 8))
    with soda_server({"2nrs-mtv8": records}) as server:   # sets CRIMEJOB_SODA_URL
        ingest_crime_api(engine, date(2023, 1, 2), date(2023, 1, 8))
        server.add_faults("/resource/2nrs-mtv8.json", Fault(status=429))
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from tests.fakes.server import FakeServer

LEGACY_ID, NIBRS_2024_ID, NIBRS_2026_ID = "2nrs-mtv8", "y8y3-fqfu", "k7nn-b2ep"

# Portal CSV display names, in the export's column order, for each SODA field.
PORTAL_HEADER = {
    "dr_no": "DR_NO", "date_rptd": "Date Rptd", "date_occ": "DATE OCC", "time_occ": "TIME OCC",
    "area": "AREA", "area_name": "AREA NAME", "rpt_dist_no": "Rpt Dist No",
    "part_1_2": "Part 1-2", "crm_cd": "Crm Cd", "crm_cd_desc": "Crm Cd Desc",
    "mocodes": "Mocodes", "vict_age": "Vict Age", "vict_sex": "Vict Sex",
    "vict_descent": "Vict Descent", "premis_cd": "Premis Cd", "premis_desc": "Premis Desc",
    "weapon_used_cd": "Weapon Used Cd", "weapon_desc": "Weapon Desc", "status": "Status",
    "status_desc": "Status Desc", "crm_cd_1": "Crm Cd 1", "crm_cd_2": "Crm Cd 2",
    "crm_cd_3": "Crm Cd 3", "crm_cd_4": "Crm Cd 4", "location": "LOCATION",
    "cross_street": "Cross Street", "lat": "LAT", "lon": "LON",
}  # fmt: skip

AREAS = [
    "Central", "Rampart", "Southwest", "Hollenbeck", "Harbor", "Hollywood", "Wilshire",
    "West LA", "Van Nuys", "West Valley", "Northeast", "77th Street", "Newton", "Pacific",
    "N Hollywood", "Foothill", "Devonshire", "Southeast", "Mission", "Olympic", "Topanga",
]  # fmt: skip
# Rough centre of each LAPD area (lat, lon): crime clusters around them.
AREA_CENTRES = np.array([
    (34.047, -118.248), (34.068, -118.272), (34.020, -118.305), (34.045, -118.205),
    (33.760, -118.290), (34.098, -118.330), (34.057, -118.343), (34.045, -118.445),
    (34.185, -118.450), (34.190, -118.540), (34.110, -118.220), (33.965, -118.290),
    (34.010, -118.258), (33.990, -118.440), (34.172, -118.385), (34.255, -118.410),
    (34.255, -118.530), (33.935, -118.260), (34.260, -118.460), (34.052, -118.300),
    (34.200, -118.600),
])  # fmt: skip
# Share of incidents per area: the busiest (77th, Central, Southwest) a few times the quietest.
AREA_WEIGHTS = np.array(
    [7, 5, 6, 3, 3, 6, 5, 4, 5, 4, 4, 7, 5, 5, 5, 3, 3, 5, 4, 5, 3], dtype=float
)

# Legacy crm_cd mix (share of reports) with descriptions; violent codes included.
LEGACY_CODES = {
    "510": (0.11, "VEHICLE - STOLEN"),
    "624": (0.08, "BATTERY - SIMPLE ASSAULT"),
    "330": (0.06, "BURGLARY FROM VEHICLE"),
    "354": (0.06, "THEFT OF IDENTITY"),
    "740": (0.06, "VANDALISM - FELONY ($400 & OVER, ALL CHURCH VANDALISMS)"),
    "310": (0.06, "BURGLARY"),
    "230": (0.05, "ASSAULT WITH DEADLY WEAPON, AGGRAVATED ASSAULT"),
    "440": (0.05, "THEFT PLAIN - PETTY ($950 & UNDER)"),
    "626": (0.05, "INTIMATE PARTNER - SIMPLE ASSAULT"),
    "420": (0.04, "THEFT FROM MOTOR VEHICLE - PETTY ($950 & UNDER)"),
    "745": (0.04, "VANDALISM - MISDEAMEANOR ($399 OR UNDER)"),
    "331": (0.04, "THEFT FROM MOTOR VEHICLE - GRAND ($950.01 AND OVER)"),
    "210": (0.03, "ROBBERY"),
    "341": (0.03, "THEFT-GRAND ($950.01 & OVER)EXCPT,GUNS,FOWL,LIVESTK,PROD"),
    "930": (0.03, "CRIMINAL THREATS - NO WEAPON DISPLAYED"),
    "236": (0.02, "INTIMATE PARTNER - AGGRAVATED ASSAULT"),
    "480": (0.02, "BIKE - STOLEN"),
    "220": (0.01, "ATTEMPTED ROBBERY"),
    "761": (0.005, "BRANDISH WEAPON"),
    "121": (0.004, "RAPE, FORCIBLE"),
    "110": (0.002, "CRIMINAL HOMICIDE"),
    "815": (0.002, "SEXUAL PENETRATION W/FOREIGN OBJECT"),
    "350": (0.02, "THEFT, PERSON"),
    "900": (0.03, "VIOLATION OF COURT ORDER"),
    "888": (0.008, "TRESPASSING"),
    "649": (0.01, "DOCUMENT FORGERY / STOLEN FELONY"),
}
NIBRS_CODES = {
    "13B": (0.16, "Simple Assault", "Person"),
    "240": (0.13, "Motor Vehicle Theft", "Property"),
    "290": (0.12, "Destruction/Damage/Vandalism of Property", "Property"),
    "23F": (0.07, "Theft From Motor Vehicle", "Property"),
    "23H": (0.09, "All Other Larceny", "Property"),
    "13A": (0.07, "Aggravated Assault", "Person"),
    "120": (0.05, "Robbery", "Property"),
    "220": (0.06, "Burglary/Breaking & Entering", "Property"),
    "26A": (0.05, "False Pretenses/Swindle/Confidence Game", "Property"),
    "13C": (0.05, "Intimidation", "Person"),
    "23C": (0.05, "Shoplifting", "Property"),
    "90Z": (0.06, "All Other Offenses", "Society"),
    "11A": (0.005, "Rape", "Person"),
    "09A": (0.002, "Murder & Nonnegligent Manslaughter", "Person"),
    "35A": (0.023, "Drug/Narcotic Violations", "Society"),
}
STREETS = (
    "LONGWOOD FLOWER 37TH CHESTNUT VICTORY WESTERN VERMONT FIGUEROA SUNSET HOLLYWOOD "
    "WILSHIRE SEPULVEDA PICO OLYMPIC MAIN BROADWAY CRENSHAW SLAUSON"
).split() + ["LA CIENEGA", "VAN NUYS"]
SUFFIXES = ["AV", "ST", "BL", "DR", "WY"]
PREMISES = [("101", "STREET"), ("501", "SINGLE FAMILY DWELLING"), ("108", "PARKING LOT"),
            ("502", "MULTI-UNIT DWELLING (APARTMENT, DUPLEX, ETC)"), ("102", "SIDEWALK"),
            ("203", "OTHER BUSINESS")]  # fmt: skip

SODA_TS = "%Y-%m-%dT%H:%M:%S.000"


def _choice(rng: np.random.Generator, table: dict, n: int) -> np.ndarray:
    keys = np.array(list(table))
    weights = np.array([v[0] for v in table.values()], dtype=float)
    return rng.choice(keys, size=n, p=weights / weights.sum())


def _format_dates(values: pd.Series, fmt: str) -> pd.Series:
    """strftime on the unique values only: a million dates have a few thousand distinct."""
    codes, uniques = pd.factorize(values)
    return pd.Series(pd.DatetimeIndex(uniques).strftime(fmt).to_numpy()[codes], index=values.index)


def sample_points(
    rng: np.random.Generator,
    n: int,
    *,
    background: float = 0.2,
    missing_location: float = 0.0,
    outside_grid: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LA-shaped points: Gaussian clusters around the 21 LAPD area centres plus a uniform
    background over the city's box; some at 0,0 and some east of the box if asked.
    Returns (lat, lon, area index)."""
    area = rng.choice(len(AREA_WEIGHTS), size=n, p=AREA_WEIGHTS / AREA_WEIGHTS.sum())
    centre = AREA_CENTRES[area]
    spread = rng.choice([0.004, 0.012, 0.025], size=n, p=[0.3, 0.45, 0.25])
    lat = centre[:, 0] + rng.normal(0, 1, n) * spread
    lon = centre[:, 1] + rng.normal(0, 1, n) * spread * 1.2
    uniform = rng.random(n) < background
    lat[uniform] = rng.uniform(33.72, 34.32, uniform.sum())
    lon[uniform] = rng.uniform(-118.65, -118.17, uniform.sum())
    lat = np.clip(lat, 33.7040, 34.3370).round(4)
    lon = np.clip(lon, -118.6680, -118.1560).round(4)
    kind = rng.random(n)
    missing = kind < missing_location
    outside = (kind >= missing_location) & (kind < missing_location + outside_grid)
    lat[missing], lon[missing] = 0.0, 0.0
    lat[outside] = rng.uniform(34.05, 34.20, outside.sum()).round(4)  # Pasadena, Alhambra
    lon[outside] = rng.uniform(-118.14, -118.05, outside.sum()).round(4)
    return lat, lon, area


def _coordinate_text(values: np.ndarray) -> np.ndarray:
    """Coordinates as the API writes them: "34.0375", "-118.35", and "0" for none."""
    text = pd.Series(values).map("{:.4f}".format).str.rstrip("0").str.rstrip(".")
    return text.replace({"-0": "0", "": "0"}).to_numpy()


def _report_and_occurrence(
    rng: np.random.Generator, n: int, start: date, end: date, late_share: float
) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Report days uniform in [start, end]; occurrences a few days earlier, some months."""
    days = (end - start).days + 1
    reported = pd.Series(pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days, n), unit="D"))
    lag = np.where(rng.random(n) < late_share, rng.integers(14, 400, n), rng.geometric(0.55, n) - 1)
    occurred_day = reported - pd.to_timedelta(lag, unit="D")
    minutes = np.where(rng.random(n) < 0.12, 12 * 60, rng.integers(0, 24 * 60, n))
    return reported, occurred_day, minutes


def legacy_frame(
    n: int,
    start: date,
    end: date,
    seed: int = 0,
    *,
    missing_location: float = 0.0,
    outside_grid: float = 0.0,
    late_share: float = 0.05,
    serial_start: int = 0,
) -> pd.DataFrame:
    """``n`` legacy (2nrs-mtv8) records reported in [start, end], one column per SODA field,
    values as the API sends them, NaN for a field the API would leave out.

    ``dr_no`` is year + area + a serial counted from ``serial_start`` per year and
    area, unique within one call; give calls that share years different
    ``serial_start`` values (e.g. 0 and 50000) to keep their keys apart.
    """
    rng = np.random.default_rng(seed)
    reported, occurred_day, minutes = _report_and_occurrence(rng, n, start, end, late_share)
    lat, lon, area = sample_points(
        rng, n, missing_location=missing_location, outside_grid=outside_grid
    )
    year = occurred_day.dt.year.to_numpy() % 100
    serial = (
        pd.DataFrame({"y": year, "a": area}).groupby(["y", "a"]).cumcount().to_numpy()
        + serial_start
    )
    dr_no = (
        pd.Series(year).map("{:02d}".format)
        + pd.Series(area + 1).map("{:02d}".format)
        + pd.Series(serial % 100000).map("{:05d}".format)
    )
    code = _choice(rng, LEGACY_CODES, n)
    desc = pd.Series(code).map({k: v[1] for k, v in LEGACY_CODES.items()})
    second = np.where(rng.random(n) < 0.08, "998", np.where(rng.random(n) < 0.03, "930", None))
    premis = rng.integers(0, len(PREMISES), n)
    street = rng.choice(STREETS, n)
    pad = pd.Series(street).str.len().rsub(30).clip(lower=1)
    location = (
        pd.Series(rng.integers(1, 150, n) * 100).astype(str)
        + pd.Series(rng.choice([" S  ", " W  ", " N  ", "    "], n))
        + pd.Series(street)
        + pd.Series([" " * int(p) for p in pad])
        + pd.Series(rng.choice(SUFFIXES, n))
    )
    weapon = rng.random(n) < 0.35
    frame = pd.DataFrame(
        {
            "dr_no": dr_no,
            "date_rptd": _format_dates(reported, SODA_TS),
            "date_occ": _format_dates(occurred_day, SODA_TS),
            "time_occ": pd.Series(minutes // 60 * 100 + minutes % 60).map("{:04d}".format),
            "area": pd.Series(area + 1).map("{:02d}".format),
            "area_name": np.array(AREAS)[area],
            "rpt_dist_no": pd.Series((area + 1) * 100 + rng.integers(0, 99, n)).map(
                "{:04d}".format
            ),
            "part_1_2": np.where(rng.random(n) < 0.6, "1", "2"),
            "crm_cd": code,
            "crm_cd_desc": desc,
            "mocodes": np.where(rng.random(n) < 0.85, "0344 1822", None),
            "vict_age": rng.integers(0, 90, n).astype(str),
            "vict_sex": rng.choice(np.array(["M", "F", "X", None], dtype=object), n),
            "vict_descent": rng.choice(np.array(["H", "W", "B", "O", "A", None], dtype=object), n),
            "premis_cd": np.array([p[0] for p in PREMISES])[premis],
            "premis_desc": np.array([p[1] for p in PREMISES])[premis],
            "weapon_used_cd": np.where(weapon, "400", None),
            "weapon_desc": np.where(weapon, "STRONG-ARM (HANDS, FIST, FEET OR BODILY FORCE)", None),
            "status": np.where(rng.random(n) < 0.8, "IC", "AA"),
            "crm_cd_1": code,
            "crm_cd_2": second,
            "location": location,
            "lat": _coordinate_text(lat),
            "lon": _coordinate_text(lon),
        }
    )
    frame["status_desc"] = frame["status"].map({"IC": "Invest Cont", "AA": "Adult Arrest"})
    return frame.replace({None: np.nan})


def _records(frame: pd.DataFrame) -> list[dict]:
    """API rows: strings only, missing fields left out."""
    return [
        {k: v for k, v in row.items() if isinstance(v, str)}
        for row in frame.to_dict(orient="records")
    ]


def make_legacy_records(n: int, start: date, end: date, seed: int = 0, **kwargs) -> list[dict]:
    """``n`` legacy SODA JSON records reported in [start, end] (see :func:`legacy_frame`)."""
    return _records(legacy_frame(n, start, end, seed, **kwargs))


def make_nibrs_records(
    n_incidents: int,
    start: date,
    end: date,
    seed: int = 0,
    *,
    dataset: str = NIBRS_2026_ID,
    missing_location: float = 0.0,
    serial_start: int = 0,
) -> list[dict]:
    """NIBRS offense records (one to three per incident ``caseno``) reported in [start, end].

    ``k7nn-b2ep`` names coordinates ``hndrdth_lat``/``hndrdth_lon`` and its dates
    carry the time of day; ``y8y3-fqfu`` uses ``lat``/``lon`` and midnight dates.
    """
    rng = np.random.default_rng(seed)
    per = rng.choice([1, 2, 3], n_incidents, p=[0.7, 0.22, 0.08])
    reported, occurred_day, minutes = _report_and_occurrence(rng, n_incidents, start, end, 0.04)
    lat, lon, area = sample_points(rng, n_incidents, missing_location=missing_location)
    year = occurred_day.dt.year.to_numpy() % 100
    caseno = [
        f"{y:02d}{a + 1:02d}{serial_start + i:05d}"
        for i, (y, a) in enumerate(zip(year, area, strict=True))
    ]
    with_time = dataset == NIBRS_2026_ID
    occurred = occurred_day + pd.to_timedelta(minutes, unit="min") if with_time else occurred_day
    lat_field, lon_field = ("hndrdth_lat", "hndrdth_lon") if with_time else ("lat", "lon")
    lat_text, lon_text = _coordinate_text(lat), _coordinate_text(lon)
    if with_time:  # k7nn-b2ep report dates carry the time the report was taken
        reported = reported + pd.to_timedelta(rng.integers(0, 24 * 60, n_incidents), unit="min")
    reported_text = reported.dt.strftime(SODA_TS).to_numpy()
    records = []
    for i in range(n_incidents):
        codes = rng.choice(np.array(list(NIBRS_CODES)), per[i], replace=False,
                           p=_weights(NIBRS_CODES))  # fmt: skip
        for seq, code in enumerate(codes, start=1):
            _, description, against = NIBRS_CODES[code]
            records.append(
                {
                    "uniquenibrno": f"{caseno[i]}{code}{seq}",
                    "caseno": caseno[i],
                    "date_rptd": reported_text[i],
                    "date_occ": occurred.iloc[i].strftime(SODA_TS),
                    "time_occ": f"{minutes[i] // 60:02d}{minutes[i] % 60:02d}",
                    "area": f"{area[i] + 1:02d}",
                    "area_name": AREAS[area[i]],
                    "rpt_dist_no": f"{(area[i] + 1) * 100 + 11:04d}",
                    "totaloffensecount": str(per[i]),
                    "group": "A",
                    "nibr_code": str(code),
                    "nibr_description": description,
                    "crime_against": against,
                    "premis_cd": "101",
                    "premis_desc": "STREET",
                    "status": "IC",
                    "status_desc": "Investigation Continued",
                    lat_field: lat_text[i],
                    lon_field: lon_text[i],
                }
            )
    return records


def _weights(table: dict) -> np.ndarray:
    weights = np.array([v[0] for v in table.values()], dtype=float)
    return weights / weights.sum()


def write_portal_csv(frame: pd.DataFrame, path: Path, *, spreadsheet: bool = False) -> Path:
    """Write legacy records as the portal's CSV export (display-name header).

    ``spreadsheet=False``: dates ``03/01/2020 12:00:00 AM``, codes zero-padded as
    exported. ``spreadsheet=True``: as re-saved by a spreadsheet, ``11/6/2022 0:00``
    and ``TIME OCC``/``AREA``/``Rpt Dist No`` without leading zeros.
    """
    out = frame.reindex(columns=list(PORTAL_HEADER)).copy()
    for field in ("date_rptd", "date_occ"):
        stamps = pd.to_datetime(out[field], format="ISO8601", errors="coerce")
        if spreadsheet:
            codes, uniques = pd.factorize(stamps)
            u = pd.DatetimeIndex(uniques)
            text = [f"{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}" for d in u]
            written = pd.Series(np.array(text, dtype=object)[codes], index=out.index)
        else:
            written = _format_dates(stamps, "%m/%d/%Y %I:%M:%S %p")
        # A value that is not a date (a test's bad input) is written as it is.
        out[field] = written.where(stamps.notna(), out[field])
    if spreadsheet:
        for field in ("time_occ", "area", "rpt_dist_no"):
            out[field] = out[field].str.lstrip("0").replace("", "0")
    out.columns = [PORTAL_HEADER[c] for c in out.columns]
    out.to_csv(path, index=False, compression="infer")
    return path


# --- the server -----------------------------------------------------------------

_CLAUSE = re.compile(r"^\s*(\w+)\s*(>=|<=|<|>|=)\s*'([^']*)'\s*$")
_OPS = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
    ">": lambda a, b: a > b, "=": lambda a, b: a == b,
}  # fmt: skip


def _json(status: int, body) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json;charset=utf-8"}, json.dumps(body).encode()


def _error(message: str, code: str = "query.compiler.malformed") -> tuple[int, dict, bytes]:
    return _json(400, {"code": code, "error": True, "message": message})


def _comparable(value: str):
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return value


class SodaApp:
    """The request handler: datasets by id, and switches for scripted misbehaviour.

    - ``rename``: field renames applied to every served record (a schema change);
    - ``repeat_offsets``: ``{offset: times}``, serve the previous page instead of the
      one at ``offset`` that many times (a page that repeats);
    - ``count_bias``: added to every ``count(*)`` answer (a window that lost rows);
    - ``fields_header``: send ``X-SODA2-Fields`` (the real API does).
    """

    def __init__(self, datasets: dict[str, list[dict]] | None = None):
        self.datasets: dict[str, list[dict]] = {k: list(v) for k, v in (datasets or {}).items()}
        self.rename: dict[str, str] = {}
        self.repeat_offsets: dict[int, int] = {}
        self.count_bias = 0
        self.fields_header = True

    def add_records(self, dataset_id: str, records: list[dict]) -> None:
        self.datasets.setdefault(dataset_id, []).extend(records)

    def _rows(self, dataset_id: str) -> list[dict]:
        rows = self.datasets[dataset_id]
        if self.rename:
            rows = [{self.rename.get(k, k): v for k, v in r.items()} for r in rows]
        return rows

    def __call__(self, path: str, query: dict, headers: dict) -> tuple[int, dict, bytes]:
        match = re.fullmatch(r"/resource/([a-z0-9]{4}-[a-z0-9]{4})\.json", path)
        if not match or match.group(1) not in self.datasets:
            return _json(404, {"code": "not_found", "error": True, "message": f"{path} not found"})
        rows = self._rows(match.group(1))
        fields = sorted(set().union(*(r.keys() for r in rows))) if rows else []
        try:
            rows = self._where(rows, fields, query.get("$where"))
        except ValueError as exc:
            return _error(str(exc))
        select = query.get("$select")
        if select is not None:
            if select.replace(" ", "").lower() != "count(*)":
                return _error(f"this fake only supports $select=count(*), not {select!r}")
            return _json(200, [{"count": str(len(rows) + self.count_bias)}])
        try:
            limit = int(query.get("$limit", "1000"))
            offset = int(query.get("$offset", "0"))
        except ValueError:
            return _error("$limit and $offset must be integers")
        if limit > 50_000:
            return _error("$limit may not exceed 50000")
        order = query.get("$order")
        if order:
            parts = order.split()
            field, direction = parts[0], (parts[1].upper() if len(parts) > 1 else "ASC")
            if field not in fields:
                return _error(f"No such column: {field}", "query.soql.no-such-column")
            rows = sorted(rows, key=lambda r: r.get(field, ""), reverse=direction == "DESC")
        if self.repeat_offsets.get(offset, 0) > 0 and offset >= limit:
            self.repeat_offsets[offset] -= 1
            offset -= limit
        body = json.dumps(rows[offset : offset + limit]).encode()
        out = {"Content-Type": "application/json;charset=utf-8"}
        if self.fields_header:
            out["X-SODA2-Fields"] = json.dumps(fields)
        return 200, out, body

    @staticmethod
    def _where(rows: list[dict], fields: list[str], where: str | None) -> list[dict]:
        if not where:
            return rows
        for clause in re.split(r"\s+AND\s+", where, flags=re.IGNORECASE):
            match = _CLAUSE.match(clause)
            if not match:
                raise ValueError(f"could not parse $where clause {clause!r}")
            field, op, literal = match.groups()
            if field not in fields:
                raise ValueError(f"No such column: {field}")
            bound, compare = _comparable(literal), _OPS[op]
            rows = [r for r in rows if field in r and compare(_comparable(r[field]), bound)]
        return rows


class FakeSodaServer(FakeServer):
    app: SodaApp

    def resource_path(self, dataset_id: str) -> str:
        return f"/resource/{dataset_id}.json"


@contextmanager
def soda_server(
    datasets: dict[str, list[dict]] | None = None, *, set_env: bool = True
) -> Iterator[FakeSodaServer]:
    """Serve ``datasets`` (id -> records) on 127.0.0.1; points CRIMEJOB_SODA_URL at it."""
    previous = os.environ.get("CRIMEJOB_SODA_URL")
    with FakeSodaServer(SodaApp(datasets)) as server:
        if set_env:
            os.environ["CRIMEJOB_SODA_URL"] = server.url
        try:
            yield server
        finally:
            if set_env:
                if previous is None:
                    os.environ.pop("CRIMEJOB_SODA_URL", None)
                else:
                    os.environ["CRIMEJOB_SODA_URL"] = previous


def week_dates(week: date) -> tuple[date, date]:
    """Monday and Sunday of a week."""
    return week, week + timedelta(days=6)
