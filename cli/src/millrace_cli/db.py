"""``millrace db roles``: least privilege in Postgres. One login role per service, owner of
its own schema and of nothing else; every service may read the keys (``auth.api_keys``),
serving may also read the online feature table, and nobody writes what is not theirs.
Run it as the database's administrator, once the services have migrated (again after an
upgrade adds tables: it is idempotent); each service then connects with its own URL."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from millrace_common.db import make_engine
from millrace_common.keys import KeyTable
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from millrace_cli.errors import CliError
from millrace_cli.render import say

db_app = typer.Typer(
    help="The platform's Postgres database: roles per service.", no_args_is_help=True
)

OWNS = {
    "ingest": "ingest",
    "features": "features",
    "trainer": "trainer",
    "registry": "registry",
    "serving": "serving",
}
"""Each service's login role owns this schema (its tables, its migrations)."""
READS = {"serving": [("features", "online_rows")]}
"""Tables of other schemas a service reads (and only reads)."""
KEYS = ("auth", "api_keys")


def role_of(service: str) -> str:
    return f"millrace_{service}"


@db_app.command("roles")
def db_roles(
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url",
            envvar="MILLRACE_DATABASE_URL",
            help="the database, as its administrator (SQLAlchemy URL)",
        ),
    ] = "postgresql+psycopg://postgres@127.0.0.1:5432/millrace",
    out: Annotated[
        Path,
        typer.Option(
            help="where each service's database URL is written (MILLRACE_DATABASE_URL_FILE)"
        ),
    ] = Path(".millrace/db-roles"),
) -> None:
    """Make (or bring up to date) one role per service and write each one's URL."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        raise CliError("millrace db roles: roles need Postgres (SQLite has none)")
    engine = make_engine(database_url, pool_size=1)
    out.mkdir(parents=True, exist_ok=True)
    try:
        KeyTable(engine).ensure()
        with engine.begin() as db:
            for service, schema in OWNS.items():
                password = secrets.token_urlsafe(24)
                grant_role(db, service, schema, password=password, database=url.database or "")
                file = out / service
                file.touch(mode=0o600)
                own = url.set(username=role_of(service), password=password)
                file.write_text(own.render_as_string(hide_password=False) + "\n")
            missing = grant_reads(db)
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise CliError(f"millrace db roles: {cause}") from None
    finally:
        engine.dispose()
    for table in missing:
        say(f"note: {table} does not exist yet: run this again once the services have started")
    say(f"roles: {', '.join(role_of(s) for s in OWNS)}; each service's URL in {out}/<service>")


def grant_role(db: Connection, service: str, schema: str, *, password: str, database: str) -> None:
    """The service's role: it logs in, owns its schema and every table in it, reads the
    keys; the password is set anew."""
    role = role_of(service)
    exists = db.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    quoted = password.replace("'", "''")
    verb = "ALTER" if exists else "CREATE"
    db.execute(
        sa.text(
            f"{verb} ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{quoted}'"
        )
    )
    db.execute(sa.text(f'GRANT CONNECT ON DATABASE "{database}" TO {role}'))
    db.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}"))
    db.execute(sa.text(f"ALTER SCHEMA {schema} OWNER TO {role}"))
    # tables and views first: the sequences of their columns go with them
    for kinds, what in (("r", "TABLE"), ("p", "TABLE"), ("v", "VIEW"), ("S", "SEQUENCE")):
        names = db.execute(
            sa.text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relkind = :k AND pg_get_userbyid(c.relowner) <> :r"
            ),
            {"s": schema, "k": kinds, "r": role},
        ).scalars()
        for name in list(names):
            db.execute(sa.text(f'ALTER {what} {schema}."{name}" OWNER TO {role}'))
    db.execute(sa.text(f"GRANT USAGE ON SCHEMA {KEYS[0]} TO {role}"))
    db.execute(sa.text(f"GRANT SELECT ON {KEYS[0]}.{KEYS[1]} TO {role}"))


def grant_reads(db: Connection) -> list[str]:
    """The reads across schemas; the tables that do not exist yet."""
    missing = []
    for service, tables in READS.items():
        for schema, table in tables:
            found = db.execute(
                sa.text("SELECT 1 FROM pg_tables WHERE schemaname = :s AND tablename = :t"),
                {"s": schema, "t": table},
            ).first()
            if found is None:
                missing.append(f"{schema}.{table}")
                continue
            db.execute(sa.text(f"GRANT USAGE ON SCHEMA {schema} TO {role_of(service)}"))
            db.execute(sa.text(f"GRANT SELECT ON {schema}.{table} TO {role_of(service)}"))
    return missing
