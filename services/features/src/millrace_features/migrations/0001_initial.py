"""features: offline and online store, snapshots, outbox.

Revision ID: features_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "features_0001"
down_revision = None
branch_labels = ("features",)
depends_on = None
SCHEMA = "features"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "offline_rows",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("feature_set", sa.String(120), nullable=False),
        sa.Column("feature_set_version", sa.Integer, nullable=False),
        sa.Column("entity_id", sa.String(200), nullable=False),
        _ts("event_time"),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("label", sa.Float),
        sa.Column("trace_id", sa.String(32)),
        _ts("created_at"),
        sa.UniqueConstraint("feature_set", "event_id", name="uq_offline_rows_event"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_offline_rows_fs_time", "offline_rows", ["feature_set", "event_time"], schema=SCHEMA
    )
    op.create_table(
        "online_rows",
        sa.Column("feature_set", sa.String(120), primary_key=True),
        sa.Column("entity_id", sa.String(200), primary_key=True),
        sa.Column("feature_set_version", sa.Integer, nullable=False),
        _ts("event_time"),
        sa.Column("features", sa.JSON, nullable=False),
        _ts("updated_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "snapshots",
        sa.Column("snapshot_id", sa.String(80), primary_key=True),
        sa.Column("model", sa.String(120), nullable=False, index=True),
        sa.Column("feature_set", sa.String(120), nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("labelled_rows", sa.Integer, nullable=False),
        _ts("cutoff"),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        _ts("created_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("topic", sa.String(120), nullable=False),
        sa.Column("key", sa.String(300)),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("ce_type", sa.String(120), nullable=False),
        sa.Column("traceparent", sa.String(64)),
        _ts("created_at"),
        _ts("sent_at", nullable=True),
        schema=SCHEMA,
    )
