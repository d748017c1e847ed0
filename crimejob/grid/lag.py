"""The publication lag, designed in: which weeks a run may use, and how far ahead it forecasts.

LAPD publishes a report 12-14 days after it is taken (``k7nn-b2ep``, late 2026).
On the Monday after week W ends, W itself and the week before are far from
complete, so a model fed them would read a collapse in crime that is only a
delay. The job therefore forecasts from the weeks whose data is complete as of
the run, and says how far ahead that is:

- the run for week W happens at the end of W (the Monday after, 00:00 LA time);
- a week is *complete* when every report taken in it has been published: its last
  day plus the lag (``CRIMEJOB_PUBLICATION_LAG_DAYS``, default 14) has passed by the
  run. ``history_through`` is the newest such week: W-2 with the default lag;
- the run for W always forecasts W+1 ("next week"), from history through
  ``history_through``, at ``horizon`` = (W+1 - history_through) weeks: 3 by default;
- history counts only records reported before ``published_before`` (the run moment
  minus the lag): what the portal had published when the run happened. A live run
  and a later backfill of the same week therefore see the same counts, whatever
  late reports arrived in between.

With a lag of 0 (a source that publishes at once) this is the classic set-up:
history through W, forecast W+1 at horizon 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from crimejob.config import get_settings
from crimejob.grid.weeks import week_start


@dataclass(frozen=True)
class RunWeeks:
    """The weeks of the run for ``week``: what it may see and what it forecasts."""

    week: date  # the week that just ended (the run's week)
    lag_days: int
    history_through: date  # the newest complete week
    target_week: date  # always week + 1
    published_before: datetime  # records reported from here on were not published yet

    @property
    def horizon(self) -> int:
        """Weeks from the last week of history to the target week (1 with no lag)."""
        return (self.target_week - self.history_through).days // 7

    @property
    def incomplete_weeks(self) -> list[date]:
        """Weeks after the history, up to the run's week, still being published."""
        count = (self.week - self.history_through).days // 7
        return [self.history_through + timedelta(weeks=i) for i in range(1, count + 1)]

    def as_dict(self) -> dict:
        return {
            "week": str(self.week),
            "target_week": str(self.target_week),
            "history_through": str(self.history_through),
            "horizon_weeks": self.horizon,
            "publication_lag_days": self.lag_days,
            "published_before": self.published_before.isoformat(sep=" "),
        }


def run_moment(week: date) -> datetime:
    """When the run for ``week`` happens: midnight (LA wall clock) at the end of the week."""
    return datetime.combine(week_start(week) + timedelta(weeks=1), time())


def run_weeks(week: date, lag_days: int | None = None) -> RunWeeks:
    """The weeks of the run for ``week`` with a publication lag of ``lag_days`` days
    (default: ``CRIMEJOB_PUBLICATION_LAG_DAYS``)."""
    week = week_start(week)
    lag = get_settings().publication_lag_days if lag_days is None else lag_days
    moment = run_moment(week)
    published_before = moment - timedelta(days=lag)
    # complete: the week's last report (before its end) is published by the run:
    # end + lag <= moment, i.e. week_start <= moment - lag - 7 days
    history_through = week_start(published_before.date() - timedelta(days=7))
    return RunWeeks(
        week=week,
        lag_days=lag,
        history_through=history_through,
        target_week=week + timedelta(weeks=1),
        published_before=published_before,
    )
