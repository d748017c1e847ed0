"""Benchmark the weekly job on CPU: one run with fine-tuning (per-step times) and a backfill.

    .venv/bin/python benchmarks/bench_weekly.py [--weeks 52] [--per-week 4000]

Serves synthetic LAPD records (legacy format, LA-shaped clustering) and NCEI
daily summaries from local servers speaking the real protocols, on a fresh
database of the embedded PostgreSQL, and runs the real job:

1. the first weekly run (bootstraps the history and retrains the model),
2. the next week's run (the normal case: fine-tune), timed step by step,
3. a backfill of ``--weeks`` further weeks (fine-tune each week, retrain by
   policy): weeks per minute.

Prints a table; targets: a fine-tune weekly run under 2 minutes here.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from scratch import scratch_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=52, help="backfill length")
    parser.add_argument("--per-week", type=int, default=4000, help="records reported per week")
    parser.add_argument("--history-weeks", type=int, default=104)
    parser.add_argument(
        "--profile", metavar="FILE", help="write a cProfile of the backfill to FILE (pstats)"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="crimejob-bench-weekly-"))
    os.environ.update(
        CRIMEJOB_DATA_DIR=str(workdir / "data"),
        CRIMEJOB_MODEL_DIR=str(workdir / "models"),
        CRIMEJOB_HISTORY_WEEKS=str(args.history_weeks),
    )
    from crimejob.db import get_engine
    from crimejob.job.pipeline import backfill, run_week
    from tests.fakes.ncei import ncei_server
    from tests.fakes.soda import LEGACY_ID, make_legacy_records, soda_server

    first_week = date(2022, 1, 3)  # legacy dataset era, Monday
    first_report = first_week - timedelta(weeks=args.history_weeks + 1)
    last_week = first_week + timedelta(weeks=args.weeks + 1)
    total_weeks = (last_week - first_report).days // 7 + 1
    print(f"generating {args.per_week * total_weeks:,} records over {total_weeks} weeks ...")
    records = make_legacy_records(
        args.per_week * total_weeks, first_report, last_week + timedelta(days=6), seed=11
    )
    rows = []
    with (
        scratch_database("weekly") as url,
        soda_server({LEGACY_ID: records}),
        ncei_server(start=first_report, end=last_week + timedelta(days=6)) as ncei,
    ):
        os.environ["CRIMEJOB_NCEI_URL"] = ncei.base_url
        engine = get_engine(url.render_as_string(hide_password=False))
        started = time.perf_counter()
        bootstrap = run_week(engine, first_week)
        rows.append(("first run (bootstrap + retrain)", bootstrap, time.perf_counter() - started))
        started = time.perf_counter()
        weekly = run_week(engine, first_week + timedelta(weeks=1))
        rows.append(("weekly run (fine-tune)", weekly, time.perf_counter() - started))
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started, cpu_started = time.perf_counter(), time.process_time()
        filled = backfill(
            engine, first_week + timedelta(weeks=2), first_week + timedelta(weeks=args.weeks + 1)
        )
        backfill_seconds = time.perf_counter() - started
        backfill_cpu = time.process_time() - cpu_started  # this process, all its threads
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        backfill_steps = _backfill_step_seconds(engine, filled.ran)
        productions = _productions(engine)
        engine.dispose()

    steps = list(weekly.step_seconds)
    print()
    print(f"{'run':<34}{'total s':>9}" + "".join(f"{s[:12]:>14}" for s in steps))
    for label, result, seconds in rows:
        print(
            f"{label:<34}{seconds:>9.1f}"
            + "".join(f"{result.step_seconds.get(s, 0.0):>14.2f}" for s in steps)
        )
    print()
    print(f"{'backfill':<34}{'weeks':>9}{'seconds':>14}{'weeks/min':>14}{'CPU s':>14}")
    print(
        f"{'':<34}{len(filled.ran):>9}{backfill_seconds:>14.1f}"
        f"{len(filled.ran) / (backfill_seconds / 60):>14.2f}{backfill_cpu:>14.1f}"
    )
    print(
        f"{'backfill week (mean)':<34}{backfill_seconds / max(len(filled.ran), 1):>9.1f}"
        + "".join(f"{backfill_steps.get(s, 0.0):>14.2f}" for s in steps)
    )
    print()
    print("production by target week:", productions)
    print("model card at the backfill's end:", filled.cards)
    print("train step of the weekly run:", weekly.steps["train"].summary())


def _productions(engine) -> str:
    """Which model production forecast each target week with (where the card comes from)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT DISTINCT target_week, model_name, model_version FROM ml.forecasts "
                "WHERE is_production ORDER BY target_week"
            )
        ).all()
    return ", ".join(f"{r.target_week:%m-%d} {r.model_name} {r.model_version}" for r in rows)


def _backfill_step_seconds(engine, weeks) -> dict[str, float]:
    """Each step's mean seconds over the backfill's runs (``ops.runs``)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT step_seconds FROM ops.runs WHERE kind = 'weekly' "
                "AND status = 'succeeded' AND week_start = ANY(:weeks)"
            ),
            {"weeks": list(weeks)},
        ).scalars()
        per_run = list(rows)
    steps: dict[str, list[float]] = {}
    for run in per_run:
        for name, seconds in run.items():
            steps.setdefault(name, []).append(float(seconds))
    return {name: sum(v) / len(v) for name, v in steps.items()}


if __name__ == "__main__":
    main()
