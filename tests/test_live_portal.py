"""The weekly job against a local portal that behaves like LAPD's in late 2026.

The portal (``tests.fakes.soda.portal_server``) serves the frozen legacy dataset,
tapering through 2024, and ``k7nn-b2ep``, the one live NIBRS dataset, ramping up
from 2024-03-07; it publishes every record 13 days after its report date and
answers ``y8y3-fqfu`` with HTTP 403. ``crimejob run`` bootstraps 104 weeks of
history and then runs three consecutive Mondays: every run writes next week's
4,500-cell forecast from the newest complete week (W-2) at horizon 3, no run
stops on the lag, weekly counts equal what the portal published, and a week is
scored only once it is complete. After those runs, a feed that publishes nothing
for weeks and a dataset list naming ``y8y3-fqfu`` each stop a run, saying why, and
leave the last forecast alone. (Each of those checks once started from a bootstrap of
its own, the most expensive run of all; they now follow the four runs.)
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob import cli
from crimejob.grid.lag import run_moment
from crimejob.job.pipeline import run_week
from tests.fakes.ncei import ncei_server
from tests.fakes.soda import (
    LEGACY_ID,
    NIBRS_2024_ID,
    NIBRS_2026_ID,
    portal_server,
    published_week_counts,
)

pytestmark = pytest.mark.slow

BOOT = date(2026, 9, 28)  # the first run: the week that just ended on Sunday, Oct 4
RUNS = [BOOT + timedelta(weeks=i) for i in range(4)]  # the bootstrap and three Mondays
AFTER = 3  # weeks of reports after the last run (for the runs after it)
HISTORY_WEEKS = 104
PER_WEEK = 100  # incidents in a normal week (the real city has about 4,000)


@pytest.fixture
def portal(monkeypatch, tmp_path, clean_db):
    """The portal with reports from before the bootstrap to after the last run, its clock
    at the first run, and NCEI beside it; the job in a small, fast configuration."""
    first_report = BOOT - timedelta(weeks=HISTORY_WEEKS + 6)
    last_report = RUNS[-1] + timedelta(weeks=AFTER, days=6)
    monkeypatch.setenv("CRIMEJOB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRIMEJOB_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("CRIMEJOB_HISTORY_WEEKS", str(HISTORY_WEEKS))
    monkeypatch.setenv("CRIMEJOB_HTTP_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("CRIMEJOB_HTTP_BACKOFF_MAX", "0.05")
    # a cheap production model: the 13-week mean baseline (networks are trained at the
    # run's horizon in test_training_registry; here the data path is under test)
    monkeypatch.setenv("CRIMEJOB_MODEL", "mean_13w")
    monkeypatch.delenv("CRIMEJOB_PUBLICATION_LAG_DAYS", raising=False)
    monkeypatch.delenv("CRIMEJOB_CRIME_DATASETS", raising=False)
    with (
        portal_server(first_report, last_report, now=run_moment(BOOT), per_week=PER_WEEK) as soda,
        ncei_server(start=first_report, end=last_report) as ncei,
    ):
        monkeypatch.setenv("CRIMEJOB_NCEI_URL", ncei.base_url)
        yield soda, clean_db


def _read(engine, sql: str, **params) -> pd.DataFrame:
    return pd.read_sql(sa.text(sql), engine, params=params)


def _check_counts_equal_published(engine, app) -> int:
    """grid.weeks holds exactly what the portal has published, week by week."""
    stored = _read(
        engine,
        "SELECT week_start, legacy_incidents, nibrs_incidents, incident_total, violent_total "
        "FROM grid.weeks ORDER BY week_start",
    )
    expected = published_week_counts(app).set_index("week_start")
    expected = expected.reindex(stored["week_start"], fill_value=0).reset_index()
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    return len(stored)


def test_a_bootstrap_and_three_weekly_runs_forecast_next_week_every_week(
    portal, capsys, monkeypatch
):
    soda, engine = portal
    log = []
    for week in RUNS:
        soda.app.now = run_moment(week)  # the Monday after the week, 00:00
        code = cli.main(["run", "--week", str(week)])
        out, err = capsys.readouterr()
        log.append(f"$ crimejob run --week {week}   # portal clock {soda.app.now}\n{out}{err}")
        assert code == 0, "\n".join(log)

        # next week's forecast, from the newest complete week, at horizon 3
        target, through = week + timedelta(weeks=1), week - timedelta(weeks=2)
        forecast = _read(
            engine,
            "SELECT count(*) AS n, min(history_through) AS h0, max(history_through) AS h1, "
            "min(horizon_weeks) AS k0, max(horizon_weeks) AS k1 FROM bi.forecasts "
            "WHERE is_production AND target_week = :t",
            t=target,
        ).iloc[0]
        assert forecast["n"] == 4500
        assert forecast["h0"] == forecast["h1"] == through
        assert forecast["k0"] == forecast["k1"] == 3
        latest = _read(engine, "SELECT target_week, count(*) AS n FROM bi.forecast_latest "
                               "GROUP BY target_week")  # fmt: skip
        assert latest.to_dict("list") == {"target_week": [target], "n": [4500]}

        # the weekly counts equal the published records, in every aggregated week
        weeks = _check_counts_equal_published(engine, soda.app)
        assert weeks >= HISTORY_WEEKS + 2

        # scored only once complete: the bootstrap's target (BOOT+1) at the run for BOOT+3
        scored = _read(engine, "SELECT DISTINCT target_week FROM ml.forecast_scores")
        expect = [RUNS[1]] if week >= RUNS[1] + timedelta(weeks=2) else []
        assert scored["target_week"].tolist() == expect, f"run for {week}"

    with capsys.disabled():
        print("\n" + "\n".join(log))

    runs = _read(engine, "SELECT week_start, status FROM ops.runs WHERE kind = 'weekly' "
                         "ORDER BY run_id")  # fmt: skip
    assert runs["status"].tolist() == ["succeeded"] * 4  # nothing waited on the lag

    # the bootstrap reached back 104 complete weeks, into the 2024 transition, and
    # grid.weeks keeps the series mix of each week
    weeks = _read(engine, "SELECT week_start, series, legacy_incidents, nibrs_incidents "
                          "FROM grid.weeks ORDER BY week_start")  # fmt: skip
    assert weeks["week_start"].iloc[0] <= BOOT - timedelta(weeks=HISTORY_WEEKS + 1)
    in_2024 = weeks[weeks["week_start"] < date(2024, 12, 23)]
    assert len(in_2024) >= 8
    assert (in_2024["legacy_incidents"] > 0).all() and (in_2024["nibrs_incidents"] > 0).all()
    after = weeks[weeks["week_start"] >= date(2025, 1, 6)]
    assert (after["legacy_incidents"] == 0).all() and (after["series"] == "nibrs").all()

    # A replay of the first week (as a backfill would run it) sees what was published
    # then, not the late reports loaded since: the same forecast.
    baseline = (
        "SELECT cell_id, predicted FROM ml.forecasts "
        "WHERE target_week = :t AND model_name = 'mean_4w' ORDER BY cell_id"
    )
    original = _read(engine, baseline, t=RUNS[1])
    late = _read(
        engine,
        "SELECT count(*) AS n FROM raw.crime_records "
        "WHERE week_start BETWEEN :first AND :w AND reported_at >= :cut",
        first=BOOT - timedelta(weeks=5), w=BOOT - timedelta(weeks=2),
        cut=run_moment(BOOT) - timedelta(days=14),
    )["n"].iloc[0]  # fmt: skip
    # (mean_4w reads weeks BOOT-5..BOOT-2: late reports for them arrived since)
    assert late > 0, "late reports must exist for the replay check to mean anything"
    run_week(engine, BOOT, offline=True, allow_incomplete=True)
    pd.testing.assert_frame_equal(original, _read(engine, baseline, t=RUNS[1]))

    # y8y3-fqfu (403) was never asked for; junk rows were kept with their reasons
    asked = {path for path, _, _ in soda.requests}
    assert asked == {f"/resource/{LEGACY_ID}.json", f"/resource/{NIBRS_2026_ID}.json"}
    assert f"/resource/{NIBRS_2024_ID}.json" not in asked
    reasons = _read(engine, "SELECT reason, count(*) AS n FROM ops.rejects GROUP BY reason")
    assert set(reasons["reason"]) == {"implausible_date", "missing_location"}

    # The feed stalls: three weeks after the last run, the portal still shows what it
    # showed at that run. The run stops, saying so, and writes no forecast.
    latest_target = RUNS[-1] + timedelta(weeks=1)
    stalled = RUNS[-1] + timedelta(weeks=AFTER)
    code = cli.main(["run", "--week", str(stalled)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INCOMPLETE
    assert "the feed stalled" in err
    targets = _read(engine, "SELECT DISTINCT target_week FROM ml.forecasts ORDER BY 1")
    assert targets["target_week"].tolist()[-1] == latest_target

    # y8y3-fqfu named in the dataset list: a run whose report dates reach into the ones
    # it served (to 2026-08-17), here the week after the bootstrap run again, fails in
    # one line that says what to do, and the forecast stays
    monkeypatch.setenv("CRIMEJOB_CRIME_DATASETS", f"{LEGACY_ID},{NIBRS_2024_ID},{NIBRS_2026_ID}")
    soda.app.now = run_moment(RUNS[1])
    code = cli.main(["run", "--week", str(RUNS[1])])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert err.count("\n") == 1
    assert f"SODA dataset {NIBRS_2024_ID} answered HTTP 403" in err
    assert f"remove {NIBRS_2024_ID} from CRIMEJOB_CRIME_DATASETS" in err
    targets = _read(engine, "SELECT DISTINCT target_week FROM bi.forecast_latest")
    assert targets["target_week"].tolist() == [latest_target]
    assert os.environ["CRIMEJOB_SODA_URL"] == soda.url


def test_the_run_stops_when_the_newest_complete_week_is_clearly_broken(portal, capsys):
    soda, engine = portal
    week = RUNS[0]
    # the portal loses most of the reports taken in W-2, the newest complete week
    broken = week - timedelta(weeks=2)
    records = soda.app.datasets[NIBRS_2026_ID]
    soda.app.datasets[NIBRS_2026_ID] = [
        r for i, r in enumerate(records)
        if not (str(broken) <= r["date_occ"][:10] < str(broken + timedelta(weeks=1)) and i % 4)
    ]  # fmt: skip
    code = cli.main(["run", "--week", str(week)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INCOMPLETE
    assert f"week {broken} has" in err and "has not published it" in err
    assert _read(engine, "SELECT count(*) AS n FROM ml.forecasts")["n"].iloc[0] == 0
