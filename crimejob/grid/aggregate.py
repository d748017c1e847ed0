"""Weekly grid rows: per cell and week the incident counts and the weather features.

For every week in a range this writes 4,500 rows to grid.weekly (zeros
included) and one row to grid.weeks, replacing what was there in a single
transaction, so a rerun leaves the same rows and a reader never sees a half
week. Late reports are handled by re-aggregating the weeks an ingest touched
(see :func:`weeks_touched`).

Counts come from the ``raw.incidents`` view: one incident per (series,
incident_id), i.e. per legacy ``dr_no`` or NIBRS ``caseno`` whichever dataset
published it, violent if any of its offenses is, placed in the week and cell of
the view (its earliest offense); ``grid.weeks`` keeps the legacy/NIBRS mix of
each week. Incidents made only of police-initiated offenses (``raw.police_initiated_codes``:
assault on an officer, resisting arrest, ...) are left out of both counts, since
what patrols find follows where the forecast sends them; ``grid.weeks.police_initiated``
counts them. Each aggregation also refreshes the cells' LAPD divisions
(:mod:`crimejob.grid.cell_areas`) in the same transaction. Weather comes from the
daily station summaries, interpolated to each cell centre by inverse distance
weighting.

Weather rules (the prototype's three features):
- a station *reports* a week for temperature when it has both TMAX and TMIN on
  at least :data:`MIN_REPORTED_DAYS` of the 7 days; its weekly mean
  temperature is the mean of (TMAX + TMIN) / 2 over those days;
- it reports rain when it has PRCP on at least :data:`MIN_REPORTED_DAYS` days;
  its weekly total is the mean over the reported days times 7, so a station
  missing a dry day is not biased low against one that reported all 7;
- each cell gets the inverse-distance-weighted (power 2, equirectangular
  kilometres) mean over the stations that reported; a cell at a station takes
  that station's value;
- a week in which no station reported gets NULL features (never invented
  values) and is listed in the report as a week without weather;
- the holiday indicator is 1 when a US federal or California holiday (see
  :mod:`crimejob.grid.calendar`) falls on any of the week's 7 days.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.config import SERIES_BREAK
from crimejob.dbcopy import copy_frame, read_query
from crimejob.errors import check_range
from crimejob.grid import cells as grid
from crimejob.grid import staleweeks
from crimejob.grid.calendar import load_holidays
from crimejob.grid.category_counts import refresh_category_count_weeks, refresh_category_counts
from crimejob.grid.cell_areas import rebuild_cell_areas, recount_spans, refresh_cell_areas
from crimejob.grid.weeks import week_start, weeks_between
from crimejob.runs import track_run

log = logging.getLogger(__name__)

MIN_REPORTED_DAYS = 5
IDW_POWER = 2.0
EARTH_RADIUS_KM = 6371.0088
_AT_STATION_KM = 1e-6  # closer than this, a cell centre *is* the station
_LOCK_KEY = 774412  # advisory lock held while grid rows are replaced (db.py uses 774411)

_COUNT_COLUMNS = """
           count(*) FILTER (WHERE NOT is_police_initiated)                AS incidents,
           count(*) FILTER (WHERE is_violent AND NOT is_police_initiated) AS violent,
           count(*) FILTER (WHERE is_police_initiated)                    AS police_initiated"""

# Many weeks (a first load): group raw.incidents once, whole.
_COUNTS = sa.text(
    f"""
    SELECT week_start, cell_id, series, {_COUNT_COLUMNS}
    FROM raw.incidents
    WHERE week_start BETWEEN :first AND :last
    GROUP BY week_start, cell_id, series
    """
)
# A few weeks (a weekly run's window): the same counts, grouping only the incidents that
# have a record in those weeks (an incident's week is its earliest record's, so every
# incident counted has one). The filter stays inside the lateral subquery (OFFSET 0),
# on raw.incidents' grouping columns, so it reaches the index on (series, incident_id)
# instead of grouping the whole table: 7x faster for 8 weeks of 200,000 records.
_COUNTS_FEW_WEEKS = sa.text(
    f"""
    SELECT i.week_start, i.cell_id, i.series, {_COUNT_COLUMNS}
    FROM (SELECT DISTINCT series, incident_id FROM raw.crime_records
          WHERE week_start BETWEEN :first AND :last) AS t
    CROSS JOIN LATERAL (
        SELECT * FROM raw.incidents AS v
        WHERE v.series = t.series AND v.incident_id = t.incident_id
        OFFSET 0
    ) AS i
    WHERE i.week_start BETWEEN :first AND :last
    GROUP BY i.week_start, i.cell_id, i.series
    """
)
FEW_WEEKS = 26  # up to here per-incident lookups beat one grouping of the whole table

# The same two counts for a set of weeks (several ranges aggregated in one transaction):
# an incident is counted in its one week, so counting the set at once counts what each
# range would.
_COUNTS_SET = sa.text(
    f"""
    SELECT week_start, cell_id, series, {_COUNT_COLUMNS}
    FROM raw.incidents
    WHERE week_start = ANY(:weeks)
    GROUP BY week_start, cell_id, series
    """
)
_COUNTS_FEW_WEEKS_SET = sa.text(
    f"""
    SELECT i.week_start, i.cell_id, i.series, {_COUNT_COLUMNS}
    FROM (SELECT DISTINCT series, incident_id FROM raw.crime_records
          WHERE week_start = ANY(:weeks)) AS t
    CROSS JOIN LATERAL (
        SELECT * FROM raw.incidents AS v
        WHERE v.series = t.series AND v.incident_id = t.incident_id
        OFFSET 0
    ) AS i
    WHERE i.week_start = ANY(:weeks)
    GROUP BY i.week_start, i.cell_id, i.series
    """
)

# Which incidents of raw.incidents the grid counts (the category counts use the same).
MODELLED_INCIDENTS = "NOT is_police_initiated"

_WEATHER = sa.text(
    """
    SELECT d.station_id, d.day, d.tmax_f, d.tmin_f, d.prcp_in, s.lat, s.lon
    FROM raw.weather_daily AS d
    JOIN raw.weather_stations AS s USING (station_id)
    WHERE d.day BETWEEN :first AND :last_day
    """
)

_HOLIDAYS = sa.text(
    "SELECT day, names FROM raw.holidays WHERE day BETWEEN :first AND :last_day ORDER BY day"
)

_INSERT_WEEKS = sa.text(
    """
    INSERT INTO grid.weeks (week_start, series, incident_total, violent_total,
                            legacy_incidents, nibrs_incidents, police_initiated,
                            stations_reported, holiday_names)
    VALUES (:week_start, :series, :incident_total, :violent_total,
            :legacy_incidents, :nibrs_incidents, :police_initiated,
            :stations_reported, :holiday_names)
    """
)

_TOUCHED = sa.text(
    """
    SELECT DISTINCT week_start FROM raw.crime_records WHERE updated_at >= :since
    UNION
    SELECT DISTINCT (day - (extract(isodow FROM day)::int - 1))::date
    FROM raw.weather_daily WHERE updated_at >= :since
    """
)


@dataclass
class AggregateReport:
    """What an aggregation wrote: weeks, rows, totals and the weeks it had no weather for."""

    weeks: list[date] = field(default_factory=list)
    rows_written: int = 0
    rows_kept: int = 0  # grid rows already holding the values (several ranges at once)
    incident_total: int = 0
    violent_total: int = 0
    weeks_without_weather: list[date] = field(default_factory=list)
    stations: int = 0
    cells_with_division: int = 0
    category_rows: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "weeks": len(self.weeks),
            "first_week": str(self.weeks[0]) if self.weeks else None,
            "last_week": str(self.weeks[-1]) if self.weeks else None,
            "rows_written": self.rows_written,
            "rows_kept": self.rows_kept,
            "incident_total": self.incident_total,
            "violent_total": self.violent_total,
            "weeks_without_weather": [str(w) for w in self.weeks_without_weather],
            "stations": self.stations,
            "cells_with_division": self.cells_with_division,
            "category_rows": self.category_rows,
            "seconds": round(self.seconds, 3),
        }

    def format(self) -> str:
        span = f"{self.weeks[0]}..{self.weeks[-1]}" if self.weeks else "no weeks"
        lines = [
            f"aggregate {span}: {len(self.weeks)} week(s), {self.rows_written} rows written"
            + (f" ({self.rows_kept} unchanged)" if self.rows_kept else "")
            + f", {self.violent_total} violent of {self.incident_total} incidents, "
            f"{self.stations} station(s), {len(self.weeks_without_weather)} week(s) "
            f"without weather ({self.seconds:.1f} s)"
        ]
        if self.weeks_without_weather:
            shown = ", ".join(str(w) for w in self.weeks_without_weather[:10])
            more = len(self.weeks_without_weather) - 10
            lines.append(
                f"  weeks without weather: {shown}" + (f" and {more} more" if more > 0 else "")
            )
        return "\n".join(lines)


# --- interpolation --------------------------------------------------------------------


def distance_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Equirectangular distance in km (broadcasting); exact enough across a city."""
    lat1, lon1, lat2, lon2 = (
        np.radians(np.asarray(a, dtype=np.float64)) for a in (lat1, lon1, lat2, lon2)
    )
    x = (lon2 - lon1) * np.cos((lat1 + lat2) / 2)
    y = lat2 - lat1
    return EARTH_RADIUS_KM * np.hypot(x, y)


