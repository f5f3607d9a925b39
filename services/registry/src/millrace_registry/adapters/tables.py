"""The registry's tables (schema ``registry``); migrations/ creates them."""

from __future__ import annotations

import sqlalchemy as sa
from millrace_common.outbox import outbox_table

SCHEMA = "registry"
metadata = sa.MetaData()
_TS = sa.DateTime(timezone=True)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(120), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False, server_default="{}"),
    schema=SCHEMA,
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(120), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("request_id", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rejection_reason", sa.Text),
    sa.Column("artifact_uri", sa.String(1000), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("model_schema", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("champion_metrics", sa.JSON),
    sa.Column("champion_version", sa.Integer),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("lineage", sa.JSON, nullable=False),
    sa.Column("promoted", sa.Boolean, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False, server_default="{}"),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("promotion", sa.JSON),  # the rule, applied when a pending version's checks land
    sa.UniqueConstraint("model", "version", name="uq_model_versions_version"),
    sa.UniqueConstraint("model", "request_id", name="uq_model_versions_request"),
    schema=SCHEMA,
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model", sa.String(120), primary_key=True),
    sa.Column("alias", sa.String(63), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    schema=SCHEMA,
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(120), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("alias", sa.String(63)),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", _TS, nullable=False),
    schema=SCHEMA,
)

site_deployments = sa.Table(
    "site_deployments",
    metadata,
    sa.Column("site_id", sa.String(120), primary_key=True),
    sa.Column("model", sa.String(120), primary_key=True),
    sa.Column("alias", sa.String(63), nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    schema=SCHEMA,
)

site_groups = sa.Table(
    "site_groups",
    metadata,
    sa.Column("name", sa.String(120), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("updated_at", _TS, nullable=False),
    schema=SCHEMA,
)

site_group_members = sa.Table(
    "site_group_members",
    metadata,
    sa.Column("group_name", sa.String(120), primary_key=True),
    sa.Column("site_id", sa.String(120), primary_key=True),
    schema=SCHEMA,
)

site_group_deployments = sa.Table(
    "site_group_deployments",
    metadata,
    sa.Column("group_name", sa.String(120), primary_key=True),
    sa.Column("model", sa.String(120), primary_key=True),
    sa.Column("alias", sa.String(63), nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    schema=SCHEMA,
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(120), nullable=False),
    sa.Column("run_id", sa.String(200), nullable=False),
    sa.Column("request_id", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("timings", sa.JSON, nullable=False),
    sa.Column("failure_reason", sa.Text),
    sa.Column("logs_uri", sa.String(1000)),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("started_at", _TS, nullable=False),
    sa.Column("finished_at", _TS),
    sa.UniqueConstraint("model", "run_id", name="uq_runs_run_id"),
    schema=SCHEMA,
)

site_heartbeats = sa.Table(
    "site_heartbeats",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site", sa.String(120), nullable=False, index=True),
    sa.Column("sent_at", _TS, nullable=False),
    sa.Column("received_at", _TS, nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
    schema=SCHEMA,
)

traffic_policies = sa.Table(
    "traffic_policies",
    metadata,
    sa.Column("model", sa.String(120), primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("challenger_alias", sa.String(63), nullable=False),
    sa.Column("percent", sa.Float),
    sa.Column("key_field", sa.String(40)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    schema=SCHEMA,
)

outbox = outbox_table(metadata, SCHEMA)

served_predictions = sa.Table(
    "served_predictions",
    metadata,
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
    sa.Column("inputs", sa.JSON),
    schema=SCHEMA,
)

observed_labels = sa.Table(
    "observed_labels",
    metadata,
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

label_counts = sa.Table(
    "label_counts",
    metadata,
    sa.Column("dataset", sa.String(120), primary_key=True),
    sa.Column("kind", sa.String(20), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    schema=SCHEMA,
)
