"""The features service's own tables (besides the feature store's)."""

from __future__ import annotations

import sqlalchemy as sa
from millrace_common.feature_store import SCHEMA, metadata
from millrace_common.outbox import outbox_table

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("snapshot_id", sa.String(80), primary_key=True),
    sa.Column("model", sa.String(120), nullable=False, index=True),
    sa.Column("feature_set", sa.String(120), nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("labelled_rows", sa.Integer, nullable=False),
    sa.Column("cutoff", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # each feature's quantile bins and shares in this snapshot (millrace_features.drift)
    sa.Column("reference", sa.JSON),
    sa.Column("reason", sa.Text),
    schema=SCHEMA,
)

outbox = outbox_table(metadata, SCHEMA)
