"""Per week, cell and crime category: incidents counted by their primary offense.

Runs inside each aggregation (same transaction and lock as ``grid.weekly``): the
mapping of :mod:`crimejob.grid.categories` is synced into ``grid.offense_categories``,
the weeks being aggregated are deleted from ``grid.weekly_categories`` and
recounted, so reruns and late reports converge to the same rows.

Incidents, their week, cell, violence and exclusion come from ``raw.incidents``
exactly as the grid counts do (:data:`crimejob.grid.aggregate.MODELLED_INCIDENTS`),
so the four violent categories sum to ``violent_count`` per cell and week. The
category needs what that view drops, the order of a legacy record's codes (Crm Cd
first), so the codes are ranked from ``raw.crime_records`` per incident.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.db import connect
from crimejob.dbcopy import copy_frame
from crimejob.grid.categories import CATEGORIES, RANK, VIOLENT_CATEGORIES, code_categories

_OTHER_RANK = RANK["other"]
_VIOLENT_MAX_RANK = len(VIOLENT_CATEGORIES)
_CATEGORY_BY_RANK = "(ARRAY[" + ", ".join(f"'{c}'" for c in CATEGORIES) + "])"


#: Up to this many weeks, only the incidents with a record in them are looked up (by the
#: index on (series, incident_id)); more, and one grouping of the whole table is quicker.
#: The threshold the grid counts use (crimejob.grid.aggregate.FEW_WEEKS).
FEW_WEEKS = 26

_RANK_COLUMNS = f"""
    min(coalesce(c.rank, {_OTHER_RANK})) AS best_rank,
    min(coalesce(c.rank, {_OTHER_RANK})) FILTER (WHERE u.pos = 1) AS first_rank"""
_CODES = """
    CROSS JOIN LATERAL unnest(r.offense_codes) WITH ORDINALITY AS u(code, pos)
    LEFT JOIN grid.offense_categories AS c ON c.series = r.series AND c.code = u.code"""
_CATEGORY = f"""
    CASE WHEN i.series = 'legacy' AND NOT (i.is_violent AND k.first_rank > {_VIOLENT_MAX_RANK})
         THEN k.first_rank ELSE k.best_rank END"""


def recount_sql(
    incident_filter: str, few_weeks: bool = False, week_set: bool = False
) -> sa.TextClause:
    """The recount for weeks :first..:last, over incidents of ``raw.incidents`` that pass
    ``incident_filter`` (a SQL condition on its columns, the one the grid counts use).

    Per incident: the best rank of any of its codes and the rank of its first code
    (a legacy record's Crm Cd). ``few_weeks``: only incidents with a record in the weeks
    are ranked and looked up, as the grid counts do for a weekly run's window.
    ``week_set``: the weeks ``:weeks`` (an array; ``:first`` its oldest) instead of the
    range: an incident is counted in its one week, so the set counts what its ranges
    each count.
    """
    if few_weeks:
        ranked = f"""
        touched AS (
            SELECT DISTINCT series, incident_id FROM raw.crime_records
            WHERE week_start BETWEEN :first AND :last
        ),
        ranked AS (
            SELECT r.series, r.incident_id, {_RANK_COLUMNS}
            FROM touched AS t
            JOIN raw.crime_records AS r
              ON r.series = t.series AND r.incident_id = t.incident_id {_CODES}
            GROUP BY r.series, r.incident_id
        ),
        categorised AS (
            SELECT i.week_start, i.cell_id, {_CATEGORY} AS rank
            FROM ranked AS k
            CROSS JOIN LATERAL (
                SELECT * FROM raw.incidents AS v
                WHERE v.series = k.series AND v.incident_id = k.incident_id
                OFFSET 0
            ) AS i
            WHERE i.week_start BETWEEN :first AND :last AND ({incident_filter})
        )"""
    else:
        ranked = f"""
        ranked AS (
            SELECT r.series, r.incident_id, {_RANK_COLUMNS}
            FROM raw.crime_records AS r {_CODES}
            WHERE r.week_start >= :first  -- an incident's week is its earliest record's
            GROUP BY r.series, r.incident_id
        ),
        categorised AS (
            SELECT i.week_start, i.cell_id, {_CATEGORY} AS rank
            FROM raw.incidents AS i
            JOIN ranked AS k USING (series, incident_id)
            WHERE i.week_start BETWEEN :first AND :last AND ({incident_filter})
        )"""
    if week_set:
        ranked = ranked.replace("BETWEEN :first AND :last", "= ANY(:weeks)")
    return sa.text(
        f"""
        WITH {ranked}
        INSERT INTO grid.weekly_categories (week_start, cell_id, category, incidents)
        SELECT week_start, cell_id, {_CATEGORY_BY_RANK}[rank], count(*)
        FROM categorised
        GROUP BY week_start, cell_id, rank
        """
    )


def sync_mapping(conn: Connection) -> int:
    """Replace grid.offense_categories with the mapping of crimejob.grid.categories."""
    conn.execute(sa.text("DELETE FROM grid.offense_categories"))
    frame = code_categories()
    return copy_frame(conn, frame, "grid.offense_categories", list(frame.columns))


def refresh_category_counts(
    conn: Connection, first: date, last: date, incident_filter: str = "true", sync: bool = True
) -> int:
    """Recount the weeks ``first..last`` by category; returns the rows written.
    ``sync=False``: the mapping was synced earlier in the transaction."""
    params = {"first": first, "last": last}
    if sync:
        sync_mapping(conn)
    conn.execute(
        sa.text("DELETE FROM grid.weekly_categories WHERE week_start BETWEEN :first AND :last"),
        params,
    )
    few = (last - first).days // 7 + 1 <= FEW_WEEKS
    return conn.execute(recount_sql(incident_filter, few), params).rowcount


def refresh_category_count_weeks(
    conn: Connection, weeks: list[date], incident_filter: str = "true", sync: bool = True
) -> int:
    """:func:`refresh_category_counts` for a set of weeks (several ranges) in one recount;
    returns the rows written."""
    if sync:
        sync_mapping(conn)
    params = {"weeks": list(weeks), "first": min(weeks)}
    conn.execute(
        sa.text("DELETE FROM grid.weekly_categories WHERE week_start = ANY(:weeks)"), params
    )
    few = len(weeks) <= FEW_WEEKS
    return conn.execute(recount_sql(incident_filter, few, week_set=True), params).rowcount


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
