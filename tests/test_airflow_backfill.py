"""A backfill through Airflow: ``airflow backfill create`` with a running scheduler.

Two past weeks are backfilled with the real weekly DAG on a LocalExecutor
stack (API server, dag-processor, scheduler); both runs complete, one after
the other, oldest first, and each leaves its week's forecast.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from tests.airflow_support import (
    DAG_ID,
    FIRST,
    AirflowStack,
    airflow_base_env,
    free_port,
    job_settings,
    job_sources,
    metadata_database,
    service_settings,
    start_core_services,
    timings,
    wait_for_runs,
)

pytestmark = pytest.mark.slow

LA = ZoneInfo("America/Los_Angeles")


def test_backfill_create_runs_two_weeks_in_order(tmp_path, clean_db, database_url):
    second = FIRST + timedelta(weeks=1)
    with (
        job_sources() as (soda, ncei),
        metadata_database(database_url, tmp_path) as metadata_url,
    ):
        api_port = free_port()
        env = airflow_base_env(
            tmp_path / "airflow",
            metadata_url,
            **service_settings("LocalExecutor", api_port),
            **job_settings(tmp_path, soda, ncei, database_url),
            # a cheap model: the backfill's order is under test here; the Celery test
            # trains the real network through Airflow, test_dag's runs use this one too
            CRIMEJOB_MODEL="mean_13w",
        )
        stack = AirflowStack(tmp_path, env)
        try:
            start_core_services(stack, api_port)
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
                str(second + timedelta(days=1)),
                "--max-active-runs",
                "1",
            )
            runs = wait_for_runs(stack, 2, timeout=900)
            task_instances = stack.task_instances()
            print(timings(task_instances))
        finally:
            stack.stop()

    assert [r.run_type for r in runs] == ["backfill", "backfill"]
    assert [r.state for r in runs] == ["success", "success"]
    assert [r.data_interval_start.astimezone(LA).date() for r in runs] == [FIRST, second]
    # oldest first, and the second week started only once the first had finished
    assert runs[0].end_date <= runs[1].start_date
    first_tis = [ti for ti in task_instances if ti.run_id == runs[0].run_id]
    second_tis = [ti for ti in task_instances if ti.run_id == runs[1].run_id]
    assert len(first_tis) == len(second_tis) == 8
    assert max(ti.end_date for ti in first_tis) <= min(ti.start_date for ti in second_tis)

    forecasts = pd.read_sql(
        "SELECT target_week, count(*) AS n FROM bi.forecasts WHERE is_production "
        "GROUP BY target_week ORDER BY target_week",
        clean_db,
    )
    assert forecasts.to_dict("list") == {
        "target_week": [second, second + timedelta(weeks=1)],
        "n": [4500, 4500],
    }
