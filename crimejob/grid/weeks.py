"""Weeks as the job names them: Monday to Monday, America/Los_Angeles, by ``week_start``."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

LA = ZoneInfo("America/Los_Angeles")


def week_start(day: date | datetime | str) -> date:
    """The Monday that starts the week containing ``day`` (a date, datetime or ISO string)."""
    if isinstance(day, str):
        day = date.fromisoformat(day[:10])
    if isinstance(day, datetime):
        if day.tzinfo is not None:
            day = day.astimezone(LA)
        day = day.date()
    return day - timedelta(days=day.weekday())


def parse_week(text: str | date) -> date:
    """A week given on the command line: any date in it, normalised to its Monday."""
    return week_start(text)


def weeks_between(start: date, end: date) -> list[date]:
    """Every week_start from the week of ``start`` to the week of ``end``, inclusive."""
    first, last = week_start(start), week_start(end)
    count = (last - first).days // 7 + 1
    return [first + timedelta(weeks=i) for i in range(max(count, 0))]


def latest_complete_week(now: datetime | None = None) -> date:
    """The newest week that has fully ended in Los Angeles time."""
    now = now.astimezone(LA) if now else datetime.now(LA)
    return week_start(now.date()) - timedelta(weeks=1)


def require_ended(week: date, now: datetime | None = None) -> date:
    """``week`` if it has ended in Los Angeles; a week still running or in the future
    cannot be run (it would aggregate empty weeks and train on zeros)."""
    from crimejob.errors import CrimejobError

    latest = latest_complete_week(now)
    if week_start(week) > latest:
        raise CrimejobError(
            f"week {week_start(week)} has not ended yet (the latest complete week is {latest})"
        )
    return week_start(week)
