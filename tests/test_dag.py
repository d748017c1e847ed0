"""The weekly DAG: it imports cleanly, runs the weekly job's steps in their order, and, run by
``airflow dags test`` against a real PostgreSQL and a local SODA server that behaves like today's
LAPD portal (and NCEI) for a bootstrap and a week three weeks later, leaves next
week's forecast every time, and errors and scores once a week is complete."""

from __future__ import annotations

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


def test_the_dag_runs_the_weekly_job_as_the_package_defines_it(dag):
    """One definition: the DAG's tasks and their order are crimejob's weekly steps, each
    task runs its step through crimejob.job.airflow_tasks.run_task, and no task hands an
    XCom to another (the steps pass their results on through ops.runs)."""
    from crimejob.job.airflow_tasks import run_task
    from crimejob.job.pipeline import WEEKLY_STEPS

    assert set(dag.task_ids) == {step.name for step in WEEKLY_STEPS}
    for step in WEEKLY_STEPS:
        task = dag.get_task(step.name)
        assert task.upstream_task_ids == set(step.after), step.name
        assert task.python_callable is run_task
        assert list(task.op_args) == [step.name]
        assert not task.op_kwargs


def test_training_goes_to_the_gpu_queue_and_pool_and_nothing_else_does(dag):
    train = dag.get_task("train")
    assert (train.queue, train.pool) == ("gpu", "gpu")
    for task in dag.tasks:
        if task.task_id != "train":
            assert task.queue == "default", task.task_id
            assert task.pool == "default_pool", task.task_id


def test_extracts_retry_within_the_stated_budget_and_every_task_has_a_timeout(dag):
    # docs/airflow.md: 3 retries, 10 minutes apart (fixed), then the run fails
    for task_id in ("extract_crime", "extract_weather"):
        task = dag.get_task(task_id)
        assert task.retries == 3
        assert task.retry_delay == timedelta(minutes=10)
        assert not task.retry_exponential_backoff
    for task in dag.tasks:
        assert task.execution_timeout is not None, task.task_id
        assert task.execution_timeout <= timedelta(hours=6)
    # re-checking the same rows cannot change the answer: no retry
    assert dag.get_task("check_completeness").retries == 0


def test_the_ui_shows_the_los_angeles_timezone_a_description_and_the_training_queue(dag):
    assert str(dag.timezone) == "America/Los_Angeles"
    assert "America/Los_Angeles" in dag.description
    assert "America/Los_Angeles" in dag.doc_md and "CRIMEJOB_EXTRACT_RETRIES" in dag.doc_md
    train = dag.get_task("train")
    assert "queue gpu" in train.task_display_name and "pool gpu" in train.task_display_name
    assert dag.params["offline"] is False


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
    """What the DAG's tasks call (crimejob.job.airflow_tasks), with Airflow imported."""
    with airflow_in_process():
        from crimejob.job import airflow_tasks

    return airflow_tasks


def _context(**values):
    return {"params": {}, **values}


def test_the_week_comes_from_the_data_interval_or_the_week_param(dag_module):
    from crimejob.grid.weeks import latest_complete_week

    module = dag_module
    utc_start = datetime(2024, 1, 15, 8, tzinfo=ZoneInfo("UTC"))  # Monday 00:00 in LA
    assert module.run_week(_context(data_interval_start=utc_start)) == date(2024, 1, 15)
    override = _context(params={"week": "2023-07-05"}, data_interval_start=utc_start)
    assert module.run_week(override) == date(2023, 7, 3)  # any day names its week
    assert module.run_week(_context(data_interval_start=None)) == latest_complete_week()


def test_backfill_runs_do_not_stop_on_an_incomplete_week(dag_module):
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType

    def context(run_type, **params):
        return _context(dag_run=SimpleNamespace(run_type=run_type), params=params)

    assert dag_module.run_options(context(DagRunType.BACKFILL)).allows_incomplete
    assert not dag_module.run_options(context(DagRunType.SCHEDULED)).allows_incomplete
    assert not dag_module.run_options(context(DagRunType.MANUAL)).allows_incomplete
    assert not dag_module.run_options(_context()).allows_incomplete
    manual = dag_module.run_options(context(DagRunType.MANUAL, allow_incomplete=True))
    assert manual.allows_incomplete and not manual.backfill


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
def test_airflow_dags_test_bootstraps_and_runs_a_later_week_against_todays_portal(
    tmp_path, sources, clean_db, database_url
):
    """Against a portal like LAPD's today (13-day publication lag, y8y3-fqfu 403), every
    weekly run of the DAG writes next week's forecast from the newest complete week.

    Two runs: the bootstrap, and the run three weeks later, the first for which the
    bootstrap's target week is complete, which scores it. The weeks between add nothing
    that ``crimejob run`` does not check week by week in test_live_portal (the DAG runs
    the same definition), and each run of ``airflow dags test`` costs as much as the
    rest of this test."""
    import json

    from crimejob.grid.lag import run_moment
    from crimejob.job.pipeline import backfill

    engine = clean_db
    soda, ncei = sources
    weeks = [FIRST, FIRST + timedelta(weeks=3)]
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

    assert [r.state for r in runs] == ["success"] * 2, "\n".join(output)
    assert [r.data_interval_start.astimezone(LA).date() for r in runs] == weeks
    assert {t.state for t in tis} == {"success"} and len(tis) == 2 * 8

    # every run wrote next week's forecast from W-2, three weeks ahead
    forecasts = pd.read_sql(
        "SELECT target_week, count(*) AS n, min(history_through) AS through, "
        "min(horizon_weeks) AS horizon FROM bi.forecasts WHERE is_production "
        "GROUP BY target_week ORDER BY target_week",
        engine,
    )
    assert forecasts.to_dict("list") == {
        "target_week": [w + timedelta(weeks=1) for w in weeks],
        "n": [4500] * 2,
        "through": [w - timedelta(weeks=2) for w in weeks],
        "horizon": [3] * 2,
    }
    # the first forecast's week (FIRST + 1) was complete by the last run, which scored it
    week2 = FIRST + timedelta(weeks=1)
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

    # each Airflow run is a weekly run like any other: one row of ops.runs (bi.runs) with
    # every step, its forecasts carry its run id, and `crimejob backfill` skips its week
    runs = pd.read_sql(
        "SELECT run_id, week_start, status, step_seconds, counts, params FROM bi.runs "
        "WHERE kind = 'weekly' ORDER BY run_id",
        engine,
    )
    assert runs["week_start"].tolist() == weeks
    assert runs["status"].tolist() == ["succeeded"] * 2
    steps = {"extract_crime", "extract_weather", *PIPELINE}
    assert all(set(json.loads(text)) == steps for text in runs["step_seconds"])
    assert all(json.loads(text)["airflow_run_id"].startswith(DAG_ID) for text in runs["params"])
    run_ids = pd.read_sql(
        "SELECT target_week, min(run_id) AS first, max(run_id) AS last FROM ml.forecasts "
        "GROUP BY target_week ORDER BY target_week",
        engine,
    )
    assert run_ids["first"].tolist() == run_ids["last"].tolist() == runs["run_id"].tolist()
    assert (
        pd.read_sql("SELECT count(*) AS n FROM ml.forecasts WHERE run_id IS NULL", engine)[
            "n"
        ].iloc[0]
        == 0
    )
    for week in weeks:
        skipped = backfill(engine, week, week)
        assert (skipped.ran, skipped.skipped) == ([], [week])
