"""Grid rows in Postgres as a :class:`~crimejob.grid.history.GridHistory`, and back.

:func:`load_history` is what every model reads; :func:`store_history` writes a
history (the LA development world's, say) as grid rows, for tests, benchmarks
and the demo that exercise the database path without raw records.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.db import connect
from crimejob.dbcopy import copy_frame, read_query
from crimejob.grid.cells import N_CELLS, N_COLS, N_ROWS
from crimejob.grid.history import WEATHER_FEATURES, GridHistory

# The counts as of a moment: sparse (only cells with incidents), merged into the dense
# grid rows in numpy. Joined to grid.weekly in SQL instead, the planner can misjudge
# the grouped view's size and rescan it per grid row (minutes instead of a second).
_AS_OF_COUNTS = sa.text(
    """
    SELECT week_start, cell_id, count(*) FILTER (WHERE is_violent) AS violent_count,
           count(*) AS incident_count, count(*) FILTER (WHERE series = 'nibrs') AS nibrs_count
    FROM raw.public_incidents
    WHERE reported_at < :reported_before AND week_start <= :through
      AND (CAST(:since AS date) IS NULL OR week_start >= :since)
    GROUP BY week_start, cell_id
    """
)

_QUERY = sa.text(
    """
    SELECT w.week_start, w.cell_id, coalesce(c.violent_count, 0) AS violent_count,
           coalesce(c.incident_count, 0) AS incident_count,
           coalesce(c.nibrs_count, 0) AS nibrs_count,
           w.mean_temp_f, w.total_rain_in, w.holiday
    FROM grid.weekly AS w
    LEFT JOIN (
        SELECT week_start, cell_id, count(*) FILTER (WHERE is_violent) AS violent_count,
               count(*) AS incident_count, count(*) FILTER (WHERE series = 'nibrs') AS nibrs_count
        FROM raw.public_incidents
        WHERE reported_at < :reported_before AND week_start <= :through
        GROUP BY week_start, cell_id
    ) AS c USING (week_start, cell_id)
    WHERE w.week_start <= :through AND (CAST(:since AS date) IS NULL OR w.week_start >= :since)
    ORDER BY w.week_start, w.cell_id
    """
)

_QUERY = sa.text(
    """
    SELECT week_start, cell_id, violent_count, incident_count,
           mean_temp_f, total_rain_in, holiday
    FROM grid.weekly
    WHERE week_start <= :through AND (CAST(:since AS date) IS NULL OR week_start >= :since)
    ORDER BY week_start, cell_id
    """
)

# The NIBRS share of each week's incidents (legacy and NIBRS overlap in 2024).
_SERIES_QUERY = sa.text(
    """
    SELECT week_start,
           CASE WHEN legacy_incidents + nibrs_incidents > 0
                THEN nibrs_incidents::float8 / (legacy_incidents + nibrs_incidents)
                WHEN series = 'nibrs' THEN 1.0 ELSE 0.0 END AS nibrs_share,
           nibrs_incidents, from_records
    FROM grid.weeks
    WHERE week_start <= :through AND (CAST(:since AS date) IS NULL OR week_start >= :since)
    """
)

# The as-of counts the quick way: the incidents of the weeks that were first reported at
# or after the cut-off (found through the index on reported_at, then looked up per
# incident by the index on (series, incident_id), as crimejob.grid.aggregate does), to be
# subtracted from the grid rows. A run's cut-off is two weeks before it, so these are
# a couple of weeks of reports, where _AS_OF_COUNTS groups every record of the history.
# Every record of such an incident is reported after the cut-off, the one that gives it
# its week (the earliest) too, so records of later weeks need no look-up.
_LATE_COUNTS = sa.text(
    """
    SELECT i.week_start, i.cell_id, count(*) FILTER (WHERE i.is_violent) AS violent_count,
           count(*) AS incident_count, count(*) FILTER (WHERE i.series = 'nibrs') AS nibrs_count
    FROM (SELECT DISTINCT series, incident_id FROM raw.crime_records
          WHERE reported_at >= :reported_before AND week_start <= :through) AS t
    CROSS JOIN LATERAL (
        SELECT * FROM raw.incidents AS v
        WHERE v.series = t.series AND v.incident_id = t.incident_id
        OFFSET 0
    ) AS i
    WHERE i.reported_at >= :reported_before AND NOT i.is_police_initiated
      AND i.week_start <= :through AND (CAST(:since AS date) IS NULL OR i.week_start >= :since)
    GROUP BY i.week_start, i.cell_id
    """
)
# Weeks of the range loaded since their last aggregation: their grid rows are not the
# aggregation of the records (yet), so the subtraction would not be exact.
_STALE_IN_RANGE = sa.text(
    "SELECT count(*) FROM ops.stale_weeks "
    "WHERE week_start <= :through AND (CAST(:since AS date) IS NULL OR week_start >= :since)"
)


def _read_grid(conn: Connection, params: dict) -> pd.DataFrame:
    """The grid rows (hundreds of thousands for a two-year history), read through COPY."""
    return read_query(
        conn,
        "SELECT week_start, cell_id, violent_count, incident_count, mean_temp_f, "
        "total_rain_in, holiday FROM grid.weekly WHERE week_start <= %(through)s "
        "AND (CAST(%(since)s AS date) IS NULL OR week_start >= %(since)s) "
        "ORDER BY week_start, cell_id",
        params,
        dtype={
            "week_start": str,
            "cell_id": np.int64,
            "violent_count": np.int64,
            "incident_count": np.int64,
            "mean_temp_f": np.float64,
            "total_rain_in": np.float64,
            "holiday": np.int64,
        },
    )


def load_history(
    bind: Engine | Connection,
    through: date,
    since: date | None = None,
    reported_before: datetime | None = None,
    as_of_path: str = "auto",
) -> GridHistory:
    """Every aggregated week up to ``through`` (and from ``since``), as arrays.

    Never reads a week after ``through``: this is where leakage is prevented.
    With ``reported_before``, counts (violent, all incidents, and the NIBRS
    share) include only incidents reported before that moment (LA local time),
    so a backfilled week sees the data that existed then, not late reports that
    arrived afterwards. Those counts are the grid rows less the incidents first
    reported from ``reported_before`` on (``as_of_path`` ``"auto"``, when every week's
    rows are the aggregation of the records: none stored from arrays or loaded since
    its aggregation), else a grouping of every record of the weeks (``"full"``); the
    two give the same counts (tests/test_gridstore.py).
    Weeks must be dense (4,500 rows each) and consecutive; a gap is an error
    rather than a silent shift of the time axis. Missing weather is carried
    forward from the cell's previous week.
    """
    params = {"through": through, "since": since}
    late = None
    with connect(bind) as conn:
        frame = _read_grid(conn, params)
        series = pd.read_sql_query(_SERIES_QUERY, conn, params=params)
        as_of = None
        if reported_before is not None:
            as_of_params = {**params, "reported_before": reported_before}
            if as_of_path == "late" or (
                as_of_path == "auto"
                and bool(series["from_records"].all())
                and not conn.execute(_STALE_IN_RANGE, params).scalar_one()
            ):
                late = pd.read_sql_query(_LATE_COUNTS, conn, params=as_of_params)
            else:
                as_of = pd.read_sql_query(_AS_OF_COUNTS, conn, params=as_of_params)
    if frame.empty:
        return GridHistory(
            np.array([], dtype="datetime64[D]"),
            np.zeros((0, N_ROWS, N_COLS), np.float32),
            np.zeros((0, N_ROWS, N_COLS, len(WEATHER_FEATURES)), np.float32),
        )
    weeks = pd.to_datetime(frame["week_start"]).to_numpy().astype("datetime64[D]")
    unique_weeks = np.unique(weeks)
    if len(frame) != len(unique_weeks) * N_CELLS:
        counts = pd.Series(weeks).value_counts()
        bad = counts[counts != N_CELLS]
        raise ValueError(f"grid.weekly is not dense for weeks {list(bad.index[:5])}")
    t = len(unique_weeks)
    share = pd.Series(series["nibrs_share"].to_numpy(np.float64), index=series["week_start"])
    nibrs_share = share.reindex(pd.to_datetime(unique_weeks).date).fillna(0.0)
    if late is not None:
        # as of ``reported_before``: the grid rows (every incident aggregated) less the
        # incidents first reported from then on; the same counts as the grouping below
        dense = np.zeros((3, t, N_CELLS), np.int64)
        dense[0] = frame["violent_count"].to_numpy(np.int64).reshape(t, N_CELLS)
        dense[1] = frame["incident_count"].to_numpy(np.int64).reshape(t, N_CELLS)
        nibrs_weeks = pd.Series(
            series["nibrs_incidents"].to_numpy(np.int64), index=series["week_start"]
        )
        nibrs_total = nibrs_weeks.reindex(pd.to_datetime(unique_weeks).date).fillna(0)
        week_index = np.searchsorted(
            unique_weeks, pd.to_datetime(late["week_start"]).to_numpy().astype("datetime64[D]")
        )
        cells = late["cell_id"].to_numpy(np.int64)
        keep = (cells >= 0) & (cells < N_CELLS)
        for k, column in enumerate(("violent_count", "incident_count")):
            np.subtract.at(
                dense[k], (week_index[keep], cells[keep]), late[column].to_numpy(np.int64)[keep]
            )
        late_nibrs = np.zeros(t, np.int64)
        np.add.at(late_nibrs, week_index[keep], late["nibrs_count"].to_numpy(np.int64)[keep])
        crime = dense[0].astype(np.float32).reshape(t, N_ROWS, N_COLS)
        incidents = dense[1].astype(np.float32).reshape(t, N_ROWS, N_COLS)
        total = dense[1].sum(axis=1).astype(np.float64)
        nibrs = (nibrs_total.to_numpy(np.int64) - late_nibrs).astype(np.float64)
        nibrs_share = pd.Series(
            np.divide(
                nibrs, total, out=nibrs_share.to_numpy(np.float64, copy=True), where=total > 0
            )
        )
    elif as_of is None:
        crime = frame["violent_count"].to_numpy(np.float32).reshape(t, N_ROWS, N_COLS)
        incidents = frame["incident_count"].to_numpy(np.float32).reshape(t, N_ROWS, N_COLS)
    else:
        # as of ``reported_before``: only the incidents published then
        week_index = np.searchsorted(
            unique_weeks, pd.to_datetime(as_of["week_start"]).to_numpy().astype("datetime64[D]")
        )
        cells = as_of["cell_id"].to_numpy(np.int64)
        keep = (cells >= 0) & (cells < N_CELLS)
        dense = np.zeros((3, t, N_CELLS), np.float64)
        for k, column in enumerate(("violent_count", "incident_count", "nibrs_count")):
            np.add.at(dense[k], (week_index[keep], cells[keep]), as_of[column].to_numpy()[keep])
        crime = dense[0].astype(np.float32).reshape(t, N_ROWS, N_COLS)
        incidents = dense[1].astype(np.float32).reshape(t, N_ROWS, N_COLS)
        # the mix of the incidents published then (a week without any keeps the mix
        # grid.weeks records)
        total, nibrs = dense[1].sum(axis=1), dense[2].sum(axis=1)
        nibrs_share = pd.Series(
            np.divide(
                nibrs, total, out=nibrs_share.to_numpy(np.float64, copy=True), where=total > 0
            )
        )
    weather = frame[list(WEATHER_FEATURES)].to_numpy(np.float64).reshape(t, N_CELLS * 3)
    # A week no station reported (NCEI lags a few days behind, so often the newest
    # one) keeps the cell's values of the week before; only a history that starts
    # without weather borrows from the first week that has it. 0 only if none has.
    weather = pd.DataFrame(weather).ffill().bfill().fillna(0.0).to_numpy(np.float32)
    weather = weather.reshape(t, N_ROWS, N_COLS, 3)
    return GridHistory(unique_weeks, crime, weather, incidents, nibrs_share.to_numpy(np.float32))


def aggregated_weeks(bind: Engine | Connection) -> list[date]:
    """Every week that has grid rows, oldest first."""
    with connect(bind) as conn:
        rows = conn.execute(sa.text("SELECT week_start FROM grid.weeks ORDER BY week_start"))
        return [r.week_start for r in rows]


def contiguous_since(bind: Engine | Connection, through: date) -> date | None:
    """First week of the unbroken run of aggregated weeks that ends at ``through``.

    Models need consecutive weeks; an isolated old week (a late report
    re-aggregated long after) must not join the history with a gap.
    """
    weeks = set(aggregated_weeks(bind))
    if through not in weeks:
        return None
    first = through
    while first - timedelta(weeks=1) in weeks:
        first -= timedelta(weeks=1)
    return first


_RUN_HISTORIES: ContextVar[dict | None] = ContextVar("_RUN_HISTORIES", default=None)


@contextmanager
def run_histories() -> Iterator[None]:
    """Within one weekly run, read each as-of history once: the train and forecast steps
    ask for the same one, and nothing they do changes the records or the grid it comes
    from (the run's own loads and aggregation are done by then). The as-of query groups
    every record, so this halves a backfill week's full scans. Each caller gets its own
    copy."""
    token = _RUN_HISTORIES.set({})
    try:
        yield
    finally:
        _RUN_HISTORIES.reset(token)


def history_for_run(
    bind: Engine | Connection, week: date, lag_days: int | None = None
) -> GridHistory:
    """What the run for ``week`` may see: consecutive weeks up to the newest complete one
    (``crimejob.grid.lag``: W-2 with the default 14-day publication lag), counting only
    incidents reported early enough to have been published when the run happened.

    So a live run and a backfill of the same week read the same counts, whatever late
    reports arrived in between. ``lag_days`` defaults to CRIMEJOB_PUBLICATION_LAG_DAYS.
    """
    cache = _RUN_HISTORIES.get()
    if cache is None:
        return _history_for_run(bind, week, lag_days)
    url = (bind.engine if isinstance(bind, Connection) else bind).url
    key = (url.render_as_string(hide_password=True), week, lag_days)
    if key not in cache:
        cache[key] = _history_for_run(bind, week, lag_days)
    return copy.deepcopy(cache[key])


def published_history(bind: Engine | Connection, through: date) -> GridHistory | None:
    """The history through ``through`` as the run whose newest complete week it is saw
    it (:func:`history_for_run` of that run, cut at ``through``); None if no run has
    ``through`` as its newest complete week (a publication lag that skips it).

    What the weekly job fits ``lgbm`` on (:func:`crimejob.models.forecasters.gbm.
    fit_histories`): the same counts every later run reads for those weeks, so one fit
    serves until the next anchor.
    """
    from crimejob.grid.lag import run_weeks

    week = through
    while (plan := run_weeks(week)).history_through < through:
        week += timedelta(weeks=1)
    if plan.history_through != through:
        return None
    history = history_for_run(bind, week)
    return history.through(through) if len(history) else None


def _history_for_run(
    bind: Engine | Connection, week: date, lag_days: int | None = None
) -> GridHistory:
    """:func:`history_for_run` read from the database."""
    from crimejob.grid.lag import run_weeks

    plan = run_weeks(week, lag_days)
    since = contiguous_since(bind, plan.history_through)
    if since is None:
        return load_history(bind, date(1900, 1, 1), since=date(1900, 1, 1))
    return load_history(
        bind, plan.history_through, since=since, reported_before=plan.published_before
    )


def store_history(engine: Engine, history: GridHistory) -> int:
    """Write ``history`` as ``grid.weekly`` and ``grid.weeks`` rows, replacing those weeks.

    Violent and all-incident counts per cell; per week the totals and the
    legacy/NIBRS split of the incidents from ``nibrs_share`` (the week's series
    is the one most of its incidents belong to). Returns the grid rows written.
    """
    if history.shape != (N_ROWS, N_COLS):
        raise ValueError(f"grid.weekly holds the {N_ROWS} x {N_COLS} grid, not {history.shape}")
    t = len(history)
    frame = pd.DataFrame(
        {
            "week_start": np.repeat(history.week_starts, N_CELLS),
            "cell_id": np.tile(np.arange(N_CELLS), t),
            "violent_count": history.crime.reshape(-1).astype(np.int64),
            "incident_count": history.incidents.reshape(-1).astype(np.int64),
            "mean_temp_f": history.weather[..., 0].reshape(-1),
            "total_rain_in": history.weather[..., 1].reshape(-1),
            "holiday": history.weather[..., 2].reshape(-1).astype(np.int64),
        }
    )
    incidents = history.incidents.reshape(t, -1).sum(axis=1).astype(np.int64)
    nibrs = np.round(incidents * history.nibrs_share.astype(np.float64)).astype(np.int64)
    weeks = pd.DataFrame(
        {
            "week_start": history.week_starts,
            "series": np.where(history.nibrs_share >= 0.5, "nibrs", "legacy"),
            "incident_total": incidents,
            "violent_total": history.crime.reshape(t, -1).sum(axis=1).astype(np.int64),
            "legacy_incidents": incidents - nibrs,
            "nibrs_incidents": nibrs,
            "from_records": False,  # not the aggregation of raw records (migration 270)
        }
    )
    week_list = [w.astype("datetime64[D]").item() for w in history.week_starts]
    with engine.begin() as conn:
        for table in ("grid.weekly", "grid.weeks"):
            conn.execute(
                sa.text(f"DELETE FROM {table} WHERE week_start = ANY(:weeks)"),
                {"weeks": week_list},
            )
        copy_frame(conn, weeks, "grid.weeks", list(weeks.columns))
        return copy_frame(conn, frame, "grid.weekly", list(frame.columns))
