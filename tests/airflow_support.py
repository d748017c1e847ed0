"""Real Airflow services for tests: a metadata database, the CLI, and service processes.

Each test gets an ``AIRFLOW_HOME`` of its own under tmp, a fresh Airflow
metadata database on the test PostgreSQL server (cloned from a migrated
template, so ``airflow db migrate`` runs once per Airflow version, not per
test), unique ports, a Redis database of its own as Celery broker, and every
process it starts in a process group of its own that :meth:`AirflowStack.stop`
kills, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from crimejob.db import drop_database

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO_ROOT / "dags"
DAG_ID = "crimejob_weekly"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def worker_hostname() -> str:
    """``[core] hostname_callable`` for test workers: tells two workers on one machine apart.

    Airflow records this name on every task instance a worker runs, so the
    Celery test can see which worker ran the train task.
    """
    return os.environ.get("CRIMEJOB_TEST_WORKER_NAME") or socket.getfqdn()


@contextlib.contextmanager
def airflow_in_process() -> Iterator[None]:
    """Import Airflow in the test process without keeping its logging set-up.

    Importing Airflow configures logging with a handler on the sys.stdout of
    that moment, pytest's capture, which is closed by the time other
    libraries log at exit. The root logger is put back as it was.
    """
    if "airflow" not in sys.modules:  # keep Airflow's config files out of ~/airflow
        os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="crimejob-airflow-"))
        os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        import airflow  # noqa: F401

        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Redis ---------------------------------------------------------------------


def _redis_address() -> tuple[str, int]:
    host, _, port = os.environ.get("CRIMEJOB_TEST_REDIS", f"{REDIS_HOST}:{REDIS_PORT}").partition(
        ":"
    )
    return host, int(port or REDIS_PORT)


def redis_unreachable() -> str | None:
    """Why Redis cannot be a broker here, or None when it can."""
    import redis

    host, port = _redis_address()
    try:
        with redis.Redis(host=host, port=port, socket_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        return f"Redis is not reachable at {host}:{port} ({exc})"
    return None


@contextlib.contextmanager
def redis_broker() -> Iterator[str]:
    """A Redis database (1..15) claimed for this test, as a Celery broker URL.

    ``CRIMEJOB_TEST_REDIS`` (``host:port``) names another server. Skips the
    test with the reason when Redis is not reachable. The claim is a
    key in database 0 with an expiry, so concurrent test runs never share a
    broker database and a crashed run's claim lapses on its own.
    """
    import redis

    host, port = _redis_address()
    client = redis.Redis(host=host, port=port, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {host}:{port} ({exc}); the Celery test needs it")
    token = uuid.uuid4().hex
    for number in random.sample(range(1, 16), 15):
        key = f"crimejob-tests:broker-db:{number}"
        if client.set(key, token, nx=True, ex=3600):
            break
    else:
        pytest.skip("all Redis databases 1..15 are claimed by other test runs")
    broker = redis.Redis(host=host, port=port, db=number)
    broker.flushdb()
    try:
        yield f"redis://{host}:{port}/{number}"
    finally:
        broker.flushdb()
        broker.close()
        if client.get(key) == token.encode():
            client.delete(key)
        client.close()


# --- metadata database ---------------------------------------------------------


def _admin_engine(server_url: URL) -> sa.Engine:
    return sa.create_engine(
        server_url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )


def _template_name() -> str:
    from importlib.metadata import version  # not `import airflow`: see airflow_in_process

    return "airflow_template_" + re.sub(r"[^a-z0-9]", "_", version("apache-airflow-core"))


def _clone_template(server_url: URL, name: str, tmp_home: Path) -> None:
    """Create database ``name`` from a template holding a freshly migrated Airflow schema.

    The template is built once per Airflow version, under a temporary name and
    renamed when complete, so a crashed build never leaves a half-migrated
    template behind. An advisory lock serialises builds and clones of test
    sessions running side by side.
    """
    template = _template_name()
    admin = _admin_engine(server_url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(hashtext(:t))"), {"t": template})
            try:
                exists = conn.scalar(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :t"), {"t": template}
                )
                if not exists:
                    building = f"{template}_building"
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{building}"'))
                    conn.execute(sa.text(f'CREATE DATABASE "{building}"'))
                    env = airflow_base_env(tmp_home, server_url.set(database=building))
                    result = subprocess.run(
                        [AIRFLOW, "db", "migrate"],
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=300,
                    )
                    if result.returncode != 0:
                        raise RuntimeError(f"airflow db migrate failed:\n{result.stderr[-3000:]}")
                    conn.execute(sa.text(f'ALTER DATABASE "{building}" RENAME TO "{template}"'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:t))"), {"t": template})
    finally:
        admin.dispose()


@contextlib.contextmanager
def metadata_database(server_url: str | URL, tmp_home: Path) -> Iterator[URL]:
    """A migrated Airflow metadata database of its own on the test PostgreSQL server."""
    server_url = make_url(server_url).set(drivername="postgresql+psycopg2")
    name = f"airflow_test_{uuid.uuid4().hex[:10]}"
    _clone_template(server_url, name, tmp_home / "template-home")
    try:
        yield server_url.set(database=name)
    finally:
        drop_database(server_url, name)


def airflow_uri(url: str | URL) -> str:
    """A SQLAlchemy URL as an Airflow connection URI (``AIRFLOW_CONN_...``)."""
    url = make_url(url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


# --- environment and processes ---------------------------------------------------


def airflow_base_env(home: Path, metadata_url: URL, **settings: str) -> dict[str, str]:
    """The environment of every Airflow command and service of one test.

    Starts from this process's environment without any Airflow or crimejob
    database settings, so nothing leaks in from the developer's shell.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW_", "AIRFLOW__", "CRIMEJOB_DATABASE_URL"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url.render_as_string(
                hide_password=False
            ),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    env.update(settings)
    return env


