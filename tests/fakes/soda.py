"""Synthetic LAPD records in their real formats, and the local SODA 2.0 server that serves them.

The server (``crimejob.devservers.soda``, re-exported here) speaks the query
subset the job uses, over real HTTP on 127.0.0.1: ``$where`` (comparisons of a
field with a quoted literal, joined by AND), ``$order`` (one field, ASC/DESC),
``$limit`` (default 1,000, at most 50,000), ``$offset``, and
``$select=count(*)`` answered ``[{"count": "N"}]``. Unknown columns and other
clauses get the API's 400 error object. Responses carry the ``X-SODA2-Fields``
header, as the real API does.

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

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from crimejob.devservers.soda import (  # noqa: F401  (re-exported: the tests import them here)
    CLOSED_BODIES,
    SODA_TS,
    FakeSodaServer,
    SodaApp,
    soda_server,
)

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
# NIBRS offense mix (share of offense rows): code -> (share, description, crime_against,
# penal code, F/M). Descriptions read as the portal writes them:
# "<penal code> - PC - F/M - <text> - <code>". Robbery (120) is filed under Property.
NIBRS_CODES = {
    "13B": (0.16, "Simple Assault", "Person", "242", "M"),
    "240": (0.13, "Motor Vehicle Theft", "Property", "10851(A)", "F"),
    "290": (0.12, "Vandalism Less Than $400", "Property", "594(B)(2)(A)", "M"),
    "23F": (0.07, "Theft From Motor Vehicle", "Property", "487(A)", "F"),
    "23H": (0.09, "All Other Larceny", "Property", "484(A)", "M"),
    "13A": (0.07, "Assault With Deadly Weapon", "Person", "245(A)(1)", "F"),
    "120": (0.05, "Robbery", "Property", "211", "F"),
    "220": (0.06, "Burglary", "Property", "459", "F"),
    "26A": (0.05, "False Pretenses/Swindle", "Property", "532(A)", "M"),
    "13C": (0.05, "Criminal Threats", "Person", "422(A)", "F"),
    "23C": (0.05, "Shoplifting", "Property", "459.5", "M"),
    "90Z": (0.06, "All Other Offenses", "Society", "148(A)(1)", "M"),
    "11A": (0.005, "Rape", "Person", "261(A)(2)", "F"),
    "11B": (0.001, "Sodomy", "Person", "286(C)(2)", "F"),
    "11C": (0.001, "Sexual Assault With An Object", "Person", "289(A)(1)", "F"),
    "09A": (0.002, "Murder", "Person", "187(A)", "F"),
    "35A": (0.023, "Drug/Narcotic Violations", "Society", "11350(A)", "M"),
}
NIBRS_STATUS = [("IC", "Investigation Continued"), ("14", "Cleared by Arrest - CA Filed"),
                ("AO", "Adult Other")]  # fmt: skip
NIBRS_PREMISES = [
    ("RA", "Residence/Home"), ("HW", "Highway/Road/Alley/Street/Sidewalk"),
    ("PL", "Parking/Drop Lot/Garage"), ("DS", "Department/Discount Store"),
]  # fmt: skip
# time_occ values LAPD uses when the time of day is unknown
UNKNOWN_TIMES = ("0000", "1200")
JUNK_OCCURRENCE = "1800-01-06T00:00:00.000"  # a real junk date in the consolidated dataset
STREETS = (
    "LONGWOOD FLOWER 37TH CHESTNUT VICTORY WESTERN VERMONT FIGUEROA SUNSET HOLLYWOOD "
    "WILSHIRE SEPULVEDA PICO OLYMPIC MAIN BROADWAY CRENSHAW SLAUSON"
).split() + ["LA CIENEGA", "VAN NUYS"]
SUFFIXES = ["AV", "ST", "BL", "DR", "WY"]
PREMISES = [("101", "STREET"), ("501", "SINGLE FAMILY DWELLING"), ("108", "PARKING LOT"),
            ("502", "MULTI-UNIT DWELLING (APARTMENT, DUPLEX, ETC)"), ("102", "SIDEWALK"),
            ("203", "OTHER BUSINESS")]  # fmt: skip


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
    junk_dates: float = 0.0,
    late_share: float = 0.04,
    serial_start: int = 0,
) -> list[dict]:
    """NIBRS offense records (one to three per incident ``caseno``) reported in [start, end],
    in the portal's format (docs/live-feed.md, "NIBRS records as they are").

    Every value a string and empty fields left out; ``caseno`` eight digits (year + serial
    from ``serial_start``: give calls that share a year different starts);
    ``uniquenibrno`` = ``<caseno>_<nibr_code>_<sequence>``; ``nibr_description`` as
    ``<penal code> - PC - F/M - <text> - <code>``; ``crime_against`` as LAPD files it
    (robbery is Property). ``k7nn-b2ep`` names coordinates ``hndrdth_lat``/``hndrdth_lon``
    (four decimals, ``"0"`` = missing); about half its occurrence dates carry the time of
    day, the rest are midnight; report dates carry a time. ``y8y3-fqfu`` uses
    ``lat``/``lon`` and midnight dates. About one incident in ten has ``time_occ``
    ``0000`` or ``1200``, LAPD's "time unknown" (its date is then midnight).
    ``junk_dates`` is the share of incidents with the occurrence date 1800-01-06.
    """
    rng = np.random.default_rng(seed)
    per = rng.choice([1, 2, 3], n_incidents, p=[0.7, 0.22, 0.08])
    reported, occurred_day, minutes = _report_and_occurrence(
        rng, n_incidents, start, end, late_share
    )
    lat, lon, area = sample_points(rng, n_incidents, missing_location=missing_location)
    year = reported.dt.year.to_numpy() % 100
    caseno = [f"{y:02d}{(serial_start + i) % 1_000_000:06d}" for i, y in enumerate(year)]
    k7nn = dataset == NIBRS_2026_ID
    unknown = rng.random(n_incidents) < 0.1
    time_text = np.where(
        unknown,
        rng.choice(np.array(UNKNOWN_TIMES), n_incidents),
        pd.Series(minutes // 60 * 100 + minutes % 60).map("{:04d}".format).to_numpy(),
    )
    carries_time = k7nn & ~unknown & (rng.random(n_incidents) < 0.5)
    occurred = occurred_day + pd.to_timedelta(np.where(carries_time, minutes, 0), unit="min")
    occurred_text = _format_dates(occurred, SODA_TS).to_numpy()
    occurred_text[rng.random(n_incidents) < junk_dates] = JUNK_OCCURRENCE
    lat_field, lon_field = ("hndrdth_lat", "hndrdth_lon") if k7nn else ("lat", "lon")
    lat_text, lon_text = _coordinate_text(lat), _coordinate_text(lon)
    if k7nn:  # k7nn-b2ep report dates carry the time the report was taken
        reported = reported + pd.to_timedelta(rng.integers(0, 24 * 60, n_incidents), unit="min")
    reported_text = _format_dates(reported, SODA_TS).to_numpy()
    status = rng.integers(0, len(NIBRS_STATUS), n_incidents)
    premis = rng.integers(0, len(NIBRS_PREMISES), n_incidents)
    street = rng.choice(STREETS, n_incidents)
    codes_all = np.array(list(NIBRS_CODES))
    records = []
    for i in range(n_incidents):
        codes = rng.choice(codes_all, per[i], replace=False, p=_weights(NIBRS_CODES))
        for seq, code in enumerate(codes):
            _, text, against, penal, grade = NIBRS_CODES[code]
            records.append(
                {
                    "uniquenibrno": f"{caseno[i]}_{code}_{seq}",
                    "caseno": caseno[i],
                    "date_rptd": reported_text[i],
                    "date_occ": occurred_text[i],
                    "time_occ": time_text[i],
                    "area": f"{area[i] + 1:02d}",
                    "area_name": AREAS[area[i]],
                    "rpt_dist_no": f"{(area[i] + 1) * 100 + 11:04d}",
                    "totaloffensecount": str(per[i]),
                    "group": "A",
                    "nibr_code": str(code),
                    "nibr_description": f"{penal} - PC - {grade} - {text} - {code}",
                    "crime_against": against,
                    "premis_cd": NIBRS_PREMISES[premis[i]][0],
                    "premis_desc": NIBRS_PREMISES[premis[i]][1],
                    "status": NIBRS_STATUS[status[i]][0],
                    "status_desc": NIBRS_STATUS[status[i]][1],
                    "gang_related": "No",
                    "domestic_violence": "Yes" if rng.random() < 0.1 else "No",
                    "location": f"{rng.integers(1, 150) * 100} S {street[i].title()} St",
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


def week_dates(week: date) -> tuple[date, date]:
    """Monday and Sunday of a week."""
    return week, week + timedelta(days=6)


# --- the portal as it is today (late 2026) ----------------------------------------

NIBRS_START = date(2024, 3, 7)  # LAPD's switch to NIBRS
LEGACY_LAST_OCCURRENCE = date(2024, 12, 30)
LEGACY_LAST_REPORT = date(2025, 3, 28)


def legacy_share(week: date) -> float:
    """Legacy reports in a report week, as a share of a normal week: whole until the switch,
    then tapering (16.3k rows in March 2024, 4.7k in December: about 0.9 to 0.27), and
    only late reports of 2024 occurrences from January to the dataset's end in March 2025."""
    if week < NIBRS_START:
        return 1.0
    if week <= LEGACY_LAST_OCCURRENCE:
        progress = (week - NIBRS_START).days / (LEGACY_LAST_OCCURRENCE - NIBRS_START).days
        return 0.9 - 0.63 * progress
    return 0.05 if week <= LEGACY_LAST_REPORT else 0.0


