"""Do the 90% intervals hold 90%? Coverage and reliability in a rolling backtest.

    .venv/bin/python benchmarks/bench_uncertainty.py [--data philadelphia|la|both]
        [--weeks 52] [--models last_week,mean_4w,mean_13w,mean_52w,ewma] [--json FILE]

Runs :func:`crimejob.models.backtest.run_backtest` (the same predictive distributions
production writes: negative binomial around each forecast with the dispersion
fitted on the model's own errors over the 13 weeks before) and prints, per
model, the interval coverage (conservative and randomised PIT, all and active
cells), the mean interval width, the fitted dispersion, the stability of the
flags, and a reliability table by decile.

Data: ``philadelphia``: the real City of Philadelphia shooting incidents
(``../shared/data``, 2015-2023), counted per week on a 60 x 75 grid over the
city's box (violent counts only: incidents = crime, no weather); the backtest
targets are its last ``--weeks`` complete weeks. ``la``: the LA development
world (``crimejob.devworld``), 2019-2023.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crimejob.grid.history import WEATHER_FEATURES, GridHistory  # noqa: E402
from crimejob.models.backtest import run_backtest  # noqa: E402
from crimejob.models.forecasters import BASELINES  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PHL_FILE = "phl_shooting_victims_2015-01-01_2023-08-22.csv.gz"


def philadelphia(shape: tuple[int, int] = (60, 75)) -> GridHistory:
    """Philadelphia shooting incidents (dc_key) per Monday week, 2015-01-05 .. 2023-08-14."""
    raw = pd.read_csv(SHARED_DATA / PHL_FILE, usecols=["dc_key", "date_", "lat", "lng"])
    located = raw.drop_duplicates("dc_key").dropna(subset=["lat", "lng"])
    day = pd.to_datetime(located["date_"].str[:10])
    monday = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    monday = monday.to_numpy().astype("datetime64[D]")
    first, last = np.datetime64("2015-01-05"), np.datetime64("2023-08-14")
    weeks = np.arange(first, last + 1, 7)
    lat, lon = located["lat"].to_numpy(), located["lng"].to_numpy()
    row = np.clip(
        ((lat.max() - lat) / (lat.max() - lat.min()) * shape[0]).astype(int), 0, shape[0] - 1
    )
    col = np.clip(
        ((lon - lon.min()) / (lon.max() - lon.min()) * shape[1]).astype(int), 0, shape[1] - 1
    )
    index = (monday - first).astype(np.int64) // 7
    keep = (index >= 0) & (index < len(weeks))
    crime = np.zeros((len(weeks), *shape), np.float32)
    np.add.at(crime, (index[keep], row[keep], col[keep]), 1.0)
    weather = np.zeros((len(weeks), *shape, len(WEATHER_FEATURES)), np.float32)
    return GridHistory(weeks, crime, weather)


def la() -> GridHistory:
    """The LA development world (crimejob.devworld), 2019-2023."""
    from crimejob.devworld import la_world

    return la_world(seed=0, start=date(2019, 1, 7), weeks=260).history()


def run(name: str, history: GridHistory, weeks: int, models: list[str]) -> dict:
    start, end = history.week(len(history) - weeks), history.last_week
    began = time.perf_counter()
    result = run_backtest(history, start, end, models)
    print(f"\n== {name}: {history.crime.shape[1]} x {history.crime.shape[2]} cells, "
          f"{len(history)} weeks, mean {history.crime.sum(axis=(1, 2)).mean():.1f} incidents/week; "
          f"targets {start} .. {end} ({time.perf_counter() - began:.0f} s)")  # fmt: skip
    print(result.format_table())
    return result.to_json()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["philadelphia", "la", "both"], default="both")
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--models", default=",".join(BASELINES))
    parser.add_argument("--json", help="write every backtest's JSON here")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    out = {}
    if args.data in ("philadelphia", "both"):
        if not (SHARED_DATA / PHL_FILE).is_file():
            print(f"no {PHL_FILE} under {SHARED_DATA}: skipping Philadelphia")
        else:
            out["philadelphia"] = run("philadelphia shootings", philadelphia(), args.weeks, models)
    if args.data in ("la", "both"):
        out["la"] = run("LA development world", la(), args.weeks, models)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
