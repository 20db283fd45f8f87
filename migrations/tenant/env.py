"""Alembic environment of the `tenant` track, run once per tenant schema.

Migrations name the placeholder schema `tenant`; the connection maps it to the real schema
given in `config.attributes["tenant_schema"]`, where the version table also lives.
"""

import re

from alembic import context
from sqlalchemy import text

from bpo.core.models import TENANT_PLACEHOLDER, TenantBase
from bpo.models import load_all_models

load_all_models()
schema = context.config.attributes["tenant_schema"]
if not re.fullmatch(r"tenant_[0-9a-f]{32}", schema):
    raise ValueError(f"not a tenant schema name: {schema!r}")
connection = context.config.attributes["connection"].execution_options(
    schema_translate_map={TENANT_PLACEHOLDER: schema}
)
connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))

context.configure(
    connection=connection,
    target_metadata=TenantBase.metadata,
    version_table_schema=schema,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
