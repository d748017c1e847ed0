"""The weekly crimejob run as an Airflow DAG: one run per Los Angeles week.

The DAG only orchestrates. Each task works out the week and the database,
calls one function of :mod:`crimejob.steps` and hands its small dict result
to the next task as XCom; all business logic lives in the ``crimejob``
package, which the ``crimejob`` command line calls too.

Scheduling: ``CronDataIntervalTimetable("0 0 * * 1", America/Los_Angeles)``
gives each run the data interval Monday 00:00 to the next Monday 00:00 in
LA time, which is exactly one crimejob week, and starts the run once that
week has ended. The week comes from the data interval (or from the ``week``
param on a manual run). ``max_active_runs=1`` keeps weeks in order, so a
backfill (``airflow backfill create``) replays them oldest first.

Every run writes next week's forecast. LAPD publishes reports about two weeks
late, so it is made from the weeks complete when the run starts (W-2 with the
default ``CRIMEJOB_PUBLICATION_LAG_DAYS``), three weeks ahead: see
``docs/live-feed.md``. Nothing waits for the lag.

Training runs on the Celery queue ``gpu`` in the one-slot pool ``gpu``:
only the GPU worker listens on that queue, and never two trainings at once.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

DAG_ID = "crimejob_weekly"
CONNECTION_ID = "crimejob_db"
LA_TIMEZONE = "America/Los_Angeles"
GPU_QUEUE = "gpu"
GPU_POOL = "gpu"
TRAIN_MODES = ["auto", "retrain", "finetune"]

WEEKLY = CronDataIntervalTimetable("0 0 * * 1", timezone=LA_TIMEZONE)

# Sources throttle and fail transiently: retry the extracts with exponential
# backoff (2, 4, 8, 16 min) on top of the HTTP client's own short retries.
EXTRACT_RETRIES = {
    "retries": 4,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
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


def _engine():
    from crimejob.steps import engine_from_url

    return engine_from_url(database_url())


def run_week(context: dict[str, Any] | None = None) -> date:
    """The week this run is for: the ``week`` param if given, else the data interval's Monday."""
    from crimejob.weeks import latest_complete_week, week_start

    context = context or get_current_context()
    override = (context.get("params") or {}).get("week")
    if override:
        return week_start(str(override))
    interval_start = context.get("data_interval_start")
    if interval_start is None:  # a manual run without a logical date
        return latest_complete_week()
    return week_start(interval_start)


def _is_backfill(context: dict[str, Any]) -> bool:
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return getattr(run_type, "value", run_type) == "backfill"


@dag(
    dag_id=DAG_ID,
    schedule=WEEKLY,
    start_date=pendulum.datetime(2020, 1, 6, tz=LA_TIMEZONE),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=12),
    default_args={
        "owner": "crimejob",
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(minutes=30),
    },
    params={
        "week": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Run for this week (any date in it) instead of the data interval's.",
        ),
        "allow_incomplete": Param(
            False,
            type="boolean",
            description="Go on even if the source looks broken: the newest week complete "
            "after the publication lag half missing, or nothing published lately.",
        ),
        "train_mode": Param(
            "auto",
            enum=TRAIN_MODES,
            description="auto: the retraining policy decides between fine-tuning and "
            "retraining; retrain or finetune force one.",
        ),
    },
    tags=["crimejob"],
    doc_md=__doc__,
)
def crimejob_weekly():
    @task(execution_timeout=timedelta(hours=1), **EXTRACT_RETRIES)
    def extract_crime() -> dict:
        from crimejob import steps

        return steps.extract_crime(_engine(), run_week())

    @task(execution_timeout=timedelta(hours=1), **EXTRACT_RETRIES)
    def extract_weather() -> dict:
        from crimejob import steps

        return steps.extract_weather(_engine(), run_week())

    @task(execution_timeout=timedelta(hours=1))
    def load(crime_extract: dict, weather_extract: dict) -> dict:
        from crimejob import steps

        return steps.load(_engine(), run_week(), crime_extract, weather_extract)

    @task
    def aggregate(loaded: dict) -> dict:
        from crimejob import steps

        return steps.aggregate(_engine(), run_week(), loaded)

    # Not retried: re-checking the same loaded rows cannot change the answer;
    # clear the run later, or trigger it with allow_incomplete=true. Backfill
    # runs only warn: past weeks are complete by definition (as `crimejob
    # backfill` does).
    @task(retries=0, execution_timeout=timedelta(minutes=10))
    def check_completeness(aggregated: dict) -> dict:
        from crimejob import steps

        context = get_current_context()
        allow = bool(context["params"].get("allow_incomplete")) or _is_backfill(context)
        return steps.check_completeness(_engine(), run_week(context), allow_incomplete=allow)

    @task
    def score(checked: dict) -> dict:
        from crimejob import steps

        return steps.score(_engine(), run_week())

    @task(queue=GPU_QUEUE, pool=GPU_POOL, execution_timeout=timedelta(hours=6))
    def train(scored: dict) -> dict:
        from crimejob import steps

        mode = get_current_context()["params"].get("train_mode") or "auto"
        return steps.train(_engine(), run_week(), mode=mode)

    @task
    def forecast(trained: dict) -> dict:
        from crimejob import steps

        return steps.forecast(_engine(), run_week())

    loaded = load(extract_crime(), extract_weather())
    forecast(train(score(check_completeness(aggregate(loaded)))))


crimejob_weekly()
