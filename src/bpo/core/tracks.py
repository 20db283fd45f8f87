"""The two Alembic tracks, one at a time: where they live, their revisions, the platform
track's upgrade and its drift against the models. Running both (platform, then every
tenant schema) is `core.migrations`; the tenant track at scale is `core.tenant_migrations`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bpo.core.citus import ensure_reference_tables, tenant_read_tables
from bpo.core.models import PLATFORM_SCHEMA, PlatformBase, require_all_models

TRACKS = ("platform", "tenant")


def migrations_root() -> Path:
    """The Alembic tracks: inside the wheel when installed, else the source tree's."""
    packaged = Path(__file__).resolve().parents[1] / "migrations"
    if (packaged / "platform").is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(track: str, **attributes: Any) -> Config:
    if track not in TRACKS:
        raise ValueError(f"unknown migration track {track!r}")
    config = Config()
    config.set_main_option("script_location", str(migrations_root() / track))
    config.attributes.update(attributes)
    return config


def head_revision(track: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(track)).get_current_head()


async def upgrade_platform(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, "platform", {})
        # On Citus: the platform tables tenant statements read get a copy on every node.
        await conn.run_sync(ensure_reference_tables, tenant_read_tables())


async def current_revision(engine: AsyncEngine, schema: str = PLATFORM_SCHEMA) -> str | None:
    async with engine.connect() as conn:
        exists = await conn.scalar(
            text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{schema}.alembic_version"}
        )
        if not exists:
            return None
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(
                sync, opts={"version_table_schema": schema}
            ).get_current_revision()
        )


def include_platform_name(name: str | None, kind: str, parents: Any) -> bool:
    """What the platform track owns: the `platform` schema, minus Alembic's own table."""
    if kind == "schema":
        return name == PLATFORM_SCHEMA
    return not (kind == "table" and name == "alembic_version")


def platform_drift_on(sync_conn: Connection) -> list[Any]:
    """Differences between the models and `platform` as this connection sees it."""
    from alembic.autogenerate import compare_metadata

    require_all_models()
    context = MigrationContext.configure(
        sync_conn,
        opts={
            "include_schemas": True,
            "include_name": include_platform_name,
            "compare_type": True,
        },
    )
    return list(compare_metadata(context, PlatformBase.metadata))


async def platform_drift(engine: AsyncEngine) -> list[Any]:
    """Differences between the models and the migrated `platform` schema (empty: none)."""
    async with engine.connect() as conn:
        return await conn.run_sync(platform_drift_on)


def _upgrade(conn: Connection, track: str, attributes: dict[str, Any]) -> None:
    command.upgrade(alembic_config(track, connection=conn, **attributes), "head")
