"""What the Airflow DAG's tasks do: each runs one step of the weekly job definition.

``dags/crimejob_weekly.py`` holds only the DAG's shape and its Airflow settings; every
task calls :func:`run_task` with its step's name, which runs that step of
:data:`crimejob.job.pipeline.WEEKLY_STEPS` as part of this Airflow run's row in
``ops.runs`` (:func:`crimejob.job.pipeline.run_airflow_step`). The steps hand their
results to each other through that row, not through XComs.

Imported only where Airflow is installed (the DAG, its tests); the Airflow imports sit
inside the functions so that the module imports anywhere.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

log = logging.getLogger(__name__)

CONNECTION_ID = "crimejob_db"


def extract_retries() -> dict[str, Any]:
    """The extract tasks' retry budget (``CRIMEJOB_EXTRACT_RETRIES`` retries,
    ``CRIMEJOB_EXTRACT_RETRY_MINUTES`` apart; 3 and 10 by default), on top of the HTTP
    client's own short retries inside each try. A source still down after the last try
    fails the run, and the schedule moves on: with the defaults, an unreachable source
    ends the run failed about 30 minutes after it started. Airflow reads it when it parses
    the DAG (a task's retries are part of its definition)."""
    from crimejob.config import get_settings

    settings = get_settings()
    return {
        "retries": settings.extract_retries,
        "retry_delay": timedelta(minutes=settings.extract_retry_minutes),
        "retry_exponential_backoff": 0,  # fixed delays: the budget is what the docs say
    }


def database_url() -> str | None:
    """The crimejob database from the Airflow connection ``crimejob_db``, if defined.

    ``None`` means "not defined": the steps then use the project's own
    configuration (``CRIMEJOB_DATABASE_URL`` or the embedded PostgreSQL).
    The URL is built from the connection's fields so that a Unix-socket host
    given as ``?host=/path`` in ``AIRFLOW_CONN_CRIMEJOB_DB`` survives.
    """
    import sqlalchemy as sa
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(CONNECTION_ID)
    except AirflowNotFoundException:
        return None
    query = {key: str(value) for key, value in (conn.extra_dejson or {}).items()}
    url = sa.engine.URL.create(
        "postgresql+psycopg2",
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
        query=query,
    )
    return url.render_as_string(hide_password=False)


def run_week(context: dict[str, Any]) -> date:
    """The week this run is for: the ``week`` param if given, else the data interval's Monday."""
    from crimejob.grid.weeks import latest_complete_week, week_start

    override = (context.get("params") or {}).get("week")
    if override:
        return week_start(str(override))
    interval_start = context.get("data_interval_start")
    if interval_start is None:  # a manual run without a logical date
        return latest_complete_week()
    return week_start(interval_start)


def is_backfill(context: dict[str, Any]) -> bool:
    """Whether this is a run of ``airflow backfill create`` (completeness only warns)."""
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return getattr(run_type, "value", run_type) == "backfill"


def run_options(context: dict[str, Any]):
    """The run's options from the DAG's params and the kind of run."""
    from crimejob.job.pipeline import RunOptions

    params = context.get("params") or {}
    return RunOptions(
        allow_incomplete=bool(params.get("allow_incomplete")),
        mode=params.get("train_mode") or "auto",
        offline=bool(params.get("offline")),
        backfill=is_backfill(context),
    )


def airflow_run_id(context: dict[str, Any]) -> str:
    """This Airflow run's name, ``dag_id/run_id``: the key of its row in ``ops.runs``."""
    dag_run = context["dag_run"]
    return f"{dag_run.dag_id}/{dag_run.run_id}"


def run_task(step: str) -> None:
    """Run ``step`` of the weekly job for this Airflow run (its result goes to ``ops.runs``,
    and its summary to the task's log)."""
    from airflow.sdk import get_current_context

    from crimejob.db import get_engine
    from crimejob.job.pipeline import run_airflow_step

    context = get_current_context()
    engine = get_engine(database_url())
    result = run_airflow_step(
        engine, run_week(context), run_options(context), airflow_run_id(context), step
    )
    log.info("%s: %s", step, result.summary())
