"""Benchmark what BI tools ask most: the latest forecast and one week's scoreboard,
with years of history in the tables.

    .venv/bin/python benchmarks/bench_bi.py [--weeks 260] [--models 6]

Fills ml.forecasts (weeks x models x 4,500 cells), ml.forecast_errors and
ml.forecast_scores on a fresh database of the embedded PostgreSQL, then times
each query as the crimejob_bi role (median of repeated runs, rows fetched into
Python), the server's own execution time (EXPLAIN ANALYZE) and the access path.
Target: milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

import sqlalchemy as sa
from scratch import scratch_database

FILL = """
INSERT INTO ml.forecasts (target_week, model_name, cell_id, model_version, predicted, rank,
                          is_production, history_through, horizon_weeks)
SELECT CAST(:first AS date) + 7 * k AS w, m, c,
       CASE WHEN m = 'rate_cnn' THEN '1' ELSE 'baseline' END,
       random() * 2, c + 1, m = 'rate_cnn', CAST(:first AS date) + 7 * (k - 3), 3
FROM generate_series(0, :weeks - 1) AS k,
     unnest(CAST(:models AS text[])) AS m,
     generate_series(0, 4499) AS c;

INSERT INTO ml.forecast_errors (target_week, model_name, cell_id, model_version, is_production,
                                predicted, actual, error)
SELECT target_week, model_name, cell_id, model_version, is_production, predicted, 1,
       predicted - 1
FROM ml.forecasts;

INSERT INTO ml.forecast_scores (target_week, model_name, model_version, is_production, mae,
                                rmse, poisson_deviance, hit_rate_1pct, pai_1pct, pei_1pct,
                                hit_rate_5pct, pai_5pct, pei_5pct, actual_total,
                                predicted_total, active_cells)
SELECT target_week, model_name, min(model_version), bool_or(is_production), avg(abs(error)),
       sqrt(avg(error * error)), 0.5, 0.1, 10, 0.5, 0.3, 6, 0.6, 4500, sum(predicted), 4500
FROM ml.forecast_errors GROUP BY target_week, model_name;
ANALYZE ml.forecasts; ANALYZE ml.forecast_errors; ANALYZE ml.forecast_scores;
"""

QUERIES = {
    "SELECT * FROM bi.forecast_latest": {},
    "SELECT * FROM bi.forecast_scores WHERE target_week = :w": "mid",
    "SELECT * FROM bi.forecast_errors WHERE target_week = :w AND is_production": "mid",
    "SELECT * FROM bi.forecasts WHERE target_week = :w AND model_name = 'mean_4w'": "mid",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=260)
    parser.add_argument("--models", type=int, default=6, help="production model + baselines")
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()

    with scratch_database("bi") as url:
        run(url, args)


def run(url: sa.URL, args: argparse.Namespace) -> None:
    owner = sa.create_engine(url)
    bi = sa.create_engine(url.set(username="crimejob_bi", password=None))
    models = ["rate_cnn", "last_week", "mean_4w", "mean_13w", "mean_52w", "ewma"][: args.models]
    first = date(2021, 1, 4)
    mid = date.fromordinal(first.toordinal() + 7 * (args.weeks // 2))
    try:
        started = time.perf_counter()
        with owner.begin() as conn:
            for statement in filter(str.strip, FILL.split(";")):
                conn.execute(
                    sa.text(statement), {"first": first, "weeks": args.weeks, "models": models}
                )
        fill_seconds = time.perf_counter() - started
        with owner.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM ml.forecasts")).scalar_one()
        print(
            f"filled {rows:,} forecast rows ({args.weeks} weeks x {len(models)} models "
            f"x 4,500 cells) and as many error rows in {fill_seconds:.1f}s\n"
        )
        print(
            f"{'query (as crimejob_bi)':<78}{'rows':>7}{'median ms':>11}{'p90 ms':>9}"
            f"{'server ms':>11}  access path"
        )
        for query, param in QUERIES.items():
            params = {"w": mid} if param == "mid" else {}
            times = []
            with bi.connect() as conn:
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    result = conn.execute(sa.text(query), params).all()
                    times.append((time.perf_counter() - t0) * 1000)
            with bi.connect() as conn:
                plan = [r[0] for r in conn.execute(sa.text("EXPLAIN ANALYZE " + query), params)]
            access = next((p.strip() for p in plan if "Index" in p), plan[0].strip())
            access = access.split("  (")[0].lstrip("-> ")[:48]
            server_ms = next(p for p in plan if p.startswith("Execution Time")).split(":")[1]
            times.sort()
            print(
                f"{query:<78}{len(result):>7}{statistics.median(times):>11.1f}"
                f"{times[int(0.9 * len(times)) - 1]:>9.1f}{float(server_ms.split()[0]):>11.2f}"
                f"  {access}"
            )
    finally:
        owner.dispose()
        bi.dispose()


if __name__ == "__main__":
    main()
