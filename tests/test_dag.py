"""The weekly DAG: it imports cleanly, has the shape the design asks for, and, run by
``airflow dags test`` against a real PostgreSQL and a local SODA server that behaves like today's
LAPD portal (and NCEI) for a bootstrap and three consecutive weeks, leaves next
week's forecast every week, and errors and scores once a week is complete."""

from __future__ import annotations

import importlib.util
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.airflow_support import (
    DAG_ID,
    DAGS_FOLDER,
    FIRST,
    AirflowStack,
    airflow_base_env,
    airflow_in_process,
    job_settings,
    job_sources,
    metadata_database,
    timings,
)

LA = ZoneInfo("America/Los_Angeles")
PIPELINE = [
    "load",
    "aggregate",
    "check_completeness",
    "score",
    "train",
    "forecast",
]


@pytest.fixture(scope="module")
def dag():
    """The DAG as the dag-processor sees it (parsed from the dags folder)."""
    with airflow_in_process():
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def test_dags_folder_imports_without_errors(dag):
    assert dag.dag_id == DAG_ID
    assert "crimejob" in dag.tags


def test_tasks_are_the_steps_in_order(dag):
    assert set(dag.task_ids) == {"extract_crime", "extract_weather", *PIPELINE}
    # both extracts run in parallel and feed the load
    for extract in ("extract_crime", "extract_weather"):
        assert dag.get_task(extract).upstream_task_ids == set()
        assert dag.get_task(extract).downstream_task_ids == {"load"}
    for before, after in zip(PIPELINE, PIPELINE[1:], strict=False):
        assert dag.get_task(after).upstream_task_ids == {before}, after
    assert dag.get_task("forecast").downstream_task_ids == set()


def test_training_goes_to_the_gpu_queue_and_pool_and_nothing_else_does(dag):
    train = dag.get_task("train")
    assert (train.queue, train.pool) == ("gpu", "gpu")
    for task in dag.tasks:
        if task.task_id != "train":
            assert task.queue == "default", task.task_id
            assert task.pool == "default_pool", task.task_id


def test_extracts_retry_with_exponential_backoff_and_every_task_has_a_timeout(dag):
    for task_id in ("extract_crime", "extract_weather"):
        task = dag.get_task(task_id)
        assert task.retries >= 3
        assert task.retry_exponential_backoff > 1
        assert task.max_retry_delay is not None
        # the delays actually grow: 2nd retry waits longer than the 1st
        assert task.retry_delay < task.retry_delay * task.retry_exponential_backoff
    for task in dag.tasks:
        assert task.execution_timeout is not None, task.task_id
        assert task.execution_timeout <= timedelta(hours=6)
    # re-checking the same rows cannot change the answer: no retry
    assert dag.get_task("check_completeness").retries == 0


def test_weeks_run_one_at_a_time(dag):
    assert dag.max_active_runs == 1


