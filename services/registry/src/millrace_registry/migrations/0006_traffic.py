"""Traffic policies: one row per model saying how serving splits its production traffic
(none, canary, shadow or sticky) and with which challenger alias.

Revision ID: registry_0005_traffic
Revises: registry_0004_pending

The file was 0005_traffic.py; it was renamed so that file numbers are unique and sort in order.
The revision id stays registry_0005_traffic: databases already record it.
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0005_traffic"
down_revision = "registry_0004_pending"
branch_labels = None
depends_on = None

SCHEMA = "registry"


def upgrade() -> None:
    op.create_table(
        "traffic_policies",
        sa.Column("model", sa.String(120), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("challenger_alias", sa.String(63), nullable=False),
        sa.Column("percent", sa.Float),
        sa.Column("key_field", sa.String(40)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("traffic_policies", schema=SCHEMA)
