"""The weekly crimejob run as an Airflow DAG: one run per Los Angeles week.

**What it does.** Each run is one crimejob week and writes the violent-crime forecast
of next week for all 4,500 cells of the Los Angeles grid (cells about 1.17 km
north-south by 0.63 km east-west), scores the forecasts whose week has become
complete, and fine-tunes (or retrains) the model. BI tools read the results in the
`bi` views (`bi.forecast_latest`, `bi.forecast_scores`, ...).

**Time zone: America/Los_Angeles.** The schedule is
`CronDataIntervalTimetable("0 0 * * 1", America/Los_Angeles)`: a run's data
interval is Monday 00:00 to the next Monday 00:00 in LA time (DST included), and the
run starts once that week has ended. The UI displays times in the browser's time
zone (switch it in the user menu): Monday 00:00 in LA is 07:00 or 08:00 UTC.

**Tasks.** `extract_crime` and `extract_weather` (in parallel) → `load` →
`aggregate` → `check_completeness` → `score` → `train` → `forecast`. Each calls one
function of `crimejob.job.steps`, the functions `crimejob run` calls; all business logic
lives in the `crimejob` package. `train` runs on the Celery queue **gpu** in the
one-slot pool **gpu**: only the GPU worker listens there, one training at a time.
`max_active_runs=1` keeps weeks in order, so a backfill replays them oldest first.

**The publication lag.** LAPD publishes reports about two weeks late, so every run
forecasts next week from the weeks complete when it starts (W-2 with the default
`CRIMEJOB_PUBLICATION_LAG_DAYS`), three weeks ahead (docs/live-feed.md). Nothing
waits for the lag; only a clearly broken source stops a run (`check_completeness`).

**When a source is down.** The extracts retry `CRIMEJOB_EXTRACT_RETRIES` times (3),
`CRIMEJOB_EXTRACT_RETRY_MINUTES` apart (10), each try with the HTTP client's own
short retries; then the run fails (about 30 minutes after it started) and the next
scheduled run is free to go. The previous forecast stays in place.

**Params of a manual run.** `week` (any date in it), `offline` (fetch nothing, use the
records already in the database, as `crimejob run --offline`), `allow_incomplete`,
`train_mode` (auto, retrain, finetune).
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


def _extract_retries() -> dict[str, Any]:
    """The extract tasks' retry budget (``CRIMEJOB_EXTRACT_RETRIES`` retries,
    ``CRIMEJOB_EXTRACT_RETRY_MINUTES`` apart; 3 and 10 by default), on top of the HTTP
    client's own short retries inside each try. A source still down after the last try
    fails the run, and the schedule moves on: with the defaults, an unreachable source
    ends the run failed about 30 minutes after it started."""
    from crimejob.config import get_settings

    settings = get_settings()
    return {
        "retries": settings.extract_retries,
        "retry_delay": timedelta(minutes=settings.extract_retry_minutes),
        "retry_exponential_backoff": 0,  # fixed delays: the budget is what the docs say
    }


EXTRACT_RETRIES = _extract_retries()


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
    from crimejob.job.steps import engine_from_url

    return engine_from_url(database_url())


def run_week(context: dict[str, Any] | None = None) -> date:
    """The week this run is for: the ``week`` param if given, else the data interval's Monday."""
    from crimejob.grid.weeks import latest_complete_week, week_start

    context = context or get_current_context()
    override = (context.get("params") or {}).get("week")
    if override:
        return week_start(str(override))
    interval_start = context.get("data_interval_start")
    if interval_start is None:  # a manual run without a logical date
        return latest_complete_week()
    return week_start(interval_start)


def _offline(context: dict[str, Any] | None = None) -> bool:
    """The ``offline`` param: no fetching, the records already in the database."""
    context = context or get_current_context()
    return bool((context.get("params") or {}).get("offline"))


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
        "offline": Param(
            False,
            type="boolean",
            description="Fetch nothing: use the records already in the database (after a CSV "
            "import, or without network), as `crimejob run --offline`.",
        ),
        "train_mode": Param(
            "auto",
            enum=TRAIN_MODES,
            description="auto: the retraining policy decides between fine-tuning and "
            "retraining; retrain or finetune force one.",
        ),
    },
    tags=["crimejob"],
    description="Weekly LA violent-crime forecast: one run per week, Monday 00:00 to Monday "
    "00:00 America/Los_Angeles; training on queue gpu, pool gpu",
    doc_md=__doc__,
)
def crimejob_weekly():
    @task(execution_timeout=timedelta(hours=1), **EXTRACT_RETRIES)
    def extract_crime() -> dict:
        from crimejob.job import steps

        if _offline():
            return {"offline": True, "records": 0}
        return steps.extract_crime(_engine(), run_week())

    @task(execution_timeout=timedelta(hours=1), **EXTRACT_RETRIES)
    def extract_weather() -> dict:
        from crimejob.job import steps

        if _offline():
            return {"offline": True, "records": 0}
        return steps.extract_weather(_engine(), run_week())

    @task(execution_timeout=timedelta(hours=1))
    def load(crime_extract: dict, weather_extract: dict) -> dict:
        from crimejob.job import steps

        if _offline():
            return steps.offline_loaded(_engine(), run_week())
        return steps.load(_engine(), run_week(), crime_extract, weather_extract)

    @task
    def aggregate(loaded: dict) -> dict:
        from crimejob.job import steps

        return steps.aggregate(_engine(), run_week(), loaded)

    # Not retried: re-checking the same loaded rows cannot change the answer;
    # clear the run later, or trigger it with allow_incomplete=true. Backfill
    # runs only warn: past weeks are complete by definition (as `crimejob
    # backfill` does).
    @task(retries=0, execution_timeout=timedelta(minutes=10))
    def check_completeness(aggregated: dict) -> dict:
        from crimejob.job import steps

        context = get_current_context()
        allow = bool(context["params"].get("allow_incomplete")) or _is_backfill(context)
        return steps.check_completeness(
            _engine(), run_week(context), allow_incomplete=allow, offline=_offline(context)
        )

    @task
    def score(checked: dict) -> dict:
        from crimejob.job import steps

        return steps.score(_engine(), run_week())

    @task(
        queue=GPU_QUEUE,
        pool=GPU_POOL,
        execution_timeout=timedelta(hours=6),
        task_display_name=f"train (queue {GPU_QUEUE}, pool {GPU_POOL})",
        doc_md=f"Fine-tune or retrain the production model. Runs on the Celery queue "
        f"`{GPU_QUEUE}` (only the GPU worker listens there) in the one-slot pool `{GPU_POOL}`: "
        "one training at a time.",
    )
    def train(scored: dict) -> dict:
        from crimejob.job import steps

        mode = get_current_context()["params"].get("train_mode") or "auto"
        return steps.train(_engine(), run_week(), mode=mode)

    @task
    def forecast(trained: dict) -> dict:
        from crimejob.job import steps

        return steps.forecast(_engine(), run_week())

    loaded = load(extract_crime(), extract_weather())
    forecast(train(score(check_completeness(aggregate(loaded)))))


crimejob_weekly()
