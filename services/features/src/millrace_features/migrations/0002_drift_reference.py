"""Snapshots keep each feature's reference distribution (quantile bins and shares of the
snapshot's rows, for drift) and the reason they were cut.

Revision ID: features_0002_drift_reference
Revises: features_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "features_0002_drift_reference"
down_revision = "features_0001"
branch_labels = None
depends_on = None
SCHEMA = "features"


def upgrade() -> None:
    op.add_column("snapshots", sa.Column("reference", sa.JSON), schema=SCHEMA)
    op.add_column("snapshots", sa.Column("reason", sa.Text), schema=SCHEMA)


def downgrade() -> None:
    with op.batch_alter_table("snapshots", schema=SCHEMA) as batch:
        batch.drop_column("reason")
        batch.drop_column("reference")
