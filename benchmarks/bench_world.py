"""The LA development world: how fast it is generated and how it compares with real LA.

One command, prints two tables:

    .venv/bin/python benchmarks/bench_world.py [--seed 0]

1. Generation time of the weekly grids (and of one week's incident records)
   for 5, 7 and 10 years.
2. The world (seed 0, 2019-01-07 .. 2025-12-29) beside the real figures it is
   calibrated to (``../shared/data``; the real column needs that folder).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crimejob.devworld import la_world  # noqa: E402
from crimejob.devworld.calibrate import ERA_SAMPLE, near_repeat_excess  # noqa: E402
from crimejob.grid.cells import cell_of  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_VIOLENT = {2020: 28_503, 2021: 30_576, 2022: 31_216}
REAL_ALL = {2020: 199_365, 2021: 209_288, 2022: 234_060}


def top_share(counts: np.ndarray, share: float) -> float:
    ranked = np.sort(np.asarray(counts, np.float64).ravel())[::-1]
    return float(ranked[: int(round(share * ranked.size))].sum() / ranked.sum())


def speed_table() -> None:
    print("== generation time ==")
    print(f"{'weeks':>6} {'years':>6} {'grids s':>8} {'one week of records s':>22} {'records':>8}")
    for weeks in (261, 365, 522):
        started = time.perf_counter()
        world = la_world(seed=0, weeks=weeks)
        world.history()
        grids = time.perf_counter() - started
        started = time.perf_counter()
        records = world.records(world.start, world.start)
        one_week = time.perf_counter() - started
        print(f"{weeks:>6} {weeks / 52.18:>6.1f} {grids:>8.2f} {one_week:>22.3f} {len(records):>8}")


def comparison_table(seed: int) -> None:
    world = la_world(seed=seed, start=date(2019, 1, 7), weeks=365)
    history = world.history()
    years = pd.DatetimeIndex(history.week_starts + np.timedelta64(3, "D")).year.to_numpy()
    legacy = (years >= 2019) & (years <= 2022)
    rows: list[tuple[str, str, str]] = []
    rows.append(
        ("violent per cell-week, 2019-2022", f"{history.crime[legacy].mean():.3f}", "~0.13")
    )
    for year in REAL_VIOLENT:
        scale = 52.18 / (years == year).sum()
        rows.append(
            (
                f"violent / all incidents a week, {year}",
                f"{history.crime[years == year].sum() * scale / 52.18:.0f} / "
                f"{history.incidents[years == year].sum() * scale / 52.18:.0f}",
                f"{REAL_VIOLENT[year] / 52.18:.0f} / {REAL_ALL[year] / 52.18:.0f}",
            )
        )
    rows.append(("footprint cells (ever an incident)", f"{int(world.footprint.sum())}", "~1,465"))
    counts = history.incidents[legacy].sum(axis=0)
    violent = history.crime[legacy].sum(axis=0)
    rows.append(
        (
            "top 1% / 5% of cells: share of all incidents",
            f"{top_share(counts, 0.01):.1%} / {top_share(counts, 0.05):.1%}",
            "~22% / ~55% (README, all points)",
        )
    )
    rows.append(
        (
            "top 1% / 5% of cells: share of violent incidents",
            f"{top_share(violent, 0.01):.1%} / {top_share(violent, 0.05):.1%}",
            "-",
        )
    )
    if (SHARED_DATA / ERA_SAMPLE).exists():
        era = pd.read_csv(SHARED_DATA / ERA_SAMPLE)
        era = era[era["CrmCd.Desc"] != "TRAFFIC DR #"]
        cells, _ = cell_of(era["lat"], era["lon"])
        real = np.bincount(cells[cells >= 0], minlength=4500)
        old = la_world(seed=seed, start=date(2011, 1, 3), weeks=260)
        flat = np.where(old.cell_area == 8, 0, old.history().incidents.sum(axis=0)).ravel()
        rng = np.random.default_rng(0)
        draws = [
            np.bincount(rng.choice(4500, real.sum(), p=flat / flat.sum()), minlength=4500)
            for _ in range(5)
        ]
        rows.append(
            (
                f"same, a {real.sum():,}-point sample 2011-2015 (no West LA)",
                f"{np.mean([top_share(d, 0.01) for d in draws]):.1%} / "
                f"{np.mean([top_share(d, 0.05) for d in draws]):.1%}",
                f"{top_share(real, 0.01):.1%} / {top_share(real, 0.05):.1%} (random sample)",
            )
        )
    month = pd.DatetimeIndex(history.week_starts).month.to_numpy()
    weekly = history.crime.sum(axis=(1, 2))
    amp = world.params["seasonality"]["amplitude"]
    rows.append(
        (
            "July-August over December-January, violent",
            f"{weekly[np.isin(month, [7, 8])].mean() / weekly[np.isin(month, [12, 1])].mean():.3f}",
            f"~{(1 + amp) / (1 - amp):.3f} (harmonic {amp:.1%}, 2011-2015 sample months)",
        )
    )
    self_excess, ring_excess = near_repeat_excess(history.crime)
    rows.append(
        (
            "near-repeat: extra incidents per incident, 6 weeks",
            f"{self_excess.sum() + ring_excess.sum():.3f}",
            f"{world.params['near_repeat']['branching_ratio']:.3f} (Philadelphia, measured alike)",
        )
    )
    share = history.nibrs_share
    weeks = history.week_starts
    q4 = (weeks >= np.datetime64("2024-09-30")) & (weeks <= np.datetime64("2024-12-23"))
    q4_before = (weeks >= np.datetime64("2023-10-02")) & (weeks <= np.datetime64("2023-12-25"))
    nibrs_q4 = (history.incidents[q4].sum(axis=(1, 2)) * share[q4]).sum()
    rows.append(
        (
            "NIBRS Oct-Dec 2024 / all Oct-Dec 2023",
            f"{nibrs_q4 / history.incidents[q4_before].sum():.2f}",
            "0.60-0.75 of a normal month",
        )
    )
    rows.append(
        (
            "NIBRS share of incidents: 2023 / mid-2024 / 2025",
            f"{share[years == 2023].mean():.2f} / "
            f"{share[(month == 7) & (years == 2024)].mean():.2f} / "
            f"{share[years == 2025].mean():.2f}",
            "0 / both series / 1",
        )
    )
    records = world.records(date(2022, 6, 6), date(2022, 6, 26))
    delay = (records["reported_at"] - records["occurred_at"].dt.normalize()).dt.days
    rows.append(
        (
            "reported the same day: violent / other",
            f"{(delay[records['is_violent']] == 0).mean():.0%} / "
            f"{(delay[~records['is_violent']] == 0).mean():.0%}",
            "77% / 44% (2020 and 2022 random samples)",
        )
    )
    rows.append(("reported over 30 days late", f"{(delay > 30).mean():.1%}", "4.3%"))
    width = max(len(r[0]) for r in rows)
    print(f"\n== LA world (seed {seed}, 2019-2025) vs real LA ==")
    print(f"{'figure':<{width}}  {'world':>16}  real")
    for name, simulated, real_figure in rows:
        print(f"{name:<{width}}  {simulated:>16}  {real_figure}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    speed_table()
    comparison_table(args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
