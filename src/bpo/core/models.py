"""Declarative bases: one for the shared `platform` schema, one for every tenant schema.

Tenant tables are declared against the placeholder schema `tenant`; a tenant transaction maps
it to the real `tenant_<id>` schema (schema_translate_map), so one model serves all tenants.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

PLATFORM_SCHEMA = "platform"
TENANT_PLACEHOLDER = "tenant"

# Deterministic constraint names keep migrations reviewable and drift checks exact.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class PlatformBase(DeclarativeBase):
    metadata = MetaData(schema=PLATFORM_SCHEMA, naming_convention=NAMING_CONVENTION)


class TenantBase(DeclarativeBase):
    metadata = MetaData(schema=TENANT_PLACEHOLDER, naming_convention=NAMING_CONVENTION)


def require_all_models() -> None:
    """Refuse to build or compare schemas from incomplete metadata.

    `core` knows no domain: the entry points (the app, the CLI, the worker, the migration
    environments, the tests) import every domain's models through `bpo.models` first."""
    if not _all_loaded:
        raise RuntimeError("the models are not loaded: call bpo.models.load_all_models() first")


_all_loaded = False


def mark_all_models_loaded() -> None:
    global _all_loaded
    _all_loaded = True
