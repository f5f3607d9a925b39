"""Pending versions: the promotion rule is kept with the version, so it can be applied when
the version's checks are recorded later.

Revision ID: registry_0004_pending
Revises: registry_0003_site_groups

The file was 0004_pending.py; it was renamed so that file numbers are unique and sort in order.
The revision id stays registry_0004_pending: databases already record it.
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0004_pending"
down_revision = "registry_0003_site_groups"
branch_labels = None
depends_on = None

SCHEMA = "registry"


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("promotion", sa.JSON), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("model_versions", "promotion", schema=SCHEMA)
