"""Alembic environment of the `platform` track (the shared schema).

Run through `bpo migrate`, which hands over an open connection in
`config.attributes["connection"]`; the transaction is the caller's.
"""

from alembic import context
from sqlalchemy import text

from bpo.core.migrations import include_platform_name
from bpo.core.models import PLATFORM_SCHEMA, PlatformBase
from bpo.models import load_all_models

load_all_models()
connection = context.config.attributes["connection"]
connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {PLATFORM_SCHEMA}"))


context.configure(
    connection=connection,
    target_metadata=PlatformBase.metadata,
    version_table_schema=PLATFORM_SCHEMA,
    include_schemas=True,
    include_name=include_platform_name,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