class AirflowStack:
    """The Airflow CLI and long-running services of one test, sharing one environment."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home = home
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}
        self.metadata = sa.create_engine(
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], poolclass=NullPool
        )

    def cli(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run ``airflow ARGS`` and return the finished process (output captured)."""
        result = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(args)} exited {result.returncode}\n"
                f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
            )
        return result

    def start(self, name: str, *args: str, **extra_env: str) -> subprocess.Popen:
        """Start ``airflow ARGS`` as a service in its own process group, logging to a file."""
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed by the child's exit
        process = subprocess.Popen(
            [AIRFLOW, *args],
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def diagnostics(self) -> str:
        return "\n".join(
            f"--- {name} (exit {proc.poll()})\n{self.log_tail(name)}"
            for name, proc in self.processes.items()
        )

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll ``condition`` until it returns something truthy; fail with the service logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise AssertionError(
                        f"{name} exited with {proc.returncode} while waiting for {what}\n"
                        + self.diagnostics()
                    )
            value = condition()
            if value:
                return value
            time.sleep(1.0)
        raise AssertionError(
            f"timed out after {timeout:.0f}s waiting for {what}\n" + self.diagnostics()
        )

    def wait_http(self, url: str, timeout: float, what: str) -> None:
        import requests

        def up() -> bool:
            try:
                return requests.get(url, timeout=2).status_code < 500
            except requests.RequestException:
                return False

        self.wait_for(up, timeout, what)

    def stop(self) -> None:
        """Terminate every service's process group; kill what is still there after 20 s."""
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # also any child left in the group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.metadata.dispose()

    # --- what the metadata database says ---

    def dag_runs(self, dag_id: str = DAG_ID) -> list[sa.Row]:
        with self.metadata.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT run_id, run_type, state, logical_date, data_interval_start, "
                    "start_date, end_date FROM dag_run WHERE dag_id = :d ORDER BY logical_date"
                ),
                {"d": dag_id},
            ).all()

    def task_instances(self, dag_id: str = DAG_ID) -> list[sa.Row]:
        with self.metadata.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT run_id, task_id, state, queue, pool, hostname, try_number, "
                    "start_date, end_date FROM task_instance WHERE dag_id = :d "
                    "ORDER BY run_id, start_date"
                ),
                {"d": dag_id},
            ).all()


def timings(task_instances: list[sa.Row]) -> str:
    """Seconds per task instance, as a table for the test's output (``pytest -s``)."""
    lines = [f"{'run_id':<48} {'task_id':<20} {'hostname':<14} seconds"]
    for ti in task_instances:
        seconds = (ti.end_date - ti.start_date).total_seconds() if ti.end_date else float("nan")
        lines.append(f"{ti.run_id:<48} {ti.task_id:<20} {str(ti.hostname):<14} {seconds:7.1f}")
    return "\n".join(lines)


