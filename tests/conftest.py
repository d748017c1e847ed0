"""Shared fixtures: a real PostgreSQL for every test session.

By default the embedded server (pgserver) under a temporary data directory;
with ``CRIMEJOB_DATABASE_URL`` set, that server. Either way each test session
works in a database of its own, created fresh and migrated, so sessions that
run side by side never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

# pgserver asks platformdirs for a runtime dir; give it one instead of a warning per run.
_RUNTIME_DIR = Path("/tmp/crimejob-runtime")
_RUNTIME_DIR.mkdir(mode=0o700, exist_ok=True)
os.environ.setdefault("XDG_RUNTIME_DIR", str(_RUNTIME_DIR))
# A model card's feedback-loop simulation (every baseline, lgbm included, under both designs)
# took minutes per card at its default 26 weeks; the tests check what the card says, in 4.
os.environ.setdefault("CRIMEJOB_CARD_FEEDBACK_WEEKS", "4")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEST_ROOT = Path(os.environ.get("CRIMEJOB_TEST_DATA_DIR", "/tmp/crimejob-tests"))


def _server_url() -> str:
    url = os.environ.get("CRIMEJOB_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg2://", 1)
    import pgserver

    # pgserver checks for pgdata and then creates it with exist_ok=False: two workers
    # starting on a fresh machine race there. Its own start-up holds an inter-process lock.
    (TEST_ROOT / "pgdata").mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(TEST_ROOT / "pgdata"), cleanup_mode=None)
    return (
        sa.engine.make_url(server.get_uri())
        .set(drivername="postgresql+psycopg2")
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test session; dropped at the end."""
    from crimejob.db import upgrade

    server_url = sa.engine.make_url(_server_url())
    name = f"crimejob_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = server_url.set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    upgrade(engine)
    engine.dispose()
    previous = os.environ.get("CRIMEJOB_DATABASE_URL")
    os.environ["CRIMEJOB_DATABASE_URL"] = url
    try:
        yield url
    finally:
        if previous is None:
            os.environ.pop("CRIMEJOB_DATABASE_URL", None)
        else:
            os.environ["CRIMEJOB_DATABASE_URL"] = previous
        from crimejob.db import _engine_for, drop_database

        _engine_for.cache_clear()
        admin.dispose()
        drop_database(server_url, name)


@pytest.fixture
def scratch_database_url() -> Iterator[str]:
    """An empty database of its own (not migrated), dropped after the test."""
    from crimejob.db import drop_database

    server_url = sa.engine.make_url(_server_url())
    name = f"crimejob_scratch_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(server_url, name)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


# Owned sequences (serial and identity columns) of each data table, by the table.
_OWNED_SEQUENCES = sa.text(
    """
    SELECT tn.nspname, t.relname, sn.nspname, s.relname
    FROM pg_class s
    JOIN pg_namespace sn ON sn.oid = s.relnamespace
    JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class t ON t.oid = d.refobjid
    JOIN pg_namespace tn ON tn.oid = t.relnamespace
    WHERE s.relkind = 'S'
    """
)


@pytest.fixture(scope="session")
def _dirty_tables_query(engine: sa.Engine) -> sa.TextClause:
    """One query naming the data tables a test may have changed: those holding rows, or
    whose sequences have handed out a value (a rolled-back insert leaves no row)."""
    with engine.connect() as conn:
        existing = {
            f"{s}.{t}"
            for s, t in conn.execute(
                sa.text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_type = 'BASE TABLE' AND table_schema IN ('raw','grid','ml','ops')"
                )
            )
        }
        sequences: dict[str, list[tuple[str, str]]] = {}
        for ts, tn, ss, sn in conn.execute(_OWNED_SEQUENCES):
            sequences.setdefault(f"{ts}.{tn}", []).append((ss, sn))
    # reference data the migrations seed stays
    keep = {"grid.cells", "ops.schema_migrations", "raw.police_initiated_codes"}
    probes = []
    for table in sorted(existing - keep):
        used = "".join(
            f" OR EXISTS (SELECT 1 FROM pg_sequences WHERE schemaname = '{ss}' "
            f"AND sequencename = '{sn}' AND last_value IS NOT NULL)"
            for ss, sn in sequences.get(table, [])
        )
        probes.append(f"SELECT '{table}' WHERE EXISTS (SELECT 1 FROM {table}){used}")
    return sa.text(" UNION ALL ".join(probes))


@pytest.fixture
def clean_db(engine: sa.Engine, _dirty_tables_query: sa.TextClause) -> sa.Engine:
    """The session database with every data table emptied (schema and cells kept).

    Only the tables holding rows (or with a used sequence) are truncated: truncating all
    of them for each of the hundreds of tests that ask for this was a tenth of a second
    each, most of it on tables no test had touched.
    """
    return empty_data_tables(engine, _dirty_tables_query)


def empty_data_tables(engine: sa.Engine, dirty_tables_query: sa.TextClause) -> sa.Engine:
    """Truncate the data tables ``dirty_tables_query`` names (what ``clean_db`` does; a
    module-scoped fixture calls it to start from the same empty database)."""
    with engine.begin() as conn:
        tables = conn.execute(dirty_tables_query).scalars().all()
        if tables:
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that read it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


# Test files that take the longest in all (the sum of their tests, from ``--durations=0``),
# longest first: they are handed out first (``scripts/test`` gives each free worker the next
# file), so that no long file starts last and leaves the other workers idle while it runs.
_LONGEST_FIRST = (
    "test_airflow_celery.py",
    "test_sparse_cnn.py",
    "test_dag_failures.py",
    "test_dag.py",
    "test_live_portal.py",
    "test_training_registry.py",
    "test_keras_backends.py",
    "test_weekly_run.py",
    "test_demo.py",
    "test_champion.py",
    "test_field_baselines.py",
    "test_backtest.py",
    "test_rate_cnn.py",
)


def pytest_collection_modifyitems(config, items):
    """Order the session: the longest files first, then the other slow tests, then the rest.

    Within each group the collection order stays; which tests run does not change.
    """

    def rank(item) -> tuple[int, int]:
        name = item.path.name
        if name in _LONGEST_FIRST and item.get_closest_marker("slow"):
            return (0, _LONGEST_FIRST.index(name))
        return (1 if item.get_closest_marker("slow") else 2, 0)

    items.sort(key=rank)  # stable: collection order within a rank