def nibrs_share(week: date) -> float:
    """NIBRS incidents in a report week, as a share of a normal week: ramping from a tenth
    in March 2024 to 0.7 in December (October-December carry 60-75% of a normal month),
    whole from 2025."""
    if week + timedelta(days=6) < NIBRS_START:
        return 0.0
    if week <= LEGACY_LAST_OCCURRENCE:
        progress = max(0, (week - NIBRS_START).days) / (LEGACY_LAST_OCCURRENCE - NIBRS_START).days
        return 0.1 + 0.6 * progress
    return 1.0


def portal_datasets(
    first_report: date,
    last_report: date,
    per_week: int = 120,
    seed: int = 0,
    *,
    missing_location: float = 0.01,
    junk_dates: float = 0.005,
) -> dict[str, list[dict]]:
    """What the LAPD portal holds for report dates [first_report, last_report], week by week:
    legacy ``2nrs-mtv8`` records tapering off through 2024 (its reports end 2025-03-28,
    its occurrences 2024-12-30) and NIBRS ``k7nn-b2ep`` offenses from 2024-03-07 on,
    ramping up to a whole week's volume in 2025. ``per_week`` incidents in a normal week;
    a few NIBRS incidents at 0,0 or with the junk date 1800-01-06, as in the real feed."""
    legacy: list[dict] = []
    nibrs: list[dict] = []
    week = first_report - timedelta(days=first_report.weekday())
    index = 0
    while week <= last_report:
        lo, hi = max(week, first_report), min(week + timedelta(days=6), last_report)
        n_legacy = round(per_week * legacy_share(week))
        legacy_hi = min(hi, LEGACY_LAST_REPORT)
        if n_legacy and lo <= legacy_hi:
            after_end = week > LEGACY_LAST_OCCURRENCE
            frame = legacy_frame(
                n_legacy, lo, legacy_hi, seed=seed * 10_000 + index,
                late_share=1.0 if after_end else 0.05, serial_start=(index % 99) * 1000,
            )  # fmt: skip
            occurred = pd.to_datetime(frame["date_occ"], format="ISO8601").dt.date
            legacy += _records(frame[occurred <= LEGACY_LAST_OCCURRENCE])
        n_nibrs = round(per_week * nibrs_share(week))
        nibrs_lo = max(lo, NIBRS_START)
        if n_nibrs and nibrs_lo <= hi:
            nibrs += make_nibrs_records(
                n_nibrs, nibrs_lo, hi, seed=seed * 10_000 + 5_000 + index,
                missing_location=missing_location, junk_dates=junk_dates,
                serial_start=index * 1000,
            )  # fmt: skip
        week += timedelta(weeks=1)
        index += 1
    # dr_no serials wrap after a hundred weeks: keep the first record of a repeated key
    legacy = list({r["dr_no"]: r for r in reversed(legacy)}.values())[::-1]
    return {LEGACY_ID: legacy, NIBRS_2026_ID: nibrs}


