"""Per week, cell and crime category: incidents counted by their primary offense.

Runs inside each aggregation (same transaction and lock as ``grid.weekly``): the
mapping of :mod:`crimejob.categories` is synced into ``grid.offense_categories``,
the weeks being aggregated are deleted from ``grid.weekly_categories`` and
recounted, so reruns and late reports converge to the same rows.

Incidents, their week, cell, violence and exclusion come from ``raw.incidents``
exactly as the grid counts do (:data:`crimejob.aggregate.MODELLED_INCIDENTS`),
so the four violent categories sum to ``violent_count`` per cell and week. The
category needs what that view drops, the order of a legacy record's codes (Crm Cd
first), so the codes are ranked from ``raw.crime_records`` per incident.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.categories import CATEGORIES, RANK, VIOLENT_CATEGORIES, code_categories
from crimejob.db import connect
from crimejob.dbcopy import copy_frame

_OTHER_RANK = RANK["other"]
_VIOLENT_MAX_RANK = len(VIOLENT_CATEGORIES)
_CATEGORY_BY_RANK = "(ARRAY[" + ", ".join(f"'{c}'" for c in CATEGORIES) + "])"


def recount_sql(incident_filter: str) -> sa.TextClause:
    """The recount for weeks :first..:last, over incidents of ``raw.incidents`` that pass
    ``incident_filter`` (a SQL condition on its columns, the one the grid counts use)."""
    return sa.text(
        f"""
        WITH ranked AS (  -- per incident: best rank of any code, rank of the first code
            SELECT r.series, r.incident_id,
                   min(coalesce(c.rank, {_OTHER_RANK})) AS best_rank,
                   min(coalesce(c.rank, {_OTHER_RANK})) FILTER (WHERE u.pos = 1) AS first_rank
            FROM raw.crime_records AS r
            CROSS JOIN LATERAL unnest(r.offense_codes) WITH ORDINALITY AS u(code, pos)
            LEFT JOIN grid.offense_categories AS c
                   ON c.series = r.series AND c.code = u.code
            WHERE r.week_start >= :first  -- an incident's week is its earliest record's
            GROUP BY r.series, r.incident_id
        ),
        categorised AS (
            SELECT i.week_start, i.cell_id,
                   CASE WHEN i.series = 'legacy'
                             AND NOT (i.is_violent AND k.first_rank > {_VIOLENT_MAX_RANK})
                        THEN k.first_rank ELSE k.best_rank END AS rank
            FROM raw.incidents AS i
            JOIN ranked AS k USING (series, incident_id)
            WHERE i.week_start BETWEEN :first AND :last AND ({incident_filter})
        )
        INSERT INTO grid.weekly_categories (week_start, cell_id, category, incidents)
        SELECT week_start, cell_id, {_CATEGORY_BY_RANK}[rank], count(*)
        FROM categorised
        GROUP BY week_start, cell_id, rank
        """
    )


def sync_mapping(conn: Connection) -> int:
    """Replace grid.offense_categories with the mapping of crimejob.categories."""
    conn.execute(sa.text("DELETE FROM grid.offense_categories"))
    frame = code_categories()
    return copy_frame(conn, frame, "grid.offense_categories", list(frame.columns))


def refresh_category_counts(
    conn: Connection, first: date, last: date, incident_filter: str = "true"
) -> int:
    """Recount the weeks ``first..last`` by category; returns the rows written."""
    params = {"first": first, "last": last}
    sync_mapping(conn)
    conn.execute(
        sa.text("DELETE FROM grid.weekly_categories WHERE week_start BETWEEN :first AND :last"),
        params,
    )
    return conn.execute(recount_sql(incident_filter), params).rowcount


def load_category_counts(
    bind: Engine | Connection, first: date | None = None, last: date | None = None
) -> pd.DataFrame:
    """``bi.weekly_category_counts`` (week_start, cell_id, category, incidents), sparse."""
    where, params = "", {}
    if first is not None and last is not None:
        where, params = "WHERE week_start BETWEEN :first AND :last", {"first": first, "last": last}
    with connect(bind) as conn:
        frame = pd.read_sql_query(
            sa.text(
                "SELECT week_start, cell_id, category, incidents FROM bi.weekly_category_counts "
                f"{where} ORDER BY week_start, cell_id, category"
            ),
            conn,
            params=params,
        )
    frame["week_start"] = pd.to_datetime(frame["week_start"]).dt.date
    return frame
