"""The feature store's tables (schema ``features``): written by the features service,
read by serving for online lookups and by snapshots for training."""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA = "features"
metadata = sa.MetaData()

offline_rows = sa.Table(
    "offline_rows",
    metadata,
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
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("label", sa.Float),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # the values of the fields the feature set reads: windows start again from these
    # after a restart or a rebalance (null on rows written before features_0003)
    sa.Column("inputs", sa.JSON),
    sa.UniqueConstraint("feature_set", "event_id", name="uq_offline_rows_event"),
    sa.Index("ix_offline_rows_entity_time", "feature_set", "entity_id", "event_time"),
    schema=SCHEMA,
)

online_rows = sa.Table(
    "online_rows",
    metadata,
    sa.Column("feature_set", sa.String(120), primary_key=True),
    sa.Column("entity_id", sa.String(200), primary_key=True),
    sa.Column("feature_set_version", sa.Integer, nullable=False),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    schema=SCHEMA,
)
