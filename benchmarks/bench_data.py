"""Crime data path at backfill scale: bulk CSV import, bare COPY, aggregation, API week; a table.

    .venv/bin/python benchmarks/bench_data.py [--rows 1000000] [--week-rows 4000] [--repeats 3]

Generates a realistic LAPD portal CSV export (legacy dataset, report dates over
five years 2020-2024, points clustered around the 21 LAPD area centres plus a
uniform background, ~2% at 0,0 and ~1% outside the grid, a realistic crm_cd
mix), then, in a throwaway database on the embedded PostgreSQL (or the server
in CRIMEJOB_DATABASE_URL):

1. a bare ``COPY`` of the file into an unindexed table of text columns, and
   ``ingest_crime_csv`` of the same file into the empty table (the target: at most 3x the
   bare COPY), taken in turns ``--repeats`` times (3): the ratio is of the medians, as
   one reading of either swings by a third with the load of a shared machine; each
   starts after a CHECKPOINT, so neither pays for writing out the other's pages;
2. reading every imported record's payload back (built on read from the stored line
   since migration 280);
3. the same import again (every record unchanged);
4. ``aggregate_weeks`` over every week the records fall in (target: under 60 s);
5. ``ingest_crime_api`` of one week served by the fake SODA server over HTTP.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from scratch import WORK_DIR, scratch_database  # also puts the project on sys.path

from crimejob.ingest.crime_ingest import ingest_crime_api, ingest_crime_csv  # noqa: E402
from tests.fakes.soda import (  # noqa: E402
    LEGACY_ID,
    PORTAL_HEADER,
    legacy_frame,
    make_legacy_records,
    soda_server,
    write_portal_csv,
)


def bare_copy(engine: sa.Engine, path: Path) -> int:
    """COPY the file as it is into an unindexed table of text columns (made anew)."""
    columns = ", ".join(f'"{name}" text' for name in PORTAL_HEADER.values())
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bare_copy")
        conn.exec_driver_sql(f"CREATE TABLE bare_copy ({columns})")
        cursor = conn.connection.driver_connection.cursor()
        with path.open() as handle:
            cursor.copy_expert("COPY bare_copy FROM STDIN WITH (FORMAT csv, HEADER true)", handle)
        rows = cursor.rowcount
        cursor.close()
    return rows


def checkpoint(engine: sa.Engine) -> bool:
    """A CHECKPOINT, so that the next step starts with no dirty pages or WAL of the one
    before it to write out (the bare COPY and the import each write over 300 MB, and a
    checkpoint that falls inside one of them costs it a second); False where the role may
    not (superusers and pg_checkpoint members may)."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")
    except sa.exc.DBAPIError:
        return False
    return True


class CpuClock:
    """CPU seconds (user + system) spent since the last lap by this process and the child
    processes it has reaped (the client: the import maps half a large export in a forked
    child) and by the server processes connected to the database, read from /proc: the server
    part is 0 when the server is not on this machine. Parallel workers a statement starts
    and ends between two laps (an index build's) are not counted: they are gone before
    the lap looks."""

    @dataclass
    class Lap:
        client: float
        server: float

        @property
        def total(self) -> float:
            return self.client + self.server

        def __str__(self) -> str:
            if not self.server:
                return f"CPU: client {self.client:.1f} s (server not on this machine)"
            return f"CPU: server {self.server:.1f} s, client {self.client:.1f} s"

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.client, self.server = self._client(), self._server()

    @staticmethod
    def _client() -> float:
        spent = os.times()
        return spent.user + spent.system + spent.children_user + spent.children_system

    def _server(self) -> dict[int, float]:
        with self.engine.connect() as conn:
            pids = conn.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            ).scalars()
            seconds = {}
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return seconds

    def lap(self) -> CpuClock.Lap:
        client, server = self._client(), self._server()
        spent = sum(s - self.server.get(pid, 0.0) for pid, s in server.items())
        lap = self.Lap(client - self.client, spent)
        self.client, self.server = client, server
        return lap