def idw(
    values: np.ndarray,
    station_lat: np.ndarray,
    station_lon: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    power: float = IDW_POWER,
) -> np.ndarray:
    """Inverse-distance-weighted values at points, for many weeks at once.

    ``values`` is (weeks, stations) with NaN where a station did not report;
    returns (weeks, points), NaN where no station reported that week. A point
    at a station takes the station's value when it reported.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    dist = distance_km(
        np.asarray(lat)[:, None],
        np.asarray(lon)[:, None],
        station_lat[None, :],
        station_lon[None, :],
    )  # (points, stations)
    at_station = dist < _AT_STATION_KM
    weights = 1.0 / np.maximum(dist, _AT_STATION_KM) ** power
    reported = ~np.isnan(values)
    numerator = np.where(reported, values, 0.0) @ weights.T
    denominator = reported.astype(np.float64) @ weights.T
    with np.errstate(invalid="ignore", divide="ignore"):
        result = numerator / denominator
    result[denominator == 0] = np.nan  # no station reported that week
    for point, station in zip(*np.nonzero(at_station), strict=True):
        hit = reported[:, station]
        result[hit, point] = values[hit, station]
    return result


def station_weeks(
    daily: pd.DataFrame, weeks: list[date]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Weekly station values as (stations frame, temp (W, S), rain (W, S)), NaN = not reported."""
    if daily.empty:
        empty = np.full((len(weeks), 0), np.nan)
        return pd.DataFrame(columns=["station_id", "lat", "lon"]), empty, empty.copy()
    daily = daily.astype({"tmax_f": float, "tmin_f": float, "prcp_in": float})
    day = pd.to_datetime(daily["day"])
    daily["week_start"] = (day - pd.to_timedelta(day.dt.day_of_week, unit="D")).dt.date
    daily["tmean"] = (daily["tmax_f"] + daily["tmin_f"]) / 2
    grouped = daily.groupby(["week_start", "station_id"])
    weekly = pd.DataFrame(
        {
            "temp_days": grouped["tmean"].count(),
            "temp": grouped["tmean"].mean(),
            "rain_days": grouped["prcp_in"].count(),
            "rain": grouped["prcp_in"].mean() * 7,
        }
    )
    weekly.loc[weekly["temp_days"] < MIN_REPORTED_DAYS, "temp"] = np.nan
    weekly.loc[weekly["rain_days"] < MIN_REPORTED_DAYS, "rain"] = np.nan
    stations = daily.drop_duplicates("station_id")[["station_id", "lat", "lon"]].sort_values(
        "station_id", ignore_index=True
    )
    index = pd.MultiIndex.from_product([weeks, stations["station_id"]], names=weekly.index.names)
    weekly = weekly.reindex(index)
    shape = (len(weeks), len(stations))
    return (
        stations,
        weekly["temp"].to_numpy().reshape(shape),
        weekly["rain"].to_numpy().reshape(shape),
    )


