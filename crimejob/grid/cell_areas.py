"""Which LAPD division each grid cell belongs to, learned from the records themselves.

LAPD stamps every record with the area (one of its 21 divisions) that handled it.
A cell's division is the area most of its incidents carry; a border cell whose
incidents split between two divisions goes to the larger share (the lower area
code on a tie), and ``share`` says how clean the assignment is. Cells where LAPD
has never recorded an incident (ocean, mountains, Santa Monica, Beverly Hills...)
belong to no division and have no row.

Kept cheap enough for every aggregation: the weeks being aggregated are recounted
into ``grid.weekly_areas`` (one row per week, cell and area; replaced like the grid
rows, so reruns and late reports converge), and ``grid.cell_areas`` is rebuilt from
that small table, never from the raw records of every week.

The area is read from the record's source fields (``area``, ``area_name``: the
same names in the legacy and NIBRS datasets and in the portal CSV export), so the
mapping does not depend on how the ingest maps records.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.db import connect


# A field of the record as the source published it, as text: from the API's payload, or
# from a CSV-imported record's line (``csv_line``, migration 280; ``csv_fields`` of older
# imports, migration 240; both named by its layout),
# without building the payload. A code that is not a small positive integer is ignored.
def _source_field(name: str) -> str:
    return (
        f"coalesce(r.payload ->> '{name}', r.csv_fields[array_position(l.keys, '{name}')], "
        f"raw.crime_csv_field(r.csv_line, array_position(l.keys, '{name}')))"
    )


_AREA_CODE_SQL = (
    rf"CASE WHEN ({_source_field('area')}) ~ '^\s*0*[1-9][0-9]{{0,2}}\s*$' "
    rf"THEN trim({_source_field('area')})::integer END"
)
_AREA_NAME_SQL = f"nullif(trim({_source_field('area_name')}), '')"

# The incidents of each division per cell and week, recounted for one or more ranges of
# weeks in one statement: each record joined to its week's range (``span``), incidents
# grouped per range, so each range counts what it would alone (an incident with records
# in two ranges is one in each).
_RECOUNT_SPANS = sa.text(
    f"""
    INSERT INTO grid.weekly_areas (week_start, cell_id, area_code, area_name, incidents)
    SELECT week_start, cell_id, area_code, coalesce(min(area_name), 'Area ' || area_code),
           count(*)
    FROM (
        SELECT min(r.week_start) AS week_start, min(r.cell_id) AS cell_id,
               min({_AREA_CODE_SQL}) AS area_code, min({_AREA_NAME_SQL}) AS area_name
        FROM raw.crime_records AS r
        JOIN unnest(CAST(:weeks AS date[]), CAST(:spans AS integer[])) AS s(week_start, span)
          ON s.week_start = r.week_start
        LEFT JOIN raw.crime_csv_layouts AS l ON l.layout_id = r.csv_layout
        GROUP BY s.span, r.source, r.incident_id
    ) AS incident
    WHERE area_code IS NOT NULL
    GROUP BY week_start, cell_id, area_code
    """
)

_REBUILD = sa.text(
    """
    WITH per_area AS (
        SELECT cell_id, area_code, sum(incidents)::integer AS incidents
        FROM grid.weekly_areas
        GROUP BY cell_id, area_code
    ),
    names AS (  -- the spelling most incidents of the code carry, citywide
        SELECT DISTINCT ON (area_code) area_code, area_name
        FROM grid.weekly_areas
        GROUP BY area_code, area_name
        ORDER BY area_code, sum(incidents) DESC, area_name
    ),
    ranked AS (
        SELECT cell_id, area_code, incidents,
               incidents::float8 / sum(incidents) OVER (PARTITION BY cell_id) AS share,
               row_number() OVER (PARTITION BY cell_id ORDER BY incidents DESC, area_code) AS pick
        FROM per_area
    )
    INSERT INTO grid.cell_areas (cell_id, area_code, area_name, incidents, share)
    SELECT r.cell_id, r.area_code, n.area_name, r.incidents, r.share
    FROM ranked AS r JOIN names AS n USING (area_code)
    WHERE r.pick = 1
    """
)


def refresh_cell_areas(
    conn: Connection, first: date, last: date, rebuild: bool = True
) -> int | None:
    """Recount the areas of the weeks ``first..last`` and rebuild ``grid.cell_areas``.

    Runs inside the aggregation's transaction (and under its lock), so the mapping
    always matches the grid rows. Returns the number of cells with a division.
    ``rebuild=False`` only recounts (an aggregation of several ranges rebuilds once,
    :func:`rebuild_cell_areas`) and returns None.
    """
    monday = first + timedelta(days=-first.weekday() % 7)  # weeks start on Mondays
    weeks = [monday + timedelta(weeks=k) for k in range((last - monday).days // 7 + 1)]
    recount_spans(conn, [weeks])
    return rebuild_cell_areas(conn) if rebuild else None


def recount_spans(conn: Connection, spans: list[list[date]]) -> None:
    """Recount the divisions of several ranges of consecutive weeks, in two statements
    instead of two a range (the caller rebuilds ``grid.cell_areas`` once)."""
    weeks = [w for span in spans for w in span]
    labels = [i for i, span in enumerate(spans) for _ in span]
    conn.execute(
        sa.text("DELETE FROM grid.weekly_areas WHERE week_start = ANY(:weeks)"), {"weeks": weeks}
    )
    conn.execute(_RECOUNT_SPANS, {"weeks": weeks, "spans": labels})


def rebuild_cell_areas(conn: Connection) -> int:
    """Rebuild ``grid.cell_areas`` from ``grid.weekly_areas``; returns the cells mapped."""
    conn.execute(sa.text("DELETE FROM grid.cell_areas"))
    return conn.execute(_REBUILD).rowcount


def load_cell_areas(bind: Engine | Connection) -> pd.DataFrame:
    """``grid.cell_areas`` as a frame (cell_id, area_code, area_name, incidents, share)."""
    with connect(bind) as conn:
        return pd.read_sql_query(
            sa.text(
                "SELECT cell_id, area_code, area_name, incidents, share "
                "FROM grid.cell_areas ORDER BY cell_id"
            ),
            conn,
        )
