"""Least privilege in Postgres (``millrace db roles``): each service's role owns its own
schema and nothing else. Tried as an attacker would: serving writing the online store,
the registry reading the offline rows, ingest writing a key, all refused by Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from millrace_cli.main import app as cli
from millrace_common.db import make_engine, migrate
from millrace_features.runtime import MIGRATIONS as FEATURES_MIGRATIONS
from millrace_registry.app import MIGRATIONS as REGISTRY_MIGRATIONS
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


def engine_of(url_file: Path) -> sa.Engine:
    return make_engine(url_file.read_text().strip(), pool_size=1)


def refused(engine: sa.Engine, statement: str) -> bool:
    """Whether Postgres refuses ``statement`` for want of a privilege."""
    try:
        with engine.begin() as db:
            db.execute(sa.text(statement))
    except ProgrammingError as exc:
        return "permission denied" in str(exc.orig)
    return False


def test_each_service_role_may_touch_its_own_schema_only(database_url: str, tmp_path: Path) -> None:
    admin = make_engine(database_url)
    migrate(admin, schema="features", versions=FEATURES_MIGRATIONS)
    migrate(admin, schema="registry", versions=REGISTRY_MIGRATIONS)
    out = tmp_path / "roles"
    made = CliRunner().invoke(
        cli, ["db", "roles", "--database-url", database_url, "--out", str(out)]
    )
    assert made.exit_code == 0, made.output
    assert "does not exist yet" not in made.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["features", "ingest", "registry", "serving", "trainer"]
    )
    assert make_url((out / "serving").read_text().strip()).username == "millrace_serving"
    assert oct((out / "serving").stat().st_mode & 0o777) == "0o600"
    serving, registry, features, ingest = (
        engine_of(out / name) for name in ("serving", "registry", "features", "ingest")
    )

    # what each may do
    with serving.connect() as db:
        db.execute(sa.text("SELECT count(*) FROM features.online_rows"))
        db.execute(sa.text("SELECT count(*) FROM auth.api_keys"))
    with features.begin() as db:
        db.execute(sa.text("DELETE FROM features.online_rows"))
        db.execute(sa.text("SELECT count(*) FROM features.offline_rows"))
    with registry.begin() as db:
        db.execute(sa.text("SELECT count(*) FROM registry.alembic_version_registry"))
    # the services still migrate their own schemas, as their own roles
    migrate(features, schema="features", versions=FEATURES_MIGRATIONS)
    migrate(registry, schema="registry", versions=REGISTRY_MIGRATIONS)

    # and what each may not
    assert refused(serving, "DELETE FROM features.online_rows")
    assert refused(serving, "SELECT count(*) FROM features.offline_rows")
    assert refused(serving, "SELECT count(*) FROM registry.alembic_version_registry")
    assert refused(registry, "SELECT count(*) FROM features.offline_rows")
    assert refused(features, "SELECT count(*) FROM registry.alembic_version_registry")
    assert refused(ingest, "DELETE FROM auth.api_keys")
    assert refused(ingest, "CREATE TABLE public.squat (x int)") or refused(
        ingest, "CREATE SCHEMA squat"
    )

    # idempotent: a second run (after an upgrade, say) changes nothing it should not
    again = CliRunner().invoke(
        cli, ["db", "roles", "--database-url", database_url, "--out", str(out)]
    )
    assert again.exit_code == 0, again.output
    with engine_of(out / "serving").connect() as db:
        db.execute(sa.text("SELECT count(*) FROM features.online_rows"))
    for engine in (admin, serving, registry, features, ingest):
        engine.dispose()


def test_sqlite_has_no_roles_and_says_so(tmp_path: Path) -> None:
    said = CliRunner().invoke(cli, ["db", "roles", "--database-url", f"sqlite:///{tmp_path}/x.db"])
    assert said.exit_code == 1 and "roles need Postgres" in said.output