def import_steps(engine: sa.Engine) -> dict[str, float]:
    """Where the last import's time went, as ingest_crime_csv recorded it."""
    with engine.connect() as conn:
        steps = conn.execute(
            sa.text("SELECT step_seconds FROM ops.runs ORDER BY run_id DESC LIMIT 1")
        ).scalar_one()
    order = [
        "find_and_map", "copy", "encode_beside_copy", "merge", "build_indexes",
        "rejects",
    ]  # fmt: skip
    return {k: steps[k] for k in order if k in steps}


def payload_alone(engine: sa.Engine) -> float:
    """Seconds to build every row's jsonb payload from the bare table, nothing stored: what
    the import cost when it stored a jsonb payload per row (migration 240 stopped that)."""
    fields = ", ".join(
        f"nullif(b.\"{display}\", '') AS {field}" for field, display in PORTAL_HEADER.items()
    )
    sql = (
        "SELECT count(jsonb_strip_nulls(to_jsonb(p))) FROM bare_copy AS b "
        f"CROSS JOIN LATERAL (SELECT {fields}) AS p"
    )
    with engine.connect() as conn:
        started = time.perf_counter()
        conn.exec_driver_sql(sql).scalar_one()
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the CSV export")
    parser.add_argument("--week-rows", type=int, default=4_000, help="records in the API week")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=3, help="bare COPYs and imports, taken in turns"
    )
    args = parser.parse_args(argv)

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    csv_path = WORK_DIR / f"crime_export_{args.rows}.csv"
    results: list[tuple[str, str, str]] = []

    started = time.perf_counter()
    frame = legacy_frame(
        args.rows, date(2020, 1, 1), date(2024, 12, 29), seed=args.seed,
        missing_location=0.02, outside_grid=0.01,
    )  # fmt: skip
    write_portal_csv(frame, csv_path)
    del frame
    size_mb = csv_path.stat().st_size / 1e6
    results.append(
        ("generate portal CSV", f"{time.perf_counter() - started:.1f} s",
         f"{args.rows:,} rows, {size_mb:.0f} MB")
    )  # fmt: skip

    with scratch_database("data") as url:
        measure(url, args, csv_path, results)
    print_results(results)
    return 0