# --- the aggregation ------------------------------------------------------------------------


def default_series(week: date) -> str:
    """The series of a week with no incidents: NIBRS if most of its days are after the break."""
    return "nibrs" if week + timedelta(days=3) >= SERIES_BREAK else "legacy"


def _dense_counts(counts: pd.DataFrame, weeks: list[date]) -> tuple[np.ndarray, np.ndarray]:
    """(W, 4500) arrays of incidents and violent incidents from the sparse counts."""
    incidents = np.zeros((len(weeks), grid.N_CELLS), dtype=np.int64)
    violent = np.zeros_like(incidents)
    if not counts.empty:
        position = {w: i for i, w in enumerate(weeks)}
        w_idx = counts["week_start"].map(position).to_numpy(np.int64)
        c_idx = counts["cell_id"].to_numpy(np.int64)
        np.add.at(incidents, (w_idx, c_idx), counts["incidents"].to_numpy(np.int64))
        np.add.at(violent, (w_idx, c_idx), counts["violent"].to_numpy(np.int64))
    return incidents, violent


def _week_rows(
    weeks: list[date],
    counts: pd.DataFrame,
    incidents: np.ndarray,
    violent: np.ndarray,
    reported: np.ndarray,
    holiday_names: dict[date, str],
) -> list[dict]:
    by_series = (
        counts.groupby(["week_start", "series"])["incidents"].sum().unstack(fill_value=0)
        if not counts.empty
        else pd.DataFrame()
    )
    police = (
        counts.groupby("week_start")["police_initiated"].sum()
        if not counts.empty
        else pd.Series(dtype="int64")
    )
    rows = []
    for i, week in enumerate(weeks):
        legacy = (
            int(by_series.at[week, "legacy"])
            if "legacy" in by_series and week in by_series.index
            else 0
        )
        nibrs = (
            int(by_series.at[week, "nibrs"])
            if "nibrs" in by_series and week in by_series.index
            else 0
        )
        series = "legacy" if legacy > nibrs else "nibrs" if nibrs > legacy else default_series(week)
        rows.append(
            {
                "week_start": week,
                "series": series,
                "incident_total": int(incidents[i].sum()),
                "violent_total": int(violent[i].sum()),
                "legacy_incidents": legacy,
                "nibrs_incidents": nibrs,
                "police_initiated": int(police.get(week, 0)),
                "stations_reported": int(reported[i]),
                "holiday_names": holiday_names.get(week),
            }
        )
    return rows


