"""Database helpers: engines, sessions and per-service Alembic migrations.

Each service owns one schema (``registry``, ``features`` …). In embedded dev mode on
SQLite every schema is an attached database file beside the main one, so the same
schema-qualified tables work on both engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SCHEMAS = ("features", "registry", "trainer", "ingest", "serving", "auth")


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and use the psycopg 3 driver for it."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    # a database that is away fails a connection in seconds (never a hung worker), and
    # pre-ping replaces connections it dropped
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database or ""
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    base = Path(database)

    @event.listens_for(engine, "connect")
    def _attach(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # pysqlite's implicit transactions get in the way of ATTACH and PRAGMA
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        for schema in SCHEMAS:
            path = base.with_name(f"{base.stem}.{schema}{base.suffix or '.db'}")
            cursor.execute(f"ATTACH DATABASE '{path}' AS {schema}")
            cursor.execute(f"PRAGMA {schema}.journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on error."""
    with factory() as session, session.begin():
        yield session


def migrate(engine: Engine, *, schema: str, versions: Path) -> None:
    """Bring one service's schema to the newest Alembic revision in ``versions``."""
    from alembic import command
    from alembic.config import Config

    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # made only when missing: a service's own role may own its schema (made by
            # `millrace db roles`) without the right to create schemas in the database
            exists = conn.execute(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}
            ).first()
            if exists is None:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    config = Config()
    # split locations on os.pathsep, so a checkout path with spaces stays one location
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(Path(__file__).with_name("alembic")))
    config.set_main_option("version_locations", str(versions))
    config.attributes["schema"] = schema
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # one migrator at a time per schema, whichever process starts first
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