def measure(url: sa.URL, args: argparse.Namespace, csv_path: Path, results: list) -> None:
    engine = sa.create_engine(url)
    try:
        bare, imports = [], []
        for _ in range(args.repeats):
            with engine.begin() as conn:  # the import's case: an empty table, no rejects
                conn.exec_driver_sql("TRUNCATE raw.crime_records, ops.rejects")
            checkpointed = checkpoint(engine)
            cpu = CpuClock(engine)
            started = time.perf_counter()
            copied = bare_copy(engine, csv_path)
            bare.append(time.perf_counter() - started)
            checkpoint(engine)
            bare_cpu = cpu.lap()
            started = time.perf_counter()
            report = ingest_crime_csv(engine, csv_path)
            imports.append(time.perf_counter() - started)
            import_cpu = cpu.lap()
        bare_s, import_s = statistics.median(bare), statistics.median(imports)
        if not checkpointed:
            results.append(
                ("(no CHECKPOINT)", "", "not permitted on this server: a turn may pay for "
                 "writing out the one before")
            )  # fmt: skip
        results.append(
            ("bare COPY (unindexed, text)", f"{bare_s:.1f} s",
             f"median of {_seconds(bare)}; {copied / bare_s:,.0f} rows/s; last: {bare_cpu}")
        )  # fmt: skip
        results.append(
            ("ingest_crime_csv", f"{import_s:.1f} s",
             f"median of {_seconds(imports)}; {args.rows / import_s:,.0f} rows/s; "
             f"loaded {report.loaded:,}, rejected {report.rejected_total:,}")
        )  # fmt: skip
        ratios = ", ".join(f"{i / b:.2f}" for b, i in zip(bare, imports, strict=True))
        results.append(
            ("  ratio to bare COPY", f"{import_s / bare_s:.2f} x",
             f"of the medians; target: at most 3 x (each turn: {ratios})")
        )  # fmt: skip
        results.append(("  CPU of the last import", "", str(import_cpu)))
        if bare_cpu.server and import_cpu.server:
            results.append(
                ("  CPU ratio to bare COPY",
                 f"{import_cpu.server / bare_cpu.server:.2f} x",
                 f"server CPU, last turn; with the client's: "
                 f"{import_cpu.total / bare_cpu.total:.2f} x")
            )  # fmt: skip
        for step, seconds in import_steps(engine).items():
            detail = "last import, from ops.runs.step_seconds"
            if step.endswith("_beside_map") or step.endswith("_beside_copy"):
                detail += " (in a thread beside the step before: not in the sum)"
            results.append((f"  step {step}", f"{seconds:.1f} s", detail))
        payload_s = payload_alone(engine)
        results.append(
            ("  jsonb payloads alone", f"{payload_s:.1f} s",
             f"{payload_s / bare_s:.2f} x the bare COPY: building the same payloads "
             "from bare_copy, nothing written (no longer part of the import)")
        )  # fmt: skip
        started = time.perf_counter()
        with engine.connect() as conn:
            read = conn.exec_driver_sql(
                "SELECT count(payload) FROM raw.crime_record_payloads"
            ).scalar_one()
        read_s = time.perf_counter() - started
        results.append(
            ("  payloads read back", f"{read_s:.1f} s",
             f"{read:,} payloads built on read by raw.crime_record_payloads")
        )  # fmt: skip

        started = time.perf_counter()
        again = ingest_crime_csv(engine, csv_path)
        rerun_s = time.perf_counter() - started
        results.append(
            ("ingest_crime_csv again", f"{rerun_s:.1f} s",
             f"loaded {again.loaded}, updated {again.updated}, unchanged {again.unchanged:,}")
        )  # fmt: skip

        from crimejob.grid.aggregate import aggregate_weeks

        with engine.connect() as conn:
            first, last = conn.execute(
                sa.text(
                    "SELECT min(week_start), max(week_start) FROM raw.crime_records "
                    "WHERE week_start >= '2020-01-01'"
                )
            ).one()
        started = time.perf_counter()
        aggregate_weeks(engine, first, last)
        agg_s = time.perf_counter() - started
        weeks = (last - first).days // 7 + 1
        results.append(
            ("aggregate_weeks", f"{agg_s:.1f} s",
             f"{weeks} weeks {first}..{last}; target: under 60 s")
        )  # fmt: skip

        week = (date(2025, 1, 6), date(2025, 1, 12))
        records = make_legacy_records(args.week_rows, *week, seed=args.seed + 1,
                                      serial_start=90000, missing_location=0.02)  # fmt: skip
        with soda_server({LEGACY_ID: records}):
            started = time.perf_counter()
            api = ingest_crime_api(engine, *week, datasets=[LEGACY_ID])
            api_s = time.perf_counter() - started
        results.append(
            ("ingest_crime_api, one week", f"{api_s:.2f} s",
             f"{len(records) / api_s:,.0f} records/s; loaded {api.loaded:,}, "
             f"rejected {api.rejected_total}")
        )  # fmt: skip
    finally:
        engine.dispose()


def _seconds(values: list[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values) + " s"


def print_results(results: list) -> None:
    width = max(len(r[0]) for r in results)
    print(f"\n{'step':<{width}}  {'time':>10}  detail")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 40}")
    for step, elapsed, detail in results:
        print(f"{step:<{width}}  {elapsed:>10}  {detail}")


if __name__ == "__main__":
    sys.exit(main())