def _aggregate(
    conn: Connection,
    weeks: list[date],
    report: AggregateReport,
    sync: bool = True,
    rebuild: bool = True,
) -> None:
    """Aggregate the consecutive ``weeks`` inside the caller's transaction. ``sync=False``
    (the category mapping was synced earlier in the transaction) and ``rebuild=False``
    (the caller rebuilds the cell divisions once) serve several ranges in one."""
    first, last = weeks[0], weeks[-1]
    last_day = last + timedelta(days=6)
    params = {"first": first, "last": last, "last_day": last_day}
    # Two aggregations of overlapping weeks (a CLI run beside the DAG) would
    # both delete and then collide on insert; they take turns instead.
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    load_holidays(conn, range(first.year, last_day.year + 1))

    query = _COUNTS_FEW_WEEKS if len(weeks) <= FEW_WEEKS else _COUNTS
    counts = pd.read_sql_query(query, conn, params=params)
    if not counts.empty:
        counts["week_start"] = pd.to_datetime(counts["week_start"]).dt.date
    frame, week_rows = _range_rows(conn, weeks, counts, report)
    conn.execute(
        sa.text("DELETE FROM grid.weekly WHERE week_start BETWEEN :first AND :last"), params
    )
    conn.execute(
        sa.text("DELETE FROM grid.weeks WHERE week_start BETWEEN :first AND :last"), params
    )
    report.rows_written += copy_frame(conn, frame, "grid.weekly", list(frame.columns))
    conn.execute(_INSERT_WEEKS, week_rows)
    cells = refresh_cell_areas(conn, first, last, rebuild=rebuild)
    if cells is not None:
        report.cells_with_division = cells
    report.category_rows += refresh_category_counts(
        conn, first, last, MODELLED_INCIDENTS, sync=sync
    )
    staleweeks.clear(conn, first, last)


