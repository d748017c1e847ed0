"""Run ``crimejob run`` week after week against a local portal that behaves like LAPD's today.

    PYTHONPATH=. .venv/bin/python -m tests.fakes.portal_demo [--first 2026-09-28] [--weeks 4]
        [--model rate_cnn] [--hyperparameters '{"epochs": 3}'] [--per-week 100]

Starts the fake portal (``portal_server``: legacy tapering through 2024, ``k7nn-b2ep``
ramping up, 13-day publication lag, ``y8y3-fqfu`` answering 403) and a fake NCEI on
127.0.0.1, makes a fresh database on the test PostgreSQL server (the one the tests use,
or ``CRIMEJOB_DATABASE_URL``'s server), then for each week sets the portal's clock to
the Monday after the week and runs the real command line in a subprocess, printing its
output: the first run bootstraps 104 weeks of history, the others are weekly runs.
The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

from crimejob.db import drop_database, upgrade
from crimejob.grid.lag import run_moment
from tests.conftest import _server_url
from tests.fakes.ncei import ncei_server
from tests.fakes.soda import portal_server

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=date.fromisoformat, default=date(2026, 9, 28))
    parser.add_argument("--weeks", type=int, default=4, help="the bootstrap and N-1 weekly runs")
    parser.add_argument("--history-weeks", type=int, default=104)
    parser.add_argument("--per-week", type=int, default=100, help="incidents in a normal week")
    parser.add_argument("--model", default="rate_cnn")
    parser.add_argument("--hyperparameters", default='{"epochs": 3, "finetune_epochs": 1}')
    args = parser.parse_args(argv)

    weeks = [args.first + timedelta(weeks=i) for i in range(args.weeks)]
    first_report = args.first - timedelta(weeks=args.history_weeks + 6)
    last_report = weeks[-1] + timedelta(days=6)
    server = sa.engine.make_url(_server_url())
    name = f"crimejob_demo_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    upgrade(engine)
    engine.dispose()
    work = Path(tempfile.mkdtemp(prefix="crimejob-demo-"))
    try:
        with (
            portal_server(first_report, last_report, per_week=args.per_week, set_env=False) as soda,
            ncei_server(start=first_report, end=last_report) as ncei,
        ):
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO),
                "TF_CPP_MIN_LOG_LEVEL": "3",
                "CRIMEJOB_DATABASE_URL": url,
                "CRIMEJOB_SODA_URL": soda.url,
                "CRIMEJOB_NCEI_URL": ncei.base_url,
                "CRIMEJOB_DATA_DIR": str(work / "data"),
                "CRIMEJOB_MODEL_DIR": str(work / "models"),
                "CRIMEJOB_HISTORY_WEEKS": str(args.history_weeks),
                "CRIMEJOB_MODEL": args.model,
                "CRIMEJOB_HYPERPARAMETERS": json.dumps(json.loads(args.hyperparameters)),
            }
            for week in weeks:
                soda.app.now = run_moment(week)
                print(f"$ crimejob run --week {week}    # portal clock: {soda.app.now}", flush=True)
                done = subprocess.run(
                    [sys.executable, "-m", "crimejob", "run", "--week", str(week)],
                    env=env, cwd=REPO, capture_output=True, text=True,
                )  # fmt: skip
                print(done.stdout + done.stderr.strip() + f"\n(exit code {done.returncode})\n")
                if done.returncode != 0:
                    return done.returncode
    finally:
        drop_database(server, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
