"""Served predictions keep their inputs (the feature values of the row), so the monitor
measures the drift of what serving answered.

Revision ID: registry_0008_served_inputs
Revises: registry_0007_monitoring
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0008_served_inputs"
down_revision = "registry_0007_monitoring"
branch_labels = None
depends_on = None

SCHEMA = "registry"


def upgrade() -> None:
    op.add_column("served_predictions", sa.Column("inputs", sa.JSON), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("served_predictions", "inputs", schema=SCHEMA)