def _range_rows(
    conn: Connection, weeks: list[date], counts: pd.DataFrame, report: AggregateReport
) -> tuple[pd.DataFrame, list[dict]]:
    """The grid.weekly frame and grid.weeks rows of the consecutive ``weeks`` from their
    ``counts`` (those weeks' rows of the count query) and the weather and holidays read
    here; the report's totals updated."""
    first, last = weeks[0], weeks[-1]
    last_day = last + timedelta(days=6)
    params = {"first": first, "last": last, "last_day": last_day}
    incidents, violent = _dense_counts(counts, weeks)

    daily = pd.read_sql_query(_WEATHER, conn, params=params)
    stations, temp, rain = station_weeks(daily, weeks)
    lat, lon = grid.centers()
    if len(stations):
        s_lat, s_lon = stations["lat"].to_numpy(), stations["lon"].to_numpy()
        cell_temp = idw(temp, s_lat, s_lon, lat, lon)
        cell_rain = idw(rain, s_lat, s_lon, lat, lon)
    else:
        cell_temp = np.full((len(weeks), grid.N_CELLS), np.nan)
        cell_rain = cell_temp.copy()
    reported = (~np.isnan(temp) | ~np.isnan(rain)).sum(axis=1)

    holidays = pd.read_sql_query(_HOLIDAYS, conn, params=params)
    holiday_names: dict[date, str] = {}
    for day, names in zip(holidays["day"], holidays["names"], strict=True):
        week = week_start(day)
        holiday_names[week] = f"{holiday_names[week]}; {names}" if week in holiday_names else names
    holiday = np.array([1 if w in holiday_names else 0 for w in weeks], dtype=np.int16)

    n_weeks = len(weeks)
    frame = pd.DataFrame(
        {
            "week_start": np.repeat(np.array(weeks, dtype="datetime64[D]"), grid.N_CELLS),
            "cell_id": np.tile(np.arange(grid.N_CELLS), n_weeks),
            "violent_count": violent.ravel(),
            "incident_count": incidents.ravel(),
            # 1e-4 deg F and inch are far below what a station measures, and
            # short numbers keep the COPY of a million rows quick
            "mean_temp_f": np.round(cell_temp.ravel(), 4),
            "total_rain_in": np.round(cell_rain.ravel(), 4),
            "holiday": np.repeat(holiday, grid.N_CELLS),
        }
    )
    report.incident_total += int(incidents.sum())
    report.violent_total += int(violent.sum())
    report.stations = max(report.stations, len(stations))
    no_weather = np.isnan(cell_temp).all(axis=1) & np.isnan(cell_rain).all(axis=1)
    report.weeks_without_weather += [w for w, gap in zip(weeks, no_weather, strict=True) if gap]
    return frame, _week_rows(weeks, counts, incidents, violent, reported, holiday_names)


def _aggregate_spans(conn: Connection, spans: list[list[date]], report: AggregateReport) -> None:
    """Aggregate several ranges of consecutive weeks inside the caller's transaction, with
    what does not depend on the range done once: the lock, the holidays, the counts (one
    query over the set of weeks), the deletes, one COPY of every range's rows, the
    category mapping, the recounts of divisions and categories (one statement each, per
    range inside it) and the rebuild of the cell divisions. What each range reads for its
    own weeks (weather, holiday names) is read per range, as :func:`_aggregate` does, so
    the rows are those each range alone writes."""
    weeks = [w for span in spans for w in span]
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    years = {
        y for span in spans for y in range(span[0].year, (span[-1] + timedelta(days=6)).year + 1)
    }
    load_holidays(conn, years)
    query = _COUNTS_FEW_WEEKS_SET if len(weeks) <= FEW_WEEKS else _COUNTS_SET
    counts = pd.read_sql_query(query, conn, params={"weeks": weeks})
    if not counts.empty:
        counts["week_start"] = pd.to_datetime(counts["week_start"]).dt.date
    frames, week_rows = [], []
    for span in spans:
        mine = counts[counts["week_start"].isin(set(span))] if not counts.empty else counts
        frame, rows = _range_rows(conn, span, mine.reset_index(drop=True), report)
        frames.append(frame)
        week_rows += rows
    conn.execute(sa.text("DELETE FROM grid.weeks WHERE week_start = ANY(:weeks)"), {"weeks": weeks})
    frame = pd.concat(frames, ignore_index=True)
    written, kept = _replace_changed_rows(conn, frame, weeks)
    report.rows_written += written
    report.rows_kept += kept
    conn.execute(_INSERT_WEEKS, week_rows)
    # the divisions and categories of every range in one statement each (what each range
    # alone recounts: tests/test_hardening.py)
    recount_spans(conn, spans)
    report.category_rows += refresh_category_count_weeks(conn, weeks, MODELLED_INCIDENTS)
    staleweeks.clear_weeks(conn, weeks)
    report.cells_with_division = rebuild_cell_areas(conn)


_GRID_VALUES = ("violent_count", "incident_count", "mean_temp_f", "total_rain_in", "holiday")
_DELETE_CELLS = sa.text(
    "DELETE FROM grid.weekly AS w "
    "USING unnest(CAST(:weeks AS date[]), CAST(:cells AS integer[])) AS d(week_start, cell_id) "
    "WHERE w.week_start = d.week_start AND w.cell_id = d.cell_id"
)


