"""The publication lag, designed in: which weeks a run may use and how far ahead it forecasts.

The run for week W happens when W ends (the Monday after, 00:00 LA time). A week is
complete once every report taken in it is published; the run forecasts W+1 from the
newest complete week, at an explicit horizon.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from crimejob.config import get_settings
from crimejob.errors import CrimejobError
from crimejob.grid.lag import run_moment, run_weeks

W = date(2026, 9, 28)  # a Monday: the week that just ended when the run starts on Oct 5


def test_with_the_default_14_day_lag_the_run_for_w_forecasts_w_plus_1_from_w_minus_2():
    plan = run_weeks(W)
    assert plan.lag_days == 14 == get_settings().publication_lag_days
    assert run_moment(W) == datetime(2026, 10, 5)
    assert plan.target_week == W + timedelta(weeks=1)
    assert plan.history_through == W - timedelta(weeks=2)
    assert plan.horizon == 3
    assert plan.incomplete_weeks == [W - timedelta(weeks=1), W]
    # history counts what the portal had published: reports before run moment - 14 days
    assert plan.published_before == datetime(2026, 9, 21)


@pytest.mark.parametrize(
    "lag, through, horizon",
    [
        (0, W, 1),  # a source that publishes at once: the classic set-up
        (6, W - timedelta(weeks=1), 2),
        (7, W - timedelta(weeks=1), 2),  # W-1's Sunday reports are out by the run
        (8, W - timedelta(weeks=2), 3),
        (13, W - timedelta(weeks=2), 3),  # the portal's measured lag
        (21, W - timedelta(weeks=3), 4),
        (22, W - timedelta(weeks=4), 5),
    ],
)
def test_a_week_is_complete_once_its_last_report_is_published(lag, through, horizon):
    plan = run_weeks(W, lag)
    assert (plan.history_through, plan.horizon) == (through, horizon)
    # the complete week's last moment, plus the lag, has passed by the run ...
    assert datetime.combine(through + timedelta(weeks=1), datetime.min.time()) + timedelta(
        days=lag
    ) <= run_moment(W)
    # ... and the week after it has not
    assert datetime.combine(through + timedelta(weeks=2), datetime.min.time()) + timedelta(
        days=lag
    ) > run_moment(W)


def test_any_day_names_its_week():
    assert run_weeks(date(2026, 10, 1)) == run_weeks(W)


def test_the_lag_is_a_setting(monkeypatch):
    monkeypatch.setenv("CRIMEJOB_PUBLICATION_LAG_DAYS", "7")
    assert run_weeks(W).horizon == 2
    for bad in ("two weeks", "-1", "400"):
        monkeypatch.setenv("CRIMEJOB_PUBLICATION_LAG_DAYS", bad)
        with pytest.raises(CrimejobError, match="CRIMEJOB_PUBLICATION_LAG_DAYS"):
            get_settings()