def _core_timetable(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable


@pytest.mark.parametrize(
    "run_after, week",
    [
        (datetime(2024, 1, 10, 12, tzinfo=LA), date(2024, 1, 1)),  # mid-week: last full week
        (datetime(2024, 3, 12, 9, tzinfo=LA), date(2024, 3, 4)),  # the week DST began
        (datetime(2024, 11, 4, 1, tzinfo=LA), date(2024, 10, 28)),  # the week DST ended
    ],
)
def test_each_run_covers_one_week_monday_to_monday_in_los_angeles(dag, run_after, week):
    interval = _core_timetable(dag).infer_manual_data_interval(run_after=run_after)
    start, end = interval.start.astimezone(LA), interval.end.astimezone(LA)
    assert start.date() == week and start.weekday() == 0
    assert (start.hour, start.minute, end.hour, end.minute) == (0, 0, 0, 0)
    assert end.date() == week + timedelta(weeks=1)


def test_scheduled_runs_follow_each_other_week_by_week(dag):
    from airflow.timetables.base import DataInterval, TimeRestriction

    timetable = _core_timetable(dag)
    first = timetable.infer_manual_data_interval(run_after=datetime(2024, 3, 11, 12, tzinfo=LA))
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(first.start, first.end),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert info.data_interval.start == first.end  # no gap, no overlap
    assert info.data_interval.start.astimezone(LA).date() == date(2024, 3, 11)
    assert info.run_after == info.data_interval.end  # a week runs once it has ended


@pytest.fixture(scope="module")
def dag_module(dag):
    """The DAG file as a module, for its helpers (DagBag imports it under a private name)."""
    spec = importlib.util.spec_from_file_location(
        "crimejob_weekly_dag", DAGS_FOLDER / "crimejob_weekly.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _context(**values):
    return {"params": {}, **values}


def test_the_week_comes_from_the_data_interval_or_the_week_param(dag_module):
    from crimejob.weeks import latest_complete_week

    module = dag_module
    utc_start = datetime(2024, 1, 15, 8, tzinfo=ZoneInfo("UTC"))  # Monday 00:00 in LA
    assert module.run_week(_context(data_interval_start=utc_start)) == date(2024, 1, 15)
    override = _context(params={"week": "2023-07-05"}, data_interval_start=utc_start)
    assert module.run_week(override) == date(2023, 7, 3)  # any day names its week
    assert module.run_week(_context(data_interval_start=None)) == latest_complete_week()


def test_backfill_runs_do_not_stop_on_an_incomplete_week(dag_module):
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType

    def context(run_type):
        return _context(dag_run=SimpleNamespace(run_type=run_type))

    assert dag_module._is_backfill(context(DagRunType.BACKFILL))
    assert not dag_module._is_backfill(context(DagRunType.SCHEDULED))
    assert not dag_module._is_backfill(context(DagRunType.MANUAL))
    assert not dag_module._is_backfill(_context())


def test_database_comes_from_the_airflow_connection(dag_module, monkeypatch):
    module = dag_module
    monkeypatch.delenv("AIRFLOW_CONN_CRIMEJOB_DB", raising=False)
    assert module.database_url() is None  # steps fall back to crimejob's configuration
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRIMEJOB_DB", "postgresql://job:pw@db.example:5433/crimejob?sslmode=require"
    )
    url = sa.engine.make_url(module.database_url())
    assert (url.drivername, url.username, url.password) == ("postgresql+psycopg2", "job", "pw")
    assert (url.host, url.port, url.database) == ("db.example", 5433, "crimejob")
    assert url.query == {"sslmode": "require"}


# --- airflow dags test: the whole DAG against real servers -----------------------


@pytest.fixture
def sources():
    with job_sources() as servers:
        yield servers


@pytest.mark.slow
def test_airflow_dags_test_bootstraps_and_runs_three_weeks_against_todays_portal(
    tmp_path, sources, clean_db, database_url
):
    """Against a portal like LAPD's today (13-day publication lag, y8y3-fqfu 403), every
    weekly run of the DAG writes next week's forecast from the newest complete week."""
    from crimejob.lag import run_moment

    engine = clean_db
    soda, ncei = sources
    weeks = [FIRST + timedelta(weeks=i) for i in range(4)]
    with metadata_database(database_url, tmp_path) as metadata_url:
        env = airflow_base_env(
            tmp_path / "airflow",
            metadata_url,
            **job_settings(tmp_path, soda, ncei, database_url),
            CRIMEJOB_MODEL="mean_13w",  # a cheap model: the Celery test trains the real one
        )
        stack = AirflowStack(tmp_path, env)
        output: list[str] = []
        try:
            for week in weeks:
                soda.app.now = run_moment(week)  # the portal as it is when the week ends
                # the logical date is when the run happens: the Tuesday after the week
                result = stack.cli("dags", "test", DAG_ID, str(week + timedelta(days=8)))
                output.append(result.stdout[-3000:] + result.stderr[-3000:])
            runs = stack.dag_runs()
            tis = stack.task_instances()
            print(timings(tis))
        finally:
            stack.stop()

    assert [r.state for r in runs] == ["success"] * 4, "\n".join(output)
    assert [r.data_interval_start.astimezone(LA).date() for r in runs] == weeks
    assert {t.state for t in tis} == {"success"} and len(tis) == 4 * 8

    # every run wrote next week's forecast from W-2, three weeks ahead
    forecasts = pd.read_sql(
        "SELECT target_week, count(*) AS n, min(history_through) AS through, "
        "min(horizon_weeks) AS horizon FROM bi.forecasts WHERE is_production "
        "GROUP BY target_week ORDER BY target_week",
        engine,
    )
    assert forecasts.to_dict("list") == {
        "target_week": [w + timedelta(weeks=1) for w in weeks],
        "n": [4500] * 4,
        "through": [w - timedelta(weeks=2) for w in weeks],
        "horizon": [3] * 4,
    }
    # the first forecast's week (FIRST + 1) was complete by the last run, which scored it
    week2 = weeks[1]
    scores = pd.read_sql("SELECT * FROM bi.forecast_scores", engine)
    assert set(scores["target_week"]) == {week2}
    actual = pd.read_sql(
        sa.text("SELECT sum(violent_count) AS s FROM grid.weekly WHERE week_start = :w"),
        engine,
        params={"w": week2},
    )["s"].iloc[0]
    assert actual > 0
    assert (scores["actual_total"] == actual).all()
    assert scores[["mae", "rmse", "poisson_deviance", "pai_5pct"]].notna().all().all()
    errors = pd.read_sql(
        sa.text("SELECT count(*) AS n FROM bi.forecast_errors WHERE target_week = :w"),
        engine,
        params={"w": week2},
    )
    assert errors["n"].iloc[0] >= 4500
    assert not any("y8y3-fqfu" in path for path, _, _ in soda.requests)
