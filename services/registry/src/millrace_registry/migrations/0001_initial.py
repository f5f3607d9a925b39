"""The registry's first tables: models, versions, aliases, audit log, sites, outbox.

Revision ID: registry_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from millrace_common.outbox import outbox_table

revision = "registry_0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "registry"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(120), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
        schema=SCHEMA,
    )
    _versions()
    op.create_table(
        "aliases",
        sa.Column("model", sa.String(120), primary_key=True),
        sa.Column("alias", sa.String(63), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        schema=SCHEMA,
    )
    _audit_and_sites()
    outbox_table(sa.MetaData(), SCHEMA).create(op.get_bind())


def _versions() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(120), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rejection_reason", sa.Text),
        sa.Column("artifact_uri", sa.String(1000), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("model_schema", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("champion_metrics", sa.JSON),
        sa.Column("champion_version", sa.Integer),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.Column("promoted", sa.Boolean, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("model", "version", name="uq_model_versions_version"),
        sa.UniqueConstraint("model", "request_id", name="uq_model_versions_request"),
        schema=SCHEMA,
    )


def _audit_and_sites() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(120), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("alias", sa.String(63)),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", TS, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_registry_audit_log_model", "audit_log", ["model"], schema=SCHEMA)
    op.create_table(
        "site_deployments",
        sa.Column("site_id", sa.String(120), primary_key=True),
        sa.Column("model", sa.String(120), primary_key=True),
        sa.Column("alias", sa.String(63), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        schema=SCHEMA,
    )