@functools.lru_cache(maxsize=4)
def _portal_datasets_once(
    first_report: date, last_report: date, per_week: int, seed: int
) -> dict[str, list[dict]]:
    """:func:`portal_datasets`, made once per process for the same arguments: the live-portal
    and Airflow tests each start the same portal several times. The server copies the lists
    and never changes a record, so the records can be shared."""
    return portal_datasets(first_report, last_report, per_week, seed)


@contextmanager
def portal_server(
    first_report: date,
    last_report: date,
    now: datetime | None = None,
    per_week: int = 120,
    seed: int = 0,
    *,
    set_env: bool = True,
) -> Iterator[FakeSodaServer]:
    """A local SODA server that behaves like the LAPD portal in late 2026: the datasets of
    :func:`portal_datasets`, each record published 13 days after its report date (move
    ``server.app.now`` to advance the clock), and ``y8y3-fqfu`` closed with HTTP 403."""
    with soda_server(
        _portal_datasets_once(first_report, last_report, per_week, seed), set_env=set_env
    ) as server:
        server.app.now = now
        server.app.closed[NIBRS_2024_ID] = 403
        yield server


# Violent offenses (FBI Part I violent), as crimejob.ingest.sources.lapd lists them.
VIOLENT_CRM_CD = set("110 113 121 122 815 820 821 210 220 230 231 235 236 250 251 761 926".split())
VIOLENT_NIBR_CODE = {"09A", "11A", "11B", "11C", "120", "13A"}


