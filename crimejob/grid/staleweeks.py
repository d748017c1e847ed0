"""Weeks loaded but not aggregated since: ``ops.stale_weeks``.

A load marks the weeks it changed in its own transaction; an aggregation clears
the weeks it rewrote in its own. A run killed between the two therefore leaves
its late-report weeks marked, and the next run aggregates them even though its
own load changes nothing (the records are already in).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

_MARK = sa.text(
    "INSERT INTO ops.stale_weeks (week_start) SELECT unnest(CAST(:weeks AS date[])) "
    "ON CONFLICT (week_start) DO UPDATE SET marked_at = now()"
)


def mark(conn: Connection, weeks: Iterable[date]) -> None:
    """Mark ``weeks`` stale inside the caller's (loading) transaction."""
    weeks = sorted(set(weeks))
    if weeks:
        conn.execute(_MARK, {"weeks": weeks})


def clear(conn: Connection, first: date, last: date) -> None:
    """The weeks first..last were aggregated (inside the aggregating transaction)."""
    conn.execute(
        sa.text("DELETE FROM ops.stale_weeks WHERE week_start BETWEEN :first AND :last"),
        {"first": first, "last": last},
    )


def clear_weeks(conn: Connection, weeks: Iterable[date]) -> None:
    """The ``weeks`` were aggregated (inside the aggregating transaction)."""
    conn.execute(
        sa.text("DELETE FROM ops.stale_weeks WHERE week_start = ANY(:weeks)"),
        {"weeks": sorted(set(weeks))},
    )


def pending(engine: Engine) -> set[date]:
    """Weeks marked stale and not aggregated since."""
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT week_start FROM ops.stale_weeks")).scalars())
