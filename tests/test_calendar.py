"""Holidays: US federal and California, from the holidays package, stored in raw.holidays."""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa

from crimejob.grid.calendar import holiday_table, load_holidays


def names_by_day(years) -> dict[date, str]:
    table = holiday_table(years)
    return dict(zip(table["day"], table["names"], strict=True))


def test_the_calendar_is_the_union_of_federal_and_california_holidays():
    days = names_by_day([2024])
    assert days[date(2024, 10, 14)] == "Columbus Day"  # federal, not a California holiday
    assert days[date(2024, 3, 31)] == "Cesar Chavez Day"  # California only
    assert days[date(2024, 11, 29)] == "Day After Thanksgiving"  # California only
    assert days[date(2024, 7, 4)] == "Independence Day"
    # one day, two names: the federal and the state name of the February holiday
    assert days[date(2024, 2, 19)] == "Presidents' Day; Washington's Birthday"
    assert all(d.year == 2024 for d in days)


def test_observed_days_are_holidays_too():
    days = names_by_day([2023])
    assert days[date(2023, 1, 1)] == "New Year's Day"  # a Sunday
    assert days[date(2023, 1, 2)] == "New Year's Day (observed)"
    assert date(2023, 1, 3) not in days


def test_loading_is_idempotent_and_keeps_one_row_per_day(clean_db):
    with clean_db.begin() as conn:
        first = load_holidays(conn, [2023, 2024])
        second = load_holidays(conn, [2024, 2023])
    stored = pd.read_sql("SELECT day, names FROM raw.holidays ORDER BY day", clean_db)
    expected = holiday_table([2023, 2024])
    assert first == len(expected) > 20
    assert second == 0
    assert list(stored["day"]) == list(expected["day"])
    assert list(stored["names"]) == list(expected["names"])


def test_a_stale_day_of_a_loaded_year_is_corrected(clean_db):
    with clean_db.begin() as conn:
        conn.execute(sa.text("INSERT INTO raw.holidays VALUES ('2024-05-05', 'Not A Holiday')"))
        conn.execute(sa.text("INSERT INTO raw.holidays VALUES ('2024-07-04', 'Wrong Name')"))
        conn.execute(sa.text("INSERT INTO raw.holidays VALUES ('2019-05-05', 'Other Year')"))
        load_holidays(conn, [2024])
    stored = dict(pd.read_sql("SELECT day, names FROM raw.holidays", clean_db).values)
    assert date(2024, 5, 5) not in stored
    assert stored[date(2024, 7, 4)] == "Independence Day"
    assert stored[date(2019, 5, 5)] == "Other Year"  # years not asked for are left alone


def test_no_years_loads_nothing(clean_db):
    with clean_db.begin() as conn:
        assert load_holidays(conn, []) == 0
    assert holiday_table([]).empty
