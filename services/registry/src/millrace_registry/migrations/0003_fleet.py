"""Fleet state: the heartbeats edge agents report, per site.

Revision ID: registry_0002_fleet
Revises: registry_0002_catalog

The file was 0002_fleet.py; it was renamed so that file numbers are unique and sort in order.
The revision id stays registry_0002_fleet: databases already record it.
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0002_fleet"
down_revision = "registry_0002_catalog"
branch_labels = None
depends_on = None

SCHEMA = "registry"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "site_heartbeats",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(120), nullable=False),
        sa.Column("sent_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_site_heartbeats_site", "site_heartbeats", ["site"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_site_heartbeats_site", "site_heartbeats", schema=SCHEMA)
    op.drop_table("site_heartbeats", schema=SCHEMA)
