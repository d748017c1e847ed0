"""The database: an engine for ``CRIMEJOB_DATABASE_URL``, or an embedded PostgreSQL.

With no URL configured, a real PostgreSQL server from the ``pgserver`` wheel is
started under the project's data directory and reused by every later command,
so a fresh machine needs no database set-up.

The schema is plain SQL in two kinds of file (the pattern of Flyway's versioned
and repeatable migrations):

- ``sql/migrations/NNN_name.sql``: tables and data, applied once each in name
  order and recorded with a checksum in ``ops.schema_migrations``. An applied
  file that has since changed is an error: write a new migration instead.
- ``sql/views/NN_name.sql``: one view per file, then the BI role's grants.
  Every upgrade drops the views and re-creates them from these files, so an
  edited view reaches every existing database on its next ``db upgrade``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random

from crimejob.config import PROJECT_ROOT, get_settings
from crimejob.errors import ConfigError, CrimejobError

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "crimejob"
SQL_DIR = PROJECT_ROOT / "sql"
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_VIEW_FILE_NAME = re.compile(r"^(\d{2})_[a-z0-9_]+\.sql$")
_CREATES_VIEW = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)", re.I
)


class MigrationChangedError(CrimejobError):
    """An applied migration file was edited: the database and the file now disagree."""


@lru_cache(maxsize=4)
def _embedded_server(pgdata: str):
    Path(pgdata).mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir it does not need here
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: only needed without a configured URL

        # cleanup_mode=None leaves the server running for the next command, which
        # finds it through the pid file instead of paying the start-up again.
        return pgserver.get_server(pgdata, cleanup_mode=None)


def embedded_url(database: str = EMBEDDED_DATABASE) -> str:
    """Start (or find) the embedded server and return a SQLAlchemy URL for ``database``."""
    settings = get_settings()
    server = _embedded_server(str(settings.data_dir / "pgdata"))
    uri = sa.engine.make_url(server.get_uri())
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return uri.set(drivername="postgresql+psycopg2", database=database).render_as_string(
        hide_password=False
    )


def stop_embedded(data_dir: Path | None = None, timeout: float = 60) -> bool:
    """Stop the embedded PostgreSQL of ``data_dir`` (default: the configured data
    directory) if it runs; True if one was stopped. For ``scripts/airflow-local``'s exit
    and the demo: every other command leaves it running for the next one.

    A "fast" shutdown, as ``pg_ctl stop`` does it: SIGINT to the postmaster named in
    ``postmaster.pid`` (open sessions are ended, nothing committed is lost).
    """
    import signal

    import psutil

    pid_file = Path(data_dir or get_settings().data_dir) / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        postmaster = psutil.Process(pid)
        if "postgres" not in postmaster.name():
            return False  # a stale pid file naming some other process
    except (FileNotFoundError, ValueError, IndexError, psutil.NoSuchProcess):
        return False
    _embedded_server.cache_clear()
    _engine_for.cache_clear()
    postmaster.send_signal(signal.SIGINT)
    try:
        postmaster.wait(timeout)
    except psutil.TimeoutExpired:
        return False
    return True


def database_url() -> str:
    """The configured database URL, or the embedded server's."""
    url = get_settings().database_url
    if url:
        return (
            url.replace("postgresql://", "postgresql+psycopg2://", 1)
            if url.startswith("postgresql://")
            else url
        )
    return embedded_url()


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
        if not parsed.drivername.startswith("postgresql"):
            raise ValueError(parsed.drivername)
        return sa.create_engine(parsed, pool_pre_ping=True, future=True)
    except (sa.exc.ArgumentError, ValueError, ImportError) as exc:
        # the URL may hold a password: name the setting and the form, never the value
        raise ConfigError(
            f"CRIMEJOB_DATABASE_URL is not a PostgreSQL URL ({type(exc).__name__}); "
            "expected postgresql://user:password@host:port/database"
        ) from None


def unreachable(exc: sa.exc.DBAPIError, engine: Engine | None = None) -> CrimejobError:
    """The one line for a database that does not answer (down, wrong host or port,
    refused credentials): where it was sought, the driver's first line, no password."""
    where = ""
    if engine is not None:
        url = engine.url
        where = f" at {url.host or 'localhost'}:{url.port or 5432}/{url.database}"
    first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    reason = first[0] if first else type(exc).__name__
    return CrimejobError(f"cannot use the database{where} (CRIMEJOB_DATABASE_URL): {reason}")


def get_engine(url: str | None = None) -> Engine:
    """A pooled engine for ``url`` (default: :func:`database_url`), shared per process."""
    return _engine_for(url or database_url())


