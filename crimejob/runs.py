"""Runs recorded in ``ops.runs``: what ran, for which week, how long each step took."""

from __future__ import annotations

import json
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def start_run(
    engine: Engine, kind: str, week: date | None = None, params: dict | None = None
) -> int:
    with engine.begin() as conn:
        return conn.execute(
            sa.text(
                "INSERT INTO ops.runs (kind, week_start, params) "
                "VALUES (:k, :w, CAST(:p AS jsonb)) RETURNING run_id"
            ),
            {"k": kind, "w": week, "p": json.dumps(params or {}, default=str)},
        ).scalar_one()


def finish_run(
    engine: Engine,
    run_id: int,
    status: str,
    counts: dict | None = None,
    step_seconds: dict | None = None,
    message: str | None = None,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE ops.runs SET status = :s, counts = CAST(:c AS jsonb), "
                "step_seconds = CAST(:t AS jsonb), message = :m, finished_at = now() "
                "WHERE run_id = :id"
            ),
            {
                "s": status,
                "c": json.dumps(counts or {}, default=str),
                "t": json.dumps(step_seconds or {}),
                "m": message,
                "id": run_id,
            },
        )


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
