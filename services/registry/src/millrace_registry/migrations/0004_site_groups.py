"""Site groups: named sets of sites that follow a model's alias together.

Revision ID: registry_0003_site_groups
Revises: registry_0002_fleet

The file was 0003_site_groups.py; it was renamed so that file numbers are unique and sort in order.
The revision id stays registry_0003_site_groups: databases already record it.
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0003_site_groups"
down_revision = "registry_0002_fleet"
branch_labels = None
depends_on = None

SCHEMA = "registry"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "site_groups",
        sa.Column("name", sa.String(120), primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_at", TS, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "site_group_members",
        sa.Column("group_name", sa.String(120), primary_key=True),
        sa.Column("site_id", sa.String(120), primary_key=True),
        schema=SCHEMA,
    )
    op.create_index("ix_site_group_members_site", "site_group_members", ["site_id"], schema=SCHEMA)
    op.create_table(
        "site_group_deployments",
        sa.Column("group_name", sa.String(120), primary_key=True),
        sa.Column("model", sa.String(120), primary_key=True),
        sa.Column("alias", sa.String(63), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("site_group_deployments", schema=SCHEMA)
    op.drop_index("ix_site_group_members_site", "site_group_members", schema=SCHEMA)
    op.drop_table("site_group_members", schema=SCHEMA)
    op.drop_table("site_groups", schema=SCHEMA)
