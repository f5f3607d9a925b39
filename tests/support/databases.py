"""Throwaway Postgres databases: the server on 127.0.0.1:5432 unless MILLRACE_TEST_PG says
otherwise."""

from __future__ import annotations

import os
import secrets

import psycopg

PG_ADMIN = os.environ.get("MILLRACE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def create_database() -> str:
    """A new, empty database; its SQLAlchemy URL."""
    name = f"millrace_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
