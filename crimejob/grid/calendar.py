"""US federal and California holidays, from the ``holidays`` package, kept in raw.holidays.

The weekly holiday indicator is 1 when any day of the week is a holiday in
either calendar. We take the union of two calendars because neither contains
the other: ``country_holidays("US")`` has the federal list (Columbus Day
included), while ``country_holidays("US", subdiv="CA")`` follows the state,
which adds Cesar Chavez Day and the day after Thanksgiving but drops Columbus
Day. Both use the package's default ``public`` category and include observed
days (a holiday on a Sunday is observed on Monday), because the observed day
is the day off that changes how people move. A day in both calendars keeps
all its names, sorted and joined with "; ".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import holidays
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crimejob.dbcopy import copy_frame


def holiday_table(years: Iterable[int]) -> pd.DataFrame:
    """One row per holiday in ``years``: ``day`` (date) and ``names`` (text), sorted by day."""
    years = sorted({int(y) for y in years})
    if not years:
        return pd.DataFrame({"day": pd.Series([], dtype=object), "names": pd.Series([], dtype=str)})
    names: dict[date, set[str]] = {}
    for calendar in (
        holidays.country_holidays("US", years=years),
        holidays.country_holidays("US", subdiv="CA", years=years),
    ):
        for day in calendar:
            names.setdefault(day, set()).update(calendar.get_list(day))
    days = sorted(d for d in names if d.year in years)
    return pd.DataFrame({"day": days, "names": ["; ".join(sorted(names[d])) for d in days]})


def load_holidays(conn: Connection, years: Iterable[int]) -> int:
    """Upsert the holidays of ``years`` into raw.holidays; returns rows inserted or changed.

    Idempotent: a second call for the same years changes nothing. Days of those
    years that the package no longer lists as holidays are removed, so a
    corrected package version corrects the table.
    """
    years = sorted({int(y) for y in years})
    if not years:
        return 0
    table = holiday_table(years)
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS _holidays_in (day date, names text) ON COMMIT DROP"
    )
    conn.exec_driver_sql("TRUNCATE _holidays_in")
    copy_frame(conn, table, "_holidays_in", ["day", "names"])
    removed = conn.execute(
        sa.text(
            "DELETE FROM raw.holidays h WHERE extract(year FROM h.day)::int = ANY(:years) "
            "AND NOT EXISTS (SELECT 1 FROM _holidays_in i WHERE i.day = h.day)"
        ),
        {"years": years},
    ).rowcount
    changed = conn.exec_driver_sql(
        "INSERT INTO raw.holidays (day, names) SELECT day, names FROM _holidays_in "
        "ON CONFLICT (day) DO UPDATE SET names = EXCLUDED.names "
        "WHERE raw.holidays.names IS DISTINCT FROM EXCLUDED.names"
    ).rowcount
    return removed + changed
