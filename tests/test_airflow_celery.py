"""Airflow runs the weekly job as a data engineer would: a backfill on a Celery stack.

One stack serves every test here (starting one costs more than the assertions):
Redis (127.0.0.1:6379) is the broker, the test PostgreSQL holds Airflow's metadata
and the Celery results; an API server, a dag-processor, a scheduler and two Celery
workers run as separate processes, one worker on queue ``default`` and one on queue
``gpu`` only. ``airflow backfill create`` asks for two past weeks of the real weekly
DAG, with the real network (a few epochs): the first week retrains, the second
fine-tunes. The task instances say which worker ran what, and when.

Without Redis the same backfill runs on a LocalExecutor stack: the order of the runs
is still checked, and the test of the workers says why it skipped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob.models.forecasters import default_model
from tests.airflow_support import (
    DAG_ID,
    FIRST,
    AirflowStack,
    airflow_base_env,
    celery_result_backend,
    free_port,
    job_settings,
    job_sources,
    metadata_database,
    redis_broker,
    redis_unreachable,
    service_settings,
    start_core_services,
    timings,
    wait_for_runs,
)
from tests.conftest import empty_data_tables

pytestmark = pytest.mark.slow

LA = ZoneInfo("America/Los_Angeles")
CPU_WORKER, GPU_WORKER = "cpu-worker", "gpu-worker"
SECOND = FIRST + timedelta(weeks=1)


@dataclass(frozen=True)
class Backfill:
    """What Airflow's metadata said once the backfill had finished."""

    executor: str
    runs: list[sa.Row]
    task_instances: list[sa.Row]


def _start_worker(stack: AirflowStack, name: str, queue: str, concurrency: int) -> None:
    stack.start(
        name,
        "celery",
        "worker",
        "--queues",
        queue,
        "--concurrency",
        str(concurrency),
        "--celery-hostname",
        f"{name}@%h",
        "--skip-serve-logs",
        CRIMEJOB_TEST_WORKER_NAME=name,  # what the task instances record as hostname
    )


@pytest.fixture(scope="module")
def backfill(tmp_path_factory, engine, database_url, _dirty_tables_query) -> Backfill:
    """Two weeks backfilled through a running scheduler, the job's database empty before."""
    empty_data_tables(engine, _dirty_tables_query)
    tmp_path = tmp_path_factory.mktemp("airflow")
    no_redis = redis_unreachable()
    with contextlib.ExitStack() as resources:
        broker = None if no_redis else resources.enter_context(redis_broker())
        soda, ncei = resources.enter_context(job_sources())
        metadata_url = resources.enter_context(metadata_database(database_url, tmp_path))
        api_port = free_port()
        if broker:
            services = service_settings(
                "CeleryExecutor", api_port, broker, celery_result_backend(metadata_url)
            )
        else:
            services = service_settings("LocalExecutor", api_port)
        env = airflow_base_env(
            tmp_path / "airflow",
            metadata_url,
            **services,
            **job_settings(tmp_path, soda, ncei, database_url),
        )
        stack = AirflowStack(tmp_path, env)
        try:
            start_core_services(stack, api_port)
            if broker:
                _start_worker(stack, CPU_WORKER, "default", concurrency=2)
                _start_worker(stack, GPU_WORKER, "gpu", concurrency=1)
            # Dates are read as UTC midnight, 8 hours before Monday midnight in LA:
            # the day after the last Monday takes that week in (see docs/airflow.md).
            stack.cli(
                "backfill",
                "create",
                "--dag-id",
                DAG_ID,
                "--from-date",
                str(FIRST),
                "--to-date",
                str(SECOND + timedelta(days=1)),
                "--max-active-runs",
                "1",
            )
            runs = wait_for_runs(stack, 2, timeout=900)
            task_instances = stack.task_instances()
            print(timings(task_instances))
        finally:
            stack.stop()
    return Backfill(services["AIRFLOW__CORE__EXECUTOR"], runs, task_instances)


def test_backfill_create_runs_two_weeks_in_order(backfill, engine):
    runs = backfill.runs
    assert [r.run_type for r in runs] == ["backfill", "backfill"]
    assert [r.state for r in runs] == ["success", "success"]
    assert [r.data_interval_start.astimezone(LA).date() for r in runs] == [FIRST, SECOND]
    # oldest first, and the second week started only once the first had finished
    assert runs[0].end_date <= runs[1].start_date
    first_tis = [ti for ti in backfill.task_instances if ti.run_id == runs[0].run_id]
    second_tis = [ti for ti in backfill.task_instances if ti.run_id == runs[1].run_id]
    assert len(first_tis) == len(second_tis) == 8
    assert {ti.state for ti in backfill.task_instances} == {"success"}
    assert max(ti.end_date for ti in first_tis) <= min(ti.start_date for ti in second_tis)

    forecasts = pd.read_sql(
        "SELECT target_week, count(*) AS n FROM bi.forecasts WHERE is_production "
        "GROUP BY target_week ORDER BY target_week",
        engine,
    )
    assert forecasts.to_dict("list") == {
        "target_week": [SECOND, SECOND + timedelta(weeks=1)],
        "n": [4500, 4500],
    }


def test_train_runs_on_the_gpu_worker_and_every_other_task_on_the_cpu_worker(backfill, engine):
    if backfill.executor != "CeleryExecutor":
        pytest.skip(f"{redis_unreachable()}; the backfill ran on a LocalExecutor stack")
    for run in backfill.runs:
        ran_on = {
            ti.task_id: (ti.hostname, ti.queue, ti.pool)
            for ti in backfill.task_instances
            if ti.run_id == run.run_id
        }
        assert ran_on.pop("train") == (GPU_WORKER, "gpu", "gpu")
        for task_id, (hostname, queue, pool) in ran_on.items():
            assert (hostname, queue, pool) == (CPU_WORKER, "default", "default_pool"), task_id

    # the runs were the real job: the GPU worker trained the network for the first week
    # (not promoted: a fresh network rarely beats the baselines at once) and, in the
    # second, kept to "no retrain until the next is due"; the forecast task on the CPU
    # worker wrote both weeks' forecasts of every contender
    versions = pd.read_sql("SELECT model_name, version, mode FROM ml.model_versions", engine)
    assert versions.to_dict("list") == {
        "model_name": [default_model()],
        "version": [1],
        "mode": ["retrain"],
    }
    train = pd.read_sql(
        "SELECT week_start, coalesce(counts::jsonb -> 'train' ->> 'version', 'none') AS version, "
        "(counts::jsonb -> 'train' ->> 'skipped')::boolean AS skipped "
        "FROM bi.runs WHERE kind = 'weekly' ORDER BY run_id",
        engine,
    )
    assert train.to_dict("list") == {
        "week_start": [FIRST, SECOND],
        "version": ["1", "none"],
        "skipped": [False, True],
    }
    forecasts = pd.read_sql(
        "SELECT target_week, count(DISTINCT model_name) AS models, count(*) AS n "
        "FROM bi.forecasts GROUP BY 1 ORDER BY 1",
        engine,
    )
    assert forecasts["target_week"].tolist() == [SECOND, SECOND + timedelta(weeks=1)]
    assert (forecasts["n"] == forecasts["models"] * 4500).all()
