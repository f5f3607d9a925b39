"""Catalog completeness: tags on models and versions, version descriptions, and training runs.

Revision ID: registry_0002_catalog
Revises: registry_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0002_catalog"
down_revision = "registry_0001"
branch_labels = None
depends_on = None

SCHEMA = "registry"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "models", sa.Column("tags", sa.JSON, nullable=False, server_default="{}"), schema=SCHEMA
    )
    op.add_column(
        "model_versions",
        sa.Column("tags", sa.JSON, nullable=False, server_default="{}"),
        schema=SCHEMA,
    )
    op.add_column(
        "model_versions",
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        schema=SCHEMA,
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(120), nullable=False),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("timings", sa.JSON, nullable=False),
        sa.Column("failure_reason", sa.Text),
        sa.Column("logs_uri", sa.String(1000)),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.UniqueConstraint("model", "run_id", name="uq_runs_run_id"),
        schema=SCHEMA,
    )
    op.create_index("ix_registry_runs_model", "runs", ["model"], schema=SCHEMA)
