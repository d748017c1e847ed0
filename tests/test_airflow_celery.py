"""Training goes to the GPU worker: a real CeleryExecutor stack on this machine.

Redis (127.0.0.1:6379) is the broker, the test PostgreSQL holds Airflow's
metadata and the Celery results; an API server, a dag-processor, a scheduler
and two Celery workers run as separate processes, one worker on queue
``default`` and one on queue ``gpu`` only. One run of the real weekly DAG is
triggered, and the task instances say which worker ran what.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

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
    service_settings,
    start_core_services,
    timings,
    wait_for_runs,
)

pytestmark = pytest.mark.slow

CPU_WORKER, GPU_WORKER = "cpu-worker", "gpu-worker"


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


def test_train_runs_on_the_gpu_worker_and_every_other_task_on_the_cpu_worker(
    tmp_path, clean_db, database_url
):
    with (
        redis_broker() as broker,  # skips here, before any set-up, without Redis
        job_sources() as (soda, ncei),
        metadata_database(database_url, tmp_path) as metadata_url,
    ):
        api_port = free_port()
        env = airflow_base_env(
            tmp_path / "airflow",
            metadata_url,
            **service_settings(
                "CeleryExecutor", api_port, broker, celery_result_backend(metadata_url)
            ),
            **job_settings(tmp_path, soda, ncei, database_url),
        )
        stack = AirflowStack(tmp_path, env)
        try:
            start_core_services(stack, api_port)
            _start_worker(stack, CPU_WORKER, "default", concurrency=2)
            _start_worker(stack, GPU_WORKER, "gpu", concurrency=1)
            stack.cli("dags", "trigger", DAG_ID, "--conf", json.dumps({"week": str(FIRST)}))
            runs = wait_for_runs(stack, 1, timeout=600)
            task_instances = stack.task_instances()
            print(timings(task_instances))
        finally:
            stack.stop()

    assert [r.state for r in runs] == ["success"]
    ran_on = {ti.task_id: (ti.hostname, ti.queue, ti.pool) for ti in task_instances}
    assert len(ran_on) == 8 and {ti.state for ti in task_instances} == {"success"}
    assert ran_on.pop("train") == (GPU_WORKER, "gpu", "gpu")
    for task_id, (hostname, queue, pool) in ran_on.items():
        assert (hostname, queue, pool) == (CPU_WORKER, "default", "default_pool"), task_id

    # the run was the real job: it trained a model on the GPU worker and the
    # forecast task, on the CPU worker, used it for next week's forecast
    forecast = pd.read_sql(
        sa.text("SELECT count(*) AS n FROM bi.forecasts WHERE is_production AND target_week = :w"),
        clean_db,
        params={"w": FIRST + timedelta(weeks=1)},
    )
    assert forecast["n"].iloc[0] == 4500
    versions = pd.read_sql("SELECT count(*) AS n FROM ml.model_versions", clean_db)
    assert versions["n"].iloc[0] >= 1
