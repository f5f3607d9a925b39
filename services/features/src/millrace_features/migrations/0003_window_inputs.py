"""Offline rows keep the values of the fields their feature set reads, so an entity's
window starts again from the store after a restart or a rebalance (no changelog to
replay); indexed by entity and event time for that lookup.

Revision ID: features_0003_window_inputs
Revises: features_0002_drift_reference
"""

import sqlalchemy as sa
from alembic import op

revision = "features_0003_window_inputs"
down_revision = "features_0002_drift_reference"
branch_labels = None
depends_on = None
SCHEMA = "features"


def upgrade() -> None:
    op.add_column("offline_rows", sa.Column("inputs", sa.JSON), schema=SCHEMA)
    op.create_index(
        "ix_offline_rows_entity_time",
        "offline_rows",
        ["feature_set", "entity_id", "event_time"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_offline_rows_entity_time", "offline_rows", schema=SCHEMA)
    with op.batch_alter_table("offline_rows", schema=SCHEMA) as batch:
        batch.drop_column("inputs")