def _stored_rows(conn: Connection, weeks: list[date]) -> pd.DataFrame:
    """The grid.weekly rows of ``weeks`` as stored, read through COPY (NULL as NaN; a
    float read back an ulp off would only rewrite its row with the same value)."""
    stored = read_query(
        conn,
        "SELECT week_start, cell_id, " + ", ".join(_GRID_VALUES) + " FROM grid.weekly "
        "WHERE week_start = ANY(%(weeks)s::date[])",
        {"weeks": list(weeks)},
    )
    stored["week_start"] = pd.to_datetime(stored["week_start"]).to_numpy().astype("datetime64[D]")
    return stored


def _replace_changed_rows(
    conn: Connection, frame: pd.DataFrame, weeks: list[date]
) -> tuple[int, int]:
    """Make grid.weekly's rows of ``weeks`` those of ``frame`` (all 4,500 cells of each
    week), rewriting only the rows that differ; returns (rows written, rows kept).

    A late report changes a cell or two of its week, and a backfill week's late reports
    touch some thirty weeks: deleting and copying back their 135,000 rows (an index and a
    foreign-key check each) was most of the aggregate step, for the same values in all
    but a few hundred. The rows after are the same either way (tests/test_hardening.py).
    """
    stored = _stored_rows(conn, weeks)
    keys = ["week_start", "cell_id"]
    new = frame.assign(week_start=frame["week_start"].to_numpy().astype("datetime64[D]"))
    both = new.merge(stored, on=keys, how="left", suffixes=("", "_stored"), indicator=True)
    stored_here = (both["_merge"] == "both").to_numpy()
    same = stored_here.copy()
    for column in _GRID_VALUES:
        a = both[column].to_numpy(np.float64)
        b = both[f"{column}_stored"].to_numpy(np.float64)
        same &= (a == b) | (np.isnan(a) & np.isnan(b))
    changed = both.loc[~same & stored_here, keys]
    if len(changed):
        conn.execute(
            _DELETE_CELLS,
            {
                "weeks": [w.item() for w in changed["week_start"].to_numpy()],
                "cells": changed["cell_id"].astype(int).tolist(),
            },
        )
    rows = frame.loc[~same]
    return copy_frame(conn, rows, "grid.weekly", list(frame.columns)), int(same.sum())


def aggregate_weeks(engine: Engine, start: date, end: date) -> AggregateReport:
    """Recompute grid.weekly and grid.weeks for every week from the week of start to that of end.

    One transaction for the whole range: either every week is replaced or none is.
    """
    check_range(start, end, "aggregate")
    weeks = weeks_between(start, end)
    report = AggregateReport(weeks=weeks)
    if not weeks:
        return report
    began = time.perf_counter()
    with track_run(engine, "aggregate", {"start": weeks[0], "end": weeks[-1]}) as counts:
        with engine.begin() as conn:
            _aggregate(conn, weeks, report)
        report.seconds = time.perf_counter() - began
        counts.update(report.as_dict())
    log.info("%s", report.format())
    return report


def aggregate_ranges(engine: Engine, ranges: list[tuple[date, date]]) -> AggregateReport:
    """:func:`aggregate_weeks` for several week ranges in one transaction: every range's
    rows replaced, or none; the cell divisions rebuilt once, after the last. A weekly
    run's window and the old weeks its late reports touched, without recomputing the
    weeks between them (nor rescoring their forecasts)."""
    ranges = sorted((week_start(a), week_start(b)) for a, b in ranges)
    for first, last in ranges:
        check_range(first, last, "aggregate")
    spans = [weeks_between(first, last) for first, last in ranges]
    weeks = [w for span in spans for w in span]
    if len(set(weeks)) != len(weeks):
        raise ValueError(f"aggregation ranges overlap: {ranges}")
    report = AggregateReport(weeks=sorted(weeks))
    if not weeks:
        return report
    began = time.perf_counter()
    with track_run(
        engine, "aggregate", {"start": weeks[0], "end": weeks[-1], "ranges": len(ranges)}
    ) as counts:
        with engine.begin() as conn:
            _aggregate_spans(conn, spans, report)
        report.weeks_without_weather.sort()
        report.seconds = time.perf_counter() - began
        counts.update(report.as_dict())
    log.info("%s", report.format())
    return report


def weeks_touched(engine: Engine, since: datetime) -> set[date]:
    """Weeks with crime records or daily weather written or changed at or after ``since``.

    The weekly run aggregates ``min(weeks)..max(weeks)`` of this set after its
    ingests, which is how late reports reach the weeks they belong to.
    """
    with engine.connect() as conn:
        return {row[0] for row in conn.execute(_TOUCHED, {"since": since})}
