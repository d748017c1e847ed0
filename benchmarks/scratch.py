"""A throwaway, migrated database for one benchmark run, dropped at the end.

On the server at ``CRIMEJOB_DATABASE_URL`` when set, else on the embedded
PostgreSQL under ``/tmp/crimejob-bench``; ``CRIMEJOB_DATABASE_URL`` points at the
scratch database while the block runs, so the job's own code finds it.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
WORK_DIR = Path("/tmp/crimejob-bench")
_RUNTIME_DIR = Path("/tmp/crimejob-runtime")  # pgserver wants a private runtime dir
_RUNTIME_DIR.mkdir(mode=0o700, exist_ok=True)
os.environ.setdefault("XDG_RUNTIME_DIR", str(_RUNTIME_DIR))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def server_url() -> sa.URL:
    url = os.environ.get("CRIMEJOB_DATABASE_URL")
    if url:
        return sa.engine.make_url(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    import pgserver

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(WORK_DIR / "pgdata"), cleanup_mode=None)
    return sa.engine.make_url(server.get_uri()).set(drivername="postgresql+psycopg2")


@contextmanager
def scratch_database(prefix: str = "bench") -> Iterator[sa.URL]:
    """Create and migrate a database, yield its URL, drop it afterwards."""
    from crimejob.db import _engine_for, drop_database, upgrade

    base = server_url()
    name = f"crimejob_{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = base.set(database=name)
    previous = os.environ.get("CRIMEJOB_DATABASE_URL")
    os.environ["CRIMEJOB_DATABASE_URL"] = url.render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    try:
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        if previous is None:
            os.environ.pop("CRIMEJOB_DATABASE_URL", None)
        else:
            os.environ["CRIMEJOB_DATABASE_URL"] = previous
        _engine_for.cache_clear()
        admin.dispose()
        drop_database(base, name)