def service_settings(
    executor: str, api_port: int, broker_url: str | None = None, result_backend: str | None = None
) -> dict[str, str]:
    """Airflow settings for a scheduler + API server (+ Celery) stack on this machine."""
    settings = {
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.airflow_support.worker_hostname",
        # Runs come only from the test (trigger, backfill), never from the calendar.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # The DAG file does not change during a test (start_core_services reserializes it
        # first): parse it at start, not again every 30 s while the runs go.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        "AIRFLOW__CORE__PARALLELISM": "4",
    }
    if broker_url:
        settings["AIRFLOW__CELERY__BROKER_URL"] = broker_url
    if result_backend:
        settings["AIRFLOW__CELERY__RESULT_BACKEND"] = result_backend
    return settings


def celery_result_backend(metadata_url: URL) -> str:
    """Celery's database result backend in Airflow's metadata database."""
    # the driver spelled out: SQLAlchemy 2.1's default for postgresql:// is psycopg 3
    url = metadata_url.set(drivername="postgresql+psycopg2")
    return "db+" + url.render_as_string(hide_password=False)


def start_core_services(stack: AirflowStack, api_port: int) -> None:
    """Pool, DAG serialised, then API server (execution API), dag-processor and scheduler."""
    stack.cli("pools", "set", "gpu", "1", "GPU worker: one training at a time")
    stack.cli("dags", "reserialize")
    stack.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port))
    stack.wait_http(
        f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=180, what="the API server"
    )
    stack.start("dag-processor", "dag-processor")
    stack.start("scheduler", "scheduler")


def wait_for_runs(stack: AirflowStack, count: int, timeout: float) -> list[sa.Row]:
    """Wait until ``count`` runs of the DAG have finished; fail early if one failed."""

    def finished():
        runs = stack.dag_runs()
        failed = [r for r in runs if r.state == "failed"]
        if failed:
            tis = "\n".join(str(tuple(t)) for t in stack.task_instances())
            raise AssertionError(f"DAG run failed: {failed}\n{tis}\n{stack.diagnostics()}")
        done = [r for r in runs if r.state == "success"]
        return runs if len(done) >= count else None

    return stack.wait_for(finished, timeout, f"{count} successful DAG run(s)")


# --- the job's sources and settings --------------------------------------------

FIRST = date(2026, 9, 28)  # the first week the DAG runs for in these tests (a Monday)
HISTORY_WEEKS = 26  # weeks of grid history the first run bootstraps
PER_WEEK = 150  # incidents in a normal week


@contextlib.contextmanager
def job_sources(weeks_after: int = 4) -> Iterator[tuple[Any, Any]]:
    """Local SODA and NCEI servers with reports from before the history to after FIRST.

    The SODA server behaves like the LAPD portal in late 2026
    (``tests.fakes.soda.portal_server``): NIBRS offenses from ``k7nn-b2ep``,
    ``y8y3-fqfu`` closed with HTTP 403, each record published 13 days after its
    report date once a test sets ``soda.app.now`` (None, the default, serves all).
    """
    from tests.fakes.ncei import ncei_server
    from tests.fakes.soda import portal_server

    first_report = FIRST - timedelta(weeks=HISTORY_WEEKS + 6)
    last_report = FIRST + timedelta(weeks=weeks_after, days=6)
    portal = portal_server(first_report, last_report, per_week=PER_WEEK, seed=3, set_env=False)
    with portal as soda, ncei_server(start=first_report, end=last_report) as ncei:
        yield soda, ncei


def job_settings(tmp_path: Path, soda: Any, ncei: Any, database_url: str) -> dict[str, str]:
    """The real job in a small, fast configuration; its database only via the connection."""
    return {
        "AIRFLOW_CONN_CRIMEJOB_DB": airflow_uri(database_url),
        "CRIMEJOB_SODA_URL": soda.url,
        "CRIMEJOB_NCEI_URL": ncei.base_url,
        "CRIMEJOB_DATA_DIR": str(tmp_path / "data"),
        "CRIMEJOB_MODEL_DIR": str(tmp_path / "models"),
        "CRIMEJOB_HISTORY_WEEKS": str(HISTORY_WEEKS),
        "CRIMEJOB_TRAILING_WEEKS": "4",
        "CRIMEJOB_HTTP_MAX_ATTEMPTS": "3",
        "CRIMEJOB_HTTP_BACKOFF_MAX": "0.05",
        # the real training step, with few epochs
        "CRIMEJOB_HYPERPARAMETERS": json.dumps({"epochs": 2, "finetune_epochs": 1}),
    }
