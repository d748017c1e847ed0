"""The LA development world as the sources publish it: NIBRS offenses and NCEI daily summaries.

:func:`nibrs_records` writes the world's incidents as the portal's live dataset
``k7nn-b2ep`` serves them today (late 2026): one offense row per incident, every
value a string, ``date_rptd`` with the time the report was taken, ``date_occ``
with the time of day on about half the rows (midnight and ``time_occ`` on the
rest), coordinates ``hndrdth_lat``/``hndrdth_lon`` to four decimals, and
descriptions as ``<penal code> - PC - <F/M> - <text> - <code>``.
:func:`daily_summaries` writes each weather station's days as the NCEI Access
Data Service does (``units=standard``), from the world's weekly weather in the
station's cell. The world is NIBRS-only from 2025 on, so only weeks from
2025-01-06 are published here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from crimejob.config import DEFAULT_STATIONS, Station
from crimejob.devworld import LAWorld
from crimejob.grid.cells import cell_of

NIBRS_DATASET = "k7nn-b2ep"
FIRST_NIBRS_ONLY_WEEK = date(2025, 1, 6)
SODA_TS = "%Y-%m-%dT%H:%M:%S.000"

# code -> (text, crime against, penal code, F/M), as the portal describes each offense
NIBRS_OFFENSES = {
    "09A": ("Murder", "Person", "187(A)", "F"),
    "11A": ("Rape", "Person", "261(A)(2)", "F"),
    "11B": ("Sodomy", "Person", "286(C)(2)", "F"),
    "11C": ("Sexual Assault With An Object", "Person", "289(A)(1)", "F"),
    "13A": ("Assault With Deadly Weapon", "Person", "245(A)(1)", "F"),
    "13B": ("Simple Assault", "Person", "242", "M"),
    "13C": ("Criminal Threats", "Person", "422(A)", "F"),
    "120": ("Robbery", "Property", "211", "F"),
    "220": ("Burglary", "Property", "459", "F"),
    "23C": ("Shoplifting", "Property", "459.5", "M"),
    "23D": ("Theft From Building", "Property", "487(A)", "F"),
    "23F": ("Theft From Motor Vehicle", "Property", "487(A)", "F"),
    "23H": ("All Other Larceny", "Property", "484(A)", "M"),
    "240": ("Motor Vehicle Theft", "Property", "10851(A)", "F"),
    "250": ("Counterfeiting/Forgery", "Property", "470(D)", "F"),
    "26A": ("False Pretenses/Swindle", "Property", "532(A)", "M"),
    "290": ("Vandalism Less Than $400", "Property", "594(B)(2)(A)", "M"),
    "35A": ("Drug/Narcotic Violations", "Society", "11350(A)", "M"),
    "520": ("Weapon Law Violations", "Society", "25850(A)", "M"),
    "90Z": ("All Other Offenses", "Society", "148(A)(1)", "M"),
}
STATUS = [("IC", "Investigation Continued"), ("14", "Cleared by Arrest - CA Filed"),
          ("AO", "Adult Other")]  # fmt: skip
PREMISES = [
    ("RA", "Residence/Home"), ("HW", "Highway/Road/Alley/Street/Sidewalk"),
    ("PL", "Parking/Drop Lot/Garage"), ("DS", "Department/Discount Store"),
]  # fmt: skip
STREETS = (
    "Figueroa Vermont Western Sunset Hollywood Wilshire Sepulveda Pico Olympic Main "
    "Broadway Crenshaw Slauson Victory Sherman Ventura Florence Manchester"
).split()


def _text(values: np.ndarray, fmt: str) -> np.ndarray:
    """Format the distinct values only (a year of records repeats a few thousand)."""
    codes, uniques = pd.factorize(pd.Series(values))
    return np.asarray(pd.DatetimeIndex(uniques).strftime(fmt), dtype=object)[codes]


def _coordinate(values: np.ndarray) -> np.ndarray:
    """``34.0375``, ``-118.35``: four decimals, trailing zeros dropped, as the API writes."""
    return pd.Series(values).map("{:.4f}".format).str.rstrip("0").str.rstrip(".").to_numpy()


def nibrs_records(world: LAWorld, first_week: date, last_week: date, seed: int = 0) -> list[dict]:
    """The ``k7nn-b2ep`` offense rows of the world's incidents that occurred in
    ``first_week..last_week`` (whenever they are reported)."""
    if first_week < FIRST_NIBRS_ONLY_WEEK:
        raise ValueError(f"the world is published as NIBRS only from {FIRST_NIBRS_ONLY_WEEK}")
    frame = world.records(first_week, last_week)
    frame = frame[frame["series"] == "nibrs"].reset_index(drop=True)
    n = len(frame)
    rng = np.random.default_rng([seed, 7, first_week.toordinal()])
    occurred = frame["occurred_at"].to_numpy("datetime64[m]")
    occurred_day = occurred.astype("datetime64[D]")
    minute_of_day = (occurred - occurred_day).astype(np.int64)
    reported_day = frame["reported_at"].to_numpy("datetime64[D]")
    # the report is taken some time that day, after the incident when on the same day
    same_day = reported_day == occurred_day
    start = np.where(same_day, minute_of_day, 0)
    taken = start + (rng.random(n) * (24 * 60 - start)).astype(np.int64)
    reported = reported_day.astype("datetime64[m]") + taken.astype("timedelta64[m]")
    carries_time = rng.random(n) < 0.5
    occurred_shown = np.where(carries_time, occurred, occurred_day.astype("datetime64[m]"))
    codes = frame["nibr_code"].to_numpy(dtype=object)
    offense = [NIBRS_OFFENSES[c] for c in codes]
    area = frame["area"].to_numpy()
    status = rng.integers(0, len(STATUS), n)
    premises = rng.integers(0, len(PREMISES), n)
    street = rng.choice(STREETS, n)
    number = rng.integers(1, 150, n) * 100
    domestic = rng.random(n) < 0.1
    columns = {
        "uniquenibrno": [
            f"{case}_{code}_0" for case, code in zip(frame["record_id"], codes, strict=True)
        ],
        "caseno": frame["record_id"].astype(str).to_numpy(),
        "date_rptd": _text(reported, SODA_TS),
        "date_occ": _text(occurred_shown, SODA_TS),
        "time_occ": [f"{m // 60:02d}{m % 60:02d}" for m in minute_of_day],
        "area": [f"{a:02d}" for a in area],
        "area_name": frame["area_name"].to_numpy(dtype=object),
        "rpt_dist_no": [f"{a * 100 + 11:04d}" for a in area],
        "totaloffensecount": ["1"] * n,
        "group": ["A"] * n,
        "nibr_code": codes,
        "nibr_description": [
            f"{penal} - PC - {grade} - {text} - {code}"
            for code, (text, _, penal, grade) in zip(codes, offense, strict=True)
        ],
        "crime_against": [o[1] for o in offense],
        "premis_cd": [PREMISES[p][0] for p in premises],
        "premis_desc": [PREMISES[p][1] for p in premises],
        "status": [STATUS[s][0] for s in status],
        "status_desc": [STATUS[s][1] for s in status],
        "gang_related": ["No"] * n,
        "domestic_violence": np.where(domestic, "Yes", "No"),
        "location": [f"{num} S {s} St" for num, s in zip(number, street, strict=True)],
        "hndrdth_lat": _coordinate(frame["lat"].to_numpy()),
        "hndrdth_lon": _coordinate(frame["lon"].to_numpy()),
    }
    out = pd.DataFrame(columns)
    return out.to_dict(orient="records")


def daily_summaries(
    world: LAWorld,
    first_day: date,
    last_day: date,
    stations: Sequence[Station] = DEFAULT_STATIONS,
    seed: int = 0,
) -> list[dict]:
    """Daily TMAX/TMIN (whole deg F) and PRCP (inches) per station, as the NCEI service's
    JSON records with station name and location: the world's weekly mean temperature in
    the station's cell with a daily swing, its weekly rain on one to three days."""
    weather = world.history().weather  # (weeks, rows, cols, [temp_f, rain_in, holiday])
    rng = np.random.default_rng([seed, 11])
    days = pd.date_range(first_day, last_day, freq="D")
    week_index = ((days.to_numpy("datetime64[D]") - world.week_starts[0]).astype(int)) // 7
    week_index = np.clip(week_index, 0, world.weeks - 1)
    records = []
    for station in stations:
        cell = int(cell_of([station.lat], [station.lon])[0][0])
        if cell < 0:
            continue
        row, col = divmod(cell, weather.shape[2])
        mean = weather[week_index, row, col, 0] + rng.normal(0, 2.5, len(days))
        swing = 12 + rng.normal(0, 2, len(days))
        rain_week = weather[week_index, row, col, 1]
        rainy = rng.random(len(days)) < 2 / 7
        rain = np.where(rainy & (rain_week > 0), rain_week / 2, 0.0)
        for day, t, s, p in zip(days.date, mean, swing, rain, strict=True):
            records.append(
                {
                    "DATE": day.isoformat(),
                    "STATION": station.station_id,
                    "PRCP": f"{p:.2f}",
                    "TMAX": str(int(round(t + s / 2))),
                    "TMIN": str(int(round(t - s / 2))),
                    "ELEVATION": "50.0",
                    "LATITUDE": f"{station.lat:g}",
                    "LONGITUDE": f"{station.lon:g}",
                    "NAME": station.name,
                }
            )
    return records
