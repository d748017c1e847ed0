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
`aggregate` → `check_completeness` → `score` → `train` → `forecast`: the steps of the
weekly job as the package defines them (`crimejob.job.pipeline.WEEKLY_STEPS`), the
same `crimejob run` and `crimejob backfill` run. Each task runs its step and records
it in `ops.runs`: the whole Airflow run is one weekly run there (`bi.runs`), its
forecasts carry its run id, and `crimejob backfill` skips its week. The steps pass
their results on through that record, not through XComs. `train` runs on the Celery
queue **gpu** in the one-slot pool **gpu**: only the GPU worker listens there, one
training at a time. `max_active_runs=1` keeps weeks in order, so a backfill replays
them oldest first, and a backfill run only warns on an incomplete week, as
`crimejob backfill` does.

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

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, chain, dag, task

from crimejob.job.airflow_tasks import extract_retries, run_task

DAG_ID = "crimejob_weekly"
LA_TIMEZONE = "America/Los_Angeles"
GPU_QUEUE = "gpu"
GPU_POOL = "gpu"
TRAIN_MODES = ["auto", "retrain", "finetune"]


def step(name: str, **settings):
    """The task that runs step ``name`` of the weekly job, with its Airflow settings."""
    return task(task_id=name, **settings)(run_task)(name)


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 0 * * 1", timezone=LA_TIMEZONE),
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
    extract_crime = step("extract_crime", execution_timeout=timedelta(hours=1), **extract_retries())
    extract_weather = step(
        "extract_weather", execution_timeout=timedelta(hours=1), **extract_retries()
    )
    load = step("load", execution_timeout=timedelta(hours=1))
    aggregate = step("aggregate")
    # Not retried: re-checking the same loaded rows cannot change the answer; clear the
    # run later, or trigger it with allow_incomplete=true.
    check_completeness = step(
        "check_completeness", retries=0, execution_timeout=timedelta(minutes=10)
    )
    score = step("score")
    train = step(
        "train",
        queue=GPU_QUEUE,
        pool=GPU_POOL,
        execution_timeout=timedelta(hours=6),
        task_display_name=f"train (queue {GPU_QUEUE}, pool {GPU_POOL})",
        doc_md=f"Fine-tune or retrain the production model. Runs on the Celery queue "
        f"`{GPU_QUEUE}` (only the GPU worker listens there) in the one-slot pool `{GPU_POOL}`: "
        "one training at a time.",
    )
    forecast = step("forecast")

    # extract_crime ─┐
    #                ├─ load ─ aggregate ─ check_completeness ─ score ─ train ─ forecast
    # extract_weather┘          (crimejob.job.pipeline.WEEKLY_STEPS, tests/test_dag.py)
    chain(
        [extract_crime, extract_weather], load, aggregate, check_completeness, score, train,
        forecast,
    )  # fmt: skip


crimejob_weekly()