def published_week_counts(app: SodaApp) -> pd.DataFrame:
    """What the portal has published at ``app.now``, counted per occurrence week the way the
    data README defines it, from the served records alone: one incident per legacy
    ``dr_no`` or NIBRS ``caseno``, violent if any offense is. Records the job must reject
    (coordinates 0,0; an occurrence date before 2000 or after the report) are left out.

    Columns: week_start, legacy_incidents, nibrs_incidents, incident_total, violent_total.
    """
    rows = []
    for dataset_id in app.datasets:
        if dataset_id in app.closed:
            continue
        legacy = dataset_id == LEGACY_ID
        lat_field = "lat" if legacy else "hndrdth_lat"
        for r in app.published(dataset_id):
            day = r["date_occ"][:10]
            if r.get(lat_field, "0") == "0" or day < "2000-01-01" or day > r["date_rptd"][:10]:
                continue
            codes = (
                {r.get(f) for f in ("crm_cd", "crm_cd_1", "crm_cd_2", "crm_cd_3", "crm_cd_4")}
                if legacy
                else {r["nibr_code"]}
            )
            violent = bool(codes & (VIOLENT_CRM_CD if legacy else VIOLENT_NIBR_CODE))
            key = r["dr_no"] if legacy else r["caseno"]
            rows.append(("legacy" if legacy else "nibrs", key, day, violent))
    frame = pd.DataFrame(rows, columns=["series", "key", "day", "violent"])
    incidents = frame.groupby(["series", "key"]).agg(day=("day", "min"), violent=("violent", "any"))
    day = pd.to_datetime(incidents["day"])
    incidents["week_start"] = (day - pd.to_timedelta(day.dt.day_of_week, unit="D")).dt.date
    incidents = incidents.reset_index()
    out = incidents.pivot_table(
        index="week_start", columns="series", values="key", aggfunc="count", fill_value=0
    ).reindex(columns=["legacy", "nibrs"], fill_value=0)
    out.columns = ["legacy_incidents", "nibrs_incidents"]
    out["incident_total"] = out.sum(axis=1)
    out["violent_total"] = incidents.groupby("week_start")["violent"].sum()
    return out.reset_index()
