"""Reading grid rows back as the arrays every forecaster sees."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from crimejob.devworld import la_world
from crimejob.grid.gridstore import (
    contiguous_since,
    history_for_run,
    load_history,
    published_history,
    store_history,
)

FIRST = date(2023, 1, 2)


def write_weeks(engine, first: date, n_weeks: int, seed: int = 0) -> list[date]:
    history = la_world(seed=seed, start=first, weeks=n_weeks).history()
    store_history(engine, history)
    return [w.astype("datetime64[D]").item() for w in history.week_starts]


def test_history_stops_at_the_week_asked_for(clean_db):
    weeks = write_weeks(clean_db, FIRST, 6)
    history = load_history(clean_db, weeks[3])
    assert len(history) == 4 and history.last_week == weeks[3]
    assert history.target_week == weeks[4]
    counts = sa.text("SELECT violent_count FROM grid.weekly WHERE week_start = :w ORDER BY cell_id")
    with clean_db.connect() as conn:
        expected = [r[0] for r in conn.execute(counts, {"w": weeks[3]})]
    np.testing.assert_array_equal(history.crime[-1].ravel(), expected)


def test_a_week_without_weather_keeps_each_cells_values_of_the_week_before(clean_db):
    weeks = write_weeks(clean_db, FIRST, 3)
    with clean_db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE grid.weekly SET mean_temp_f = NULL, total_rain_in = NULL "
                "WHERE week_start = :w"
            ),
            {"w": weeks[2]},
        )
    history = load_history(clean_db, weeks[2])
    np.testing.assert_array_equal(history.weather[2, ..., :2], history.weather[1, ..., :2])
    assert history.weather[2, ..., 0].min() > 30  # deg F, not a zero from nowhere


def test_a_gap_in_the_weeks_is_an_error_and_runs_use_the_unbroken_stretch(clean_db):
    write_weeks(clean_db, FIRST, 2)
    later = write_weeks(clean_db, FIRST + timedelta(weeks=4), 3, seed=1)
    with pytest.raises(ValueError, match="consecutive"):
        load_history(clean_db, later[-1])
    assert contiguous_since(clean_db, later[-1]) == later[0]
    assert len(history_for_run(clean_db, later[-1], lag_days=0)) == 3
    # with the default 14-day lag the run for later[-1] stops two weeks earlier
    assert len(history_for_run(clean_db, later[-1])) == 1


def test_a_run_counts_only_incidents_reported_before_its_week_ended(clean_db):
    week = write_weeks(clean_db, FIRST, 2)[1]
    with clean_db.begin() as conn:
        conn.execute(sa.text("UPDATE grid.weekly SET violent_count = 0"))
        conn.execute(
            sa.text(
                "INSERT INTO raw.crime_records (source, record_id, incident_id, series, "
                "occurred_at, reported_at, week_start, lat, lon, cell_id, offense_codes, "
                "is_violent, payload) VALUES "
                "('2nrs-mtv8', '1', '1', 'legacy', :occ, :on_time, :w, 34, -118.3, 7, "
                " '{230}', true, '{}'),"
                "('2nrs-mtv8', '2', '2', 'legacy', :occ, :late, :w, 34, -118.3, 7, "
                " '{230}', true, '{}')"
            ),
            {
                "occ": datetime.combine(week, datetime.min.time()) + timedelta(hours=30),
                "on_time": datetime.combine(week, datetime.min.time()) + timedelta(days=6),
                "late": datetime.combine(week, datetime.min.time()) + timedelta(days=7, hours=1),
                "w": week,
            },
        )
    as_of_run = history_for_run(clean_db, week, lag_days=0)
    assert as_of_run.crime[-1].ravel()[7] == 1  # the late report is not seen
    assert as_of_run.crime.sum() == 1


def test_with_a_publication_lag_a_run_sees_what_the_portal_had_published(clean_db):
    weeks = write_weeks(clean_db, FIRST, 4)
    week = weeks[1]
    with clean_db.begin() as conn:
        conn.execute(sa.text("UPDATE grid.weekly SET violent_count = 0"))
    start = datetime.combine(week, datetime.min.time())
    reported = {  # all occurred in `week`, cell 7
        "during the week": start + timedelta(days=2),
        "its last minute": start + timedelta(days=6, hours=23, minutes=59),
        "the Monday after": start + timedelta(days=7, hours=9),
    }
    with clean_db.begin() as conn:
        for key, at in enumerate(reported.values()):
            conn.execute(
                sa.text(
                    "INSERT INTO raw.crime_records (source, record_id, incident_id, series, "
                    "occurred_at, reported_at, week_start, lat, lon, cell_id, offense_codes, "
                    "is_violent, payload) VALUES ('k7nn-b2ep', :k, :k, 'nibrs', :occ, :at, :w, "
                    "34, -118.3, 7, '{13A}', true, '{}')"
                ),
                {"k": str(key), "occ": start + timedelta(hours=1), "at": at, "w": week},
            )
    # The run for weeks[3] (two weeks later) uses `week` as its newest complete week, and
    # counts the reports published 14 days before it ran: those taken by `week`'s end.
    run = history_for_run(clean_db, weeks[3])
    assert run.last_week == week and len(run) == 2
    assert run.crime[-1].ravel()[7] == 2
    # the series mix is the published one too: all NIBRS in `week`, none the week before
    assert run.nibrs_share.tolist() == [0.0, 1.0]
    # the same run with a 7-day lag reaches a week further and sees the Monday report too
    run_7 = history_for_run(clean_db, weeks[3], lag_days=7)
    assert run_7.last_week == weeks[2] and run_7.crime[1].ravel()[7] == 3
    # a later run sees the Monday report in `week`; what lgbm fits on in any run (gbm's
    # fit_histories) is `week` as the run for it saw it
    later = history_for_run(clean_db, weeks[3] + timedelta(weeks=1))
    assert later.last_week == weeks[2] and later.crime[1].ravel()[7] == 3
    published = published_history(clean_db, week)
    assert published.last_week == week and published.crime[-1].ravel()[7] == 2
    assert np.array_equal(published.crime, run.crime)
    assert np.array_equal(published.nibrs_share, run.nibrs_share)
    assert published_history(clean_db, weeks[0]).crime[-1].ravel()[7] == 0


def test_history_carries_all_incidents_and_the_nibrs_share_of_each_week(clean_db):
    weeks = write_weeks(clean_db, FIRST, 3)
    with clean_db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE grid.weekly SET incident_count = violent_count + 2 WHERE week_start = :w"
            ),
            {"w": weeks[1]},
        )
        conn.execute(
            sa.text(
                "UPDATE grid.weeks SET legacy_incidents = 30, nibrs_incidents = 10 "
                "WHERE week_start = :w"
            ),
            {"w": weeks[1]},
        )
        conn.execute(
            sa.text(
                "UPDATE grid.weeks SET series = 'nibrs', legacy_incidents = 0, "
                "nibrs_incidents = 0 WHERE week_start = :w"
            ),
            {"w": weeks[2]},
        )
    history = load_history(clean_db, weeks[2])

    np.testing.assert_array_equal(history.incidents[1], history.crime[1] + 2)
    # an untouched week reads back the all-incident counts that were stored
    stored = la_world(seed=0, start=FIRST, weeks=3).history()
    np.testing.assert_array_equal(history.incidents[0], stored.incidents[0])
    # the mix recorded per week; a week with no counts per series falls back to its series
    assert history.nibrs_share.tolist() == pytest.approx([0.0, 0.25, 1.0])


def test_the_as_of_counts_less_late_reports_equal_the_grouping_of_every_record(clean_db):
    # Issue 13: a run's as-of history is the grid rows less the incidents first reported
    # after its cut-off, instead of a grouping of every record; the counts are the same.
    from crimejob.grid.aggregate import aggregate_weeks
    from crimejob.grid.weeks import week_start
    from crimejob.ingest.crime_ingest import load_crime_records
    from tests.fakes.soda import (
        LEGACY_ID,
        NIBRS_2026_ID,
        make_legacy_records,
        make_nibrs_records,
    )

    start, end = date(2023, 1, 2), date(2023, 4, 30)
    legacy = make_legacy_records(1500, start, end, seed=51)
    for record in legacy[::50]:  # police-initiated: never counted
        record["crm_cd"] = record["crm_cd_1"] = "623"
    nibrs = make_nibrs_records(800, start, end, seed=52)
    later = []
    for record in nibrs[::20]:  # a violent offense of the incident reported 20 days later
        reported = datetime.fromisoformat(record["date_rptd"]) + timedelta(days=20)
        later.append({**record, "uniquenibrno": record["caseno"] + "_13A_9", "nibr_code": "13A",
                      "date_rptd": reported.isoformat(timespec="milliseconds")})  # fmt: skip
    load_crime_records(clean_db, [(LEGACY_ID, legacy), (NIBRS_2026_ID, nibrs + later)])
    aggregate_weeks(clean_db, start, date(2023, 4, 24))

    for cut in (datetime(2023, 2, 13), datetime(2023, 3, 20, 12), datetime(2023, 5, 15)):
        through = week_start(cut.date() - timedelta(days=7))
        full, late, auto = (
            load_history(clean_db, through, since=start, reported_before=cut, as_of_path=path)
            for path in ("full", "late", "auto")
        )
        everything = load_history(clean_db, through, since=start)
        for history in (late, auto):
            for name in ("week_starts", "crime", "incidents", "nibrs_share", "weather"):
                np.testing.assert_array_equal(getattr(history, name), getattr(full, name))
        if cut < datetime(2023, 5, 1):  # late reports left out, not a copy of the grid
            assert full.incidents.sum() < everything.incidents.sum()
            assert full.crime.sum() < everything.crime.sum()
    assert 0 < full.nibrs_share.min() and full.nibrs_share.max() < 1


def test_the_grid_rows_read_through_copy_are_those_a_query_returns(clean_db):
    import pandas as pd

    from crimejob.grid.gridstore import _QUERY, _read_grid

    write_weeks(clean_db, FIRST, 4)
    with clean_db.begin() as conn:  # a NULL and a value with every digit
        conn.execute(sa.text("UPDATE grid.weekly SET mean_temp_f = NULL WHERE cell_id = 7"))
        conn.execute(sa.text("UPDATE grid.weekly SET total_rain_in = 0.1 + 1e-15 * cell_id"))
    params = {"through": FIRST + timedelta(weeks=3), "since": FIRST + timedelta(weeks=1)}
    with clean_db.connect() as conn:
        copied = _read_grid(conn, params)
        queried = pd.read_sql_query(_QUERY, conn, params=params)
    assert len(copied) == 3 * 4500
    for column in queried.columns:
        left, right = copied[column], queried[column]
        if column == "week_start":
            left, right = pd.to_datetime(left), pd.to_datetime(right)
        np.testing.assert_array_equal(left.to_numpy(), right.to_numpy())


def test_the_as_of_counts_group_the_records_where_the_grid_is_not_their_aggregation(
    clean_db, monkeypatch
):
    from crimejob.grid import gridstore

    weeks = write_weeks(clean_db, FIRST, 6)  # stored from arrays: no records behind them
    used = []
    real = gridstore.pd.read_sql_query
    monkeypatch.setattr(
        gridstore.pd, "read_sql_query", lambda q, *a, **k: used.append(q) or real(q, *a, **k)
    )
    history = load_history(clean_db, weeks[-1], reported_before=datetime(2024, 1, 1))
    assert gridstore._AS_OF_COUNTS in used and gridstore._LATE_COUNTS not in used
    assert history.crime.sum() == 0  # counted from the records, of which there are none
