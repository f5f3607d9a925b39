"""Alembic environment shared by every service: the caller passes the connection and schema."""

from alembic import context

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

context.configure(
    connection=connection,
    version_table=f"alembic_version_{schema}",
    version_table_schema=schema,
    include_schemas=True,
)
with context.begin_transaction():
    context.run_migrations()
