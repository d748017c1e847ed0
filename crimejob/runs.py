"""Runs recorded in ``ops.runs``: what ran, for which week, how long each step took.

A run killed outright (``kill -9``, a lost worker) cannot write how it ended, so
every run holds a PostgreSQL advisory lock from start to finish on one connection
its process keeps open (:class:`_Liveness`). The server drops the lock with the
connection when the process dies; the next run to start marks every ``running``
row whose lock is gone ``abandoned``. Works across machines, needs no clock.

A weekly run that Airflow runs is one row too, written by each of its tasks in turn
(:func:`airflow_run`, :func:`record_step`): between two tasks no process holds
its lock, so the sweep leaves it to Airflow, which watches its own tasks.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

# advisory locks (key, run_id) held by a live run; 774411/774412 are db.py's and aggregate's
RUN_LOCK_KEY = 774413
# a transaction lock (key, hash of the Airflow run) while the run's row is found or made
AIRFLOW_RUN_LOCK_KEY = 774415
AIRFLOW_RUN_PARAM = "airflow_run_id"
ABANDONED_MESSAGE = "its process ended without finishing the run (killed or lost)"

_ABANDON = sa.text(
    "UPDATE ops.runs AS r SET status = 'abandoned', finished_at = now(), message = :m "
    "WHERE r.status = 'running' AND r.params->>'airflow_run_id' IS NULL AND NOT EXISTS ("
    "  SELECT 1 FROM pg_locks AS l WHERE l.locktype = 'advisory' AND l.granted "
    "  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "  AND l.classid = :key AND l.objid::bigint = (r.run_id & 2147483647) AND l.objsubid = 2)"
)


class _Liveness:
    """One autocommit connection per process and database that holds each live run's lock."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._connections: dict[str, object] = {}

    def _connection(self, engine: Engine):
        key = engine.url.render_as_string(hide_password=False)
        conn = self._connections.get(key)
        if conn is None or conn.closed:
            # its own DBAPI connection, outside the engine's pool (never handed to others)
            args, kwargs = engine.dialect.create_connect_args(engine.url)
            conn = engine.dialect.dbapi.connect(*args, **kwargs)
            conn.autocommit = True
            self._connections[key] = conn
        return conn

    def _run(self, engine: Engine, sql: str, run_id: int) -> None:
        with self._guard:
            cursor = self._connection(engine).cursor()
            try:
                cursor.execute(sql, (RUN_LOCK_KEY, run_id & 0x7FFFFFFF))
                cursor.fetchall()
            finally:
                cursor.close()

    def hold(self, engine: Engine, run_id: int) -> None:
        self._run(engine, "SELECT pg_advisory_lock(%s, %s)", run_id)

    def release(self, engine: Engine, run_id: int) -> None:
        try:
            self._run(engine, "SELECT pg_advisory_unlock(%s, %s)", run_id)
        except Exception:  # a dead connection has released it already
            pass


_LIVENESS = _Liveness()


def mark_abandoned(engine: Engine) -> int:
    """Mark 'running' rows whose process is gone 'abandoned'; returns how many."""
    with engine.begin() as conn:
        return conn.execute(_ABANDON, {"m": ABANDONED_MESSAGE, "key": RUN_LOCK_KEY}).rowcount


def start_run(
    engine: Engine, kind: str, week: date | None = None, params: dict | None = None
) -> int:
    """Hold the new run's liveness lock, insert its 'running' row, and settle runs
    killed earlier. The lock comes first, so no sweep sees the row without it."""
    with engine.begin() as conn:
        run_id = conn.execute(
            sa.text("SELECT nextval(pg_get_serial_sequence('ops.runs', 'run_id'))")
        ).scalar_one()
    _LIVENESS.hold(engine, run_id)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ops.runs (run_id, kind, week_start, params) "
                "VALUES (:id, :k, :w, CAST(:p AS jsonb))"
            ),
            {"id": run_id, "k": kind, "w": week, "p": json.dumps(params or {}, default=str)},
        )
    mark_abandoned(engine)
    return run_id


