"""The monitor's tables: predictions as served (one row per answered row, keyed by request
id, row, model and version, so a replayed log writes nothing twice), labels as observed
(keyed by their event id), and how many duplicate labels each dataset received.

Revision ID: registry_0007_monitoring
Revises: registry_0005_traffic
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0007_monitoring"
down_revision = "registry_0005_traffic"
branch_labels = None
depends_on = None

SCHEMA = "registry"
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "served_predictions",
        sa.Column("model", sa.String(120), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True),
        sa.Column("alias", sa.String(63)),
        sa.Column("site", sa.String(120)),
        sa.Column("entity_id", sa.String(200)),
        sa.Column("at", _TS, nullable=False),
        sa.Column("label", sa.JSON),
        sa.Column("value", sa.Float),
        sa.Column("probabilities", sa.JSON),
        schema=SCHEMA,
    )
    op.create_index(
        "served_predictions_by_time", "served_predictions", ["model", "at"], schema=SCHEMA
    )
    op.create_index(
        "served_predictions_by_request", "served_predictions", ["request_id"], schema=SCHEMA
    )
    op.create_table(
        "observed_labels",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("dataset", sa.String(120), nullable=False),
        sa.Column("field", sa.String(120), nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("row", sa.Integer),
        sa.Column("entity_id", sa.String(200)),
        sa.Column("ts", _TS),
        sa.Column("at", _TS, nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "observed_labels_by_time", "observed_labels", ["dataset", "entity_id", "ts"], schema=SCHEMA
    )
    op.create_index("observed_labels_by_request", "observed_labels", ["request_id"], schema=SCHEMA)
    op.create_table(
        "label_counts",
        sa.Column("dataset", sa.String(120), primary_key=True),
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("label_counts", schema=SCHEMA)
    op.drop_table("observed_labels", schema=SCHEMA)
    op.drop_table("served_predictions", schema=SCHEMA)
