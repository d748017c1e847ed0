"""The weekly DAG failing well under ``airflow dags test``: a source outage fails the run
within its retry budget with nothing left running, an ``offline`` run fetches nothing and
says which week has no records, and ``scripts/airflow-local dags test`` stops on SIGTERM
and marks its run failed. (A file of its own: test files are handed to the test workers
whole, and these runs are as long as the rest of test_dag.py.)"""

from __future__ import annotations

import contextlib

import pytest

from tests.airflow_support import DAG_ID, AirflowStack, airflow_base_env, metadata_database

WEEK = "2026-11-16"


def _outage_env(tmp_path, metadata_url, database_url: str, **settings: str) -> dict[str, str]:
    """The job pointed at sources that cannot be reached (nothing listens on the port)."""
    from tests.airflow_support import airflow_uri, free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    return airflow_base_env(
        tmp_path / "airflow",
        metadata_url,
        AIRFLOW_CONN_CRIMEJOB_DB=airflow_uri(database_url),
        CRIMEJOB_SODA_URL=nowhere,
        CRIMEJOB_NCEI_URL=nowhere + "/access/services/data/v1",
        CRIMEJOB_DATA_DIR=str(tmp_path / "data"),
        CRIMEJOB_MODEL_DIR=str(tmp_path / "models"),
        CRIMEJOB_HTTP_MAX_ATTEMPTS="2",
        CRIMEJOB_HTTP_BACKOFF_MAX="0.05",
        **settings,
    )


@pytest.mark.slow
def test_an_outage_fails_the_run_within_its_retry_budget_and_offline_needs_no_source(
    tmp_path, clean_db, database_url
):
    import json
    import time

    with metadata_database(database_url, tmp_path) as metadata_url:
        # a budget of one retry 3 s later, instead of the default 3 retries 10 minutes apart
        env = _outage_env(
            tmp_path,
            metadata_url,
            database_url,
            CRIMEJOB_EXTRACT_RETRIES="1",
            CRIMEJOB_EXTRACT_RETRY_MINUTES="0.05",
        )
        stack = AirflowStack(tmp_path, env)
        try:
            started = time.monotonic()
            outage = stack.cli(
                "dags", "test", DAG_ID, "-c", json.dumps({"week": WEEK}), check=False
            )
            seconds = time.monotonic() - started
            offline = stack.cli(
                "dags", "test", DAG_ID, "-c", json.dumps({"week": WEEK, "offline": True}),
                check=False,
            )  # fmt: skip
            runs = stack.dag_runs()
            tis = stack.task_instances()
        finally:
            stack.stop()

    assert outage.returncode != 0 and offline.returncode != 0
    assert [r.state for r in runs] == ["failed", "failed"]  # nothing left "running"
    first, second = (r.run_id for r in runs)
    states = {(t.run_id, t.task_id): t.state for t in tis}
    assert states[first, "extract_crime"] == "failed"
    assert {t.try_number for t in tis if t.run_id == first and t.task_id == "extract_crime"} == {2}
    assert all(
        states[first, task] in ("upstream_failed", "failed", "success")
        for task in ("load", "aggregate", "check_completeness", "train", "forecast")
    )
    assert seconds < 150, seconds  # two tries, 3 s apart, and the start-up of `dags test`

    # offline: nothing is fetched, and the run stops where the data is missing, saying so
    for task in ("extract_crime", "extract_weather", "load", "aggregate"):
        assert states[second, task] == "success", task
    assert states[second, "check_completeness"] == "failed"
    assert "offline: no records for week 2026-11-02 in the database" in (
        offline.stdout + offline.stderr
    )


@pytest.mark.slow
def test_airflow_local_dags_test_stops_on_sigterm_and_fails_its_run(
    tmp_path, clean_db, database_url
):
    """`scripts/airflow-local dags test` waiting for an extract's retry (10 minutes) stops
    on SIGTERM within seconds, leaves no process behind and no run "running"."""
    import json
    import os
    import signal
    import subprocess
    import time

    from tests.airflow_support import REPO_ROOT

    with metadata_database(database_url, tmp_path) as metadata_url:
        env = _outage_env(tmp_path, metadata_url, database_url, CRIMEJOB_DATABASE_URL=database_url)
        stack = AirflowStack(tmp_path, env)
        log = open(tmp_path / "airflow-local.log", "wb")  # noqa: SIM115 - closed below
        script = subprocess.Popen(
            [str(REPO_ROOT / "scripts" / "airflow-local"), "dags", "test", DAG_ID,
             "-c", json.dumps({"week": WEEK})],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        try:

            def waiting_for_retry():
                return any(t.state == "up_for_retry" for t in stack.task_instances())

            stack.wait_for(waiting_for_retry, 240, "an extract waiting for its retry")
            started = time.monotonic()
            script.send_signal(signal.SIGTERM)
            code = script.wait(timeout=90)
            seconds = time.monotonic() - started
            runs = stack.dag_runs()
            tis = stack.task_instances()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(script.pid, signal.SIGKILL)
            stack.stop()
        output = (tmp_path / "airflow-local.log").read_text()

    assert code == 143, output[-3000:]
    assert seconds < 45, seconds
    with pytest.raises(ProcessLookupError):  # nothing of its process group is left
        os.killpg(script.pid, 0)
    assert [r.state for r in runs] == ["failed"], output[-3000:]
    assert not {t.state for t in tis} & {"running", "up_for_retry", "queued", "scheduled"}
    assert "marked the interrupted test run" in output