def airflow_run(engine: Engine, airflow_run_id: str, week: date, params: dict) -> int:
    """The ``ops.runs`` row of the weekly run Airflow knows as ``airflow_run_id``, made by
    the first of its tasks to start (the two extracts start together: they take turns
    here), and set ``running`` again by every task (a retried or cleared task resumes a
    run that had failed)."""
    params = {**params, AIRFLOW_RUN_PARAM: airflow_run_id}
    with engine.begin() as conn:
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key, hashtext(:run))"),
            {"key": AIRFLOW_RUN_LOCK_KEY, "run": airflow_run_id},
        )
        run_id = conn.execute(
            sa.text(
                "UPDATE ops.runs SET status = 'running', finished_at = NULL, message = NULL "
                "WHERE kind = 'weekly' AND params->>'airflow_run_id' = :run RETURNING run_id"
            ),
            {"run": airflow_run_id},
        ).scalar()
        if run_id is None:
            run_id = conn.execute(
                sa.text(
                    "INSERT INTO ops.runs (kind, week_start, params) "
                    "VALUES ('weekly', :w, CAST(:p AS jsonb)) RETURNING run_id"
                ),
                {"w": week, "p": json.dumps(params, default=str)},
            ).scalar_one()
    mark_abandoned(engine)
    return run_id


def record_step(
    engine: Engine, run_id: int, name: str, seconds: float, counts: dict | None = None
) -> None:
    """Add one finished step to its run: its seconds, and what it counted (its result)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE ops.runs SET "
                "counts = counts || jsonb_build_object(CAST(:n AS text), CAST(:c AS jsonb)), "
                "step_seconds = step_seconds || jsonb_build_object(CAST(:n AS text), :t) "
                "WHERE run_id = :id"
            ),
            {"n": name, "c": json.dumps(counts or {}, default=str), "t": seconds, "id": run_id},
        )


def finish_run(
    engine: Engine,
    run_id: int,
    status: str,
    counts: dict | None = None,
    step_seconds: dict | None = None,
    message: str | None = None,
) -> None:
    """End the run with ``status``; ``counts`` and ``step_seconds`` are added to those its
    steps recorded."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE ops.runs SET status = :s, counts = counts || CAST(:c AS jsonb), "
                "step_seconds = step_seconds || CAST(:t AS jsonb), message = :m, "
                "finished_at = now() WHERE run_id = :id"
            ),
            {
                "s": status,
                "c": json.dumps(counts or {}, default=str),
                "t": json.dumps(step_seconds or {}),
                "m": message,
                "id": run_id,
            },
        )
    _LIVENESS.release(engine, run_id)


def run_counts(engine: Engine, run_id: int) -> dict[str, Any]:
    """What the run's steps recorded so far, by step name."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT counts FROM ops.runs WHERE run_id = :id"), {"id": run_id}
        ).scalar_one()


def completed_weeks(engine: Engine, kind: str = "weekly") -> set[date]:
    """Weeks with a succeeded run whose forecast is still in place."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT DISTINCT r.week_start FROM ops.runs AS r "
                "WHERE r.kind = :k AND r.status = 'succeeded' AND r.week_start IS NOT NULL "
                "AND EXISTS (SELECT 1 FROM ml.forecasts AS f "
                "            WHERE f.target_week = r.week_start + 7 AND f.is_production)"
            ),
            {"k": kind},
        )
        return {r.week_start for r in rows}


WEEK_LOCK_KEY = 774414


@contextmanager
def week_lock(engine: Engine, week: date) -> Iterator[None]:
    """Serialise runs of one week: an advisory lock on a connection of its own, held
    until the block ends (or the process dies). A second run of the week waits for
    the first and then finds its work done (every step is idempotent)."""
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    conn = engine.dialect.dbapi.connect(*args, **kwargs)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", (WEEK_LOCK_KEY, week.toordinal()))
        yield
    finally:
        conn.close()  # closing the session releases the lock


@contextmanager
def track_run(engine: Engine, kind: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Record a command in ops.runs: 'running' now, then 'succeeded' or 'failed' with a message.

    The row is written in its own transactions (above), so a
    failure that rolls the work back still leaves its record. Put counts into
    the yielded dict.
    """
    run_id = start_run(engine, kind, params=params)
    counts: dict[str, Any] = {}
    began = time.perf_counter()
    try:
        yield counts
    except BaseException as exc:
        finish_run(
            engine, run_id, "failed", counts, {kind: round(time.perf_counter() - began, 3)},
            f"{type(exc).__name__}: {exc}"[:2000],
        )  # fmt: skip
        raise
    finish_run(engine, run_id, "succeeded", counts, {kind: round(time.perf_counter() - began, 3)})
