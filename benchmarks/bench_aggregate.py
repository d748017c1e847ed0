"""How long ``aggregate_weeks`` takes on a backfill-sized database; prints a table.

    .venv/bin/python benchmarks/bench_aggregate.py [--incidents 1000000] [--weeks 260]

Builds a throwaway database on the embedded PostgreSQL (or the server in
CRIMEJOB_DATABASE_URL), fills raw.crime_records with synthetic incidents (10%
of them NIBRS cases with two offenses) and five stations of daily weather,
then times a full aggregation, a rerun, and a weekly run's 8-week window.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scratch import scratch_database  # also puts the project on sys.path

from crimejob.dbcopy import copy_frame  # noqa: E402
from crimejob.grid import cells as grid
from crimejob.grid.aggregate import aggregate_weeks  # noqa: E402
from crimejob.ingest.weather_ingest import load_weather_records  # noqa: E402
from tests.fakes.ncei import make_daily_summaries  # noqa: E402

FIRST_WEEK = date(2020, 1, 6)


def crime_frame(n_incidents: int, n_weeks: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # clustered locations, like real crime: a few hundred hot spots plus noise
    centres = rng.uniform([grid.LAT_MIN, grid.LON_MIN], [grid.LAT_MAX, grid.LON_MAX], (300, 2))
    pick = rng.integers(0, len(centres), n_incidents)
    lat = np.clip(centres[pick, 0] + rng.normal(0, 0.01, n_incidents), grid.LAT_MIN, grid.LAT_MAX)
    lon = np.clip(centres[pick, 1] + rng.normal(0, 0.01, n_incidents), grid.LON_MIN, grid.LON_MAX)
    day = rng.integers(0, 7 * n_weeks, n_incidents)
    occurred = pd.Timestamp(FIRST_WEEK) + pd.to_timedelta(day, unit="D")
    nibrs = rng.random(n_incidents) < 0.1
    frame = pd.DataFrame(
        {
            "source": np.where(nibrs, "y8y3-fqfu", "2nrs-mtv8"),
            "incident_id": [f"I{i}" for i in range(n_incidents)],
            "series": np.where(nibrs, "nibrs", "legacy"),
            "occurred_at": occurred,
            "reported_at": occurred,
            "week_start": (occurred - pd.to_timedelta(occurred.day_of_week, unit="D")).date,
            "lat": lat,
            "lon": lon,
            "cell_id": grid.cell_of(lat, lon)[0],
            "is_violent": rng.random(n_incidents) < 0.25,
        }
    )
    frame["record_id"] = frame["incident_id"]
    frame["offense_codes"] = np.where(frame["is_violent"], "{230}", "{330}")
    second = frame[nibrs].copy()  # NIBRS cases get a second, non-violent offense
    second["record_id"] = second["incident_id"] + "-2"
    second["offense_codes"] = "{290}"
    second["is_violent"] = False
    frame = pd.concat([frame, second], ignore_index=True)
    frame["payload"] = '{"synthetic": true}'
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--weeks", type=int, default=260)
    args = parser.parse_args()

    rows = []
    with scratch_database("aggregate") as url:
        engine = sa.create_engine(url)
        try:
            began = time.perf_counter()
            crime = crime_frame(args.incidents, args.weeks)
            columns = [
                "source", "record_id", "incident_id", "series", "occurred_at", "reported_at",
                "week_start", "lat", "lon", "cell_id", "offense_codes", "is_violent", "payload",
            ]  # fmt: skip
            with engine.begin() as conn:
                copy_frame(conn, crime, "raw.crime_records", columns)
                conn.exec_driver_sql("ANALYZE raw.crime_records")
            last_week = FIRST_WEEK + timedelta(weeks=args.weeks - 1)
            weather = make_daily_summaries(start=FIRST_WEEK, end=last_week + timedelta(days=6))
            load_weather_records(engine, weather)
            setup = time.perf_counter() - began

            for label, start in (
                (f"full: {args.weeks} weeks", FIRST_WEEK),
                (f"rerun: {args.weeks} weeks", FIRST_WEEK),
                ("weekly window: 8 weeks", last_week - timedelta(weeks=7)),
            ):
                t0 = time.perf_counter()
                report = aggregate_weeks(engine, start, last_week)
                rows.append((label, len(report.weeks), report.rows_written, report.violent_total,
                             time.perf_counter() - t0))  # fmt: skip
        finally:
            engine.dispose()

    print(f"setup: {len(crime):,} crime records ({args.incidents:,} incidents), "
          f"{len(weather):,} station-days, {setup:.1f} s; {os.cpu_count()} CPU(s)")  # fmt: skip
    print(f"{'run':<24} {'weeks':>6} {'rows':>10} {'violent':>9} {'seconds':>8}")
    for label, weeks, written, violent, seconds in rows:
        print(f"{label:<24} {weeks:>6} {written:>10,} {violent:>9,} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