def drop_database(server_url: str | sa.URL, name: str) -> None:
    """Drop database ``name`` on the server at ``server_url``, ending its sessions first.

    For throwaway databases (tests, benchmarks) that must go even when a
    pooled connection was left open.
    """
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        admin.dispose()


@contextmanager
def connect(bind: Engine | Connection) -> Iterator[Connection]:
    """Use a Connection as it is (inside the caller's transaction), or open one from
    an Engine for the block: read helpers accept either."""
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as conn:
        yield conn


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The versioned migrations in apply order; a badly named file is an error, not skipped."""
    found = []
    for path in sorted((sql_dir / "migrations").glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} must be named NNN_snake_case.sql")
        found.append(Migration(match.group(1), path.stem, path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a version number in {sql_dir / 'migrations'}")
    return found


def view_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    """The repeatable view files in apply order (``NN_name.sql``; dependencies first)."""
    found = sorted((sql_dir / "views").glob("*.sql"))
    for path in found:
        if not _VIEW_FILE_NAME.match(path.name):
            raise ValueError(f"view file {path.name} must be named NN_snake_case.sql")
    return found


def _drop_views(conn: Connection, files: list[Path]) -> None:
    """Drop every bi view and every view a file in ``sql/views`` creates (re-created next)."""
    named = {m.group(1).lower() for path in files for m in _CREATES_VIEW.finditer(path.read_text())}
    bi_views = conn.execute(
        sa.text("SELECT schemaname || '.' || viewname FROM pg_views WHERE schemaname = 'bi'")
    ).scalars()
    for qualified in sorted(named | set(bi_views)):
        schema, name = qualified.split(".")
        quote = conn.dialect.identifier_preparer.quote
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {quote(schema)}.{quote(name)} CASCADE")


def _run_script(conn: Connection, path: Path) -> None:
    # exec_driver_sql sends the file as one multi-statement string, so the SQL
    # files stay plain psql-compatible scripts.
    conn.exec_driver_sql(path.read_text().replace("%", "%%"))


def _cluster_role_race(exc: BaseException) -> bool:
    """Did this upgrade collide with another database's on the server-wide BI role?

    Roles belong to the whole PostgreSQL server, not to one database, and the
    advisory lock only serialises upgrades of one database: two databases on one
    server upgraded at once (test workers, a staging and a production database)
    can both create or alter ``crimejob_bi`` and one of them then fails with
    "tuple concurrently updated" or a duplicate role name. The transaction rolls
    back whole, so running it again is safe.
    """
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    text = str(exc.orig)
    return "tuple concurrently updated" in text or "pg_authid_rolname_index" in text


@retry(
    retry=retry_if_exception(_cluster_role_race),
    stop=stop_after_attempt(8),
    wait=wait_random(0.05, 0.5),
    reraise=True,
)
def upgrade(engine: Engine | None = None, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every migration not yet recorded, then re-create every view, in one transaction.

    Safe to run twice and from two processes at once (an advisory lock
    serialises them), also on two databases of one server at once (a collision
    on the server-wide BI role is retried). Views are dropped first, so a
    migration may change a table a view reads. Returns the names of the
    migrations applied now. Raises :class:`MigrationChangedError` if an applied
    migration was edited.
    """
    engine = engine or get_engine()
    applied_now: list[str] = []
    views = view_files(sql_dir)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(774411)"))
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS ops"))
        conn.execute(
            sa.text(
                """
                CREATE TABLE IF NOT EXISTS ops.schema_migrations (
                    version    text PRIMARY KEY,
                    name       text NOT NULL,
                    checksum   text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
        )
        done = {
            row.version: (row.name, row.checksum)
            for row in conn.execute(
                sa.text("SELECT version, name, checksum FROM ops.schema_migrations")
            )
        }
        pending = []
        for migration in migrations(sql_dir):
            if migration.version not in done:
                pending.append(migration)
            elif done[migration.version][1] != migration.checksum:
                raise MigrationChangedError(
                    f"migration {migration.path.name} was edited after it was applied to this "
                    "database; restore it and put the change in a new migration"
                )
        _drop_views(conn, views)
        for migration in pending:
            log.info("applying migration %s", migration.name)
            _run_script(conn, migration.path)
            conn.execute(
                sa.text(
                    "INSERT INTO ops.schema_migrations (version, name, checksum) "
                    "VALUES (:v, :n, :c)"
                ),
                {"v": migration.version, "n": migration.name, "c": migration.checksum},
            )
            applied_now.append(migration.name)
        # Old migrations created views of their own; the files in sql/views are the truth.
        _drop_views(conn, views)
        for path in views:
            log.info("creating views of %s", path.name)
            _run_script(conn, path)
    return applied_now
