"""The tenant track at scale: build a schema at head, upgrade thousands in parallel, check.

- A new schema is built from the models and stamped at head (no history replayed).
- Each tenant schema records its revision in its catalog comment, in the same transaction
  as the migration, so "who is behind head" is one catalog query over `pg_namespace`.
- Upgrades run in parallel batches, one process per batch worker and one transaction per
  schema; a failure is recorded in `platform.tenant_migrations` and stops neither the other
  schemas nor a later re-run. Processes, not tasks: Alembic's `op` is one module-level proxy,
  so two migrations interleaving on one event loop would write through each other's context.
- Alembic's script directory is loaded once per location and driven directly (the same steps
  `command.upgrade` takes, minus re-reading env.py and every revision file per schema).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, DateTime, Integer, MetaData, String, Text, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.citus import distribute_schema
from bpo.core.models import (
    NAMING_CONVENTION,
    TENANT_PLACEHOLDER,
    PlatformBase,
    TenantBase,
    require_all_models,
)
from bpo.core.tenancy import TENANT_SCHEMA_RE
from bpo.core.tracks import current_revision, head_revision, migrations_root, platform_drift

COMMENT_PREFIX = "bpo tenant schema; revision "
DEFAULT_CONCURRENCY = 2  # worker processes: this machine has two cores
DEFAULT_BATCH = 50


class TenantMigration(PlatformBase):
    """The last migration attempt of one tenant schema (`bpo migrate` keeps one per schema)."""

    __tablename__ = "tenant_migrations"

    schema_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    revision: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    migrated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)


def tenant_track() -> Path:
    return migrations_root() / "tenant"


@cache
def tenant_script(location: str) -> ScriptDirectory:
    return ScriptDirectory(location)


def tenant_head(location: Path | None = None) -> str:
    head = tenant_script(str(location or tenant_track())).get_current_head()
    if head is None:
        raise RuntimeError("the tenant track has no revisions")
    return head


def check_schema_name(schema: str) -> str:
    if not TENANT_SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"not a tenant schema name: {schema!r}")
    return schema


def _routed(conn: Connection, schema: str) -> Connection:
    return conn.execution_options(schema_translate_map={TENANT_PLACEHOLDER: schema})


def _set_revision_comment(conn: Connection, schema: str, revision: str) -> None:
    conn.exec_driver_sql(f"COMMENT ON SCHEMA \"{schema}\" IS '{COMMENT_PREFIX}{revision}'")


def build_schema_sync(conn: Connection, schema: str, location: Path | None = None) -> str:
    """Create `schema` at head from the models and stamp it. Returns the head revision."""
    check_schema_name(schema)
    require_all_models()
    script = tenant_script(str(location or tenant_track()))
    conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    routed = _routed(conn, schema)
    TenantBase.metadata.create_all(routed)
    context = MigrationContext.configure(routed, opts={"version_table_schema": schema})
    head = tenant_head(location)
    context.stamp(script, head)
    # On Citus, with all its tables in place: placed on one node now, so warm-pool schemas
    # are claimed already placed (a no-op on plain PostgreSQL).
    distribute_schema(conn, schema)
    _set_revision_comment(conn, schema, head)
    return head


def upgrade_schema_sync(
    conn: Connection, schema: str, location: Path | None = None, target: str = "head"
) -> str:
    """Replay the tenant track on `schema` up to `target` (head; a restore names an older
    revision). Returns the revision reached."""
    check_schema_name(schema)
    script = tenant_script(str(location or tenant_track()))
    routed = _routed(conn, schema)
    routed.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')

    def steps(revision: Any, context: Any) -> Any:
        return script._upgrade_revs(target, revision)

    context = MigrationContext.configure(
        routed,
        opts={
            "version_table_schema": schema,
            "fn": steps,
            "script": script,
            "target_metadata": TenantBase.metadata,
        },
    )
    with Operations.context(context):
        context.run_migrations()
    reached = tenant_head(location) if target == "head" else target
    _set_revision_comment(conn, schema, reached)
    return reached


async def schema_revisions(engine: AsyncEngine) -> dict[str, str | None]:
    """Registered tenant schemas (tenants and warm pool) and their recorded revision.

    One catalog query: the revision is read from each schema's comment.
    """
    sql = text(
        """
        SELECT s.name, obj_description(n.oid, 'pg_namespace')
        FROM (
            SELECT 'tenant_' || replace(id::text, '-', '') AS name FROM platform.tenants
            UNION ALL
            SELECT 'tenant_' || replace(id::text, '-', '') FROM platform.tenant_schema_pool
        ) AS s
        LEFT JOIN pg_namespace n ON n.nspname = s.name
        """
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(sql)).all()
    return {name: _revision_from_comment(comment) for name, comment in rows}


async def schema_states(engine: AsyncEngine) -> dict[tuple[str, ...], float]:
    """Tenant schemas at head ("current") and not ("behind"): the metric of a rollout."""
    head = tenant_head()
    revisions = (await schema_revisions(engine)).values()
    current = sum(1 for revision in revisions if revision == head)
    return {("current",): float(current), ("behind",): float(len(revisions) - current)}


def _revision_from_comment(comment: str | None) -> str | None:
    if comment and comment.startswith(COMMENT_PREFIX):
        return comment.removeprefix(COMMENT_PREFIX)
    return None


@dataclass
class MigrationReport:
    head: str
    total: int = 0
    already_at_head: int = 0
    upgraded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


async def upgrade_tenants(
    engine: AsyncEngine,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    batch_size: int = DEFAULT_BATCH,
    location: Path | None = None,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[str, str | None], None] | None = None,
) -> MigrationReport:
    """Bring every registered tenant schema to head: batches over `concurrency` processes."""
    started = time.perf_counter()
    head = tenant_head(location)
    revisions = await schema_revisions(engine)
    behind = sorted(name for name, rev in revisions.items() if rev != head)
    report = MigrationReport(head=head, total=len(revisions))
    report.already_at_head = len(revisions) - len(behind)
    if on_start:
        on_start(len(behind))

    def collect(results: dict[str, str | None]) -> None:
        for schema, error in results.items():
            if error is None:
                report.upgraded.append(schema)
            else:
                report.failed[schema] = error
            if on_done:
                on_done(schema, error)

    if concurrency <= 1 or len(behind) <= batch_size:
        for schema in behind:
            collect({schema: await _upgrade_and_record(engine, schema, location)})
    else:
        url = engine.url.render_as_string(hide_password=False)
        where = str(location) if location else None
        batches = [behind[i : i + batch_size] for i in range(0, len(behind), batch_size)]
        loop = asyncio.get_running_loop()
        spawn = multiprocessing.get_context("spawn")  # no fork of a running loop and its sockets
        with ProcessPoolExecutor(max_workers=concurrency, mp_context=spawn) as pool:
            jobs = [loop.run_in_executor(pool, migrate_batch, url, b, where) for b in batches]
            for finished in asyncio.as_completed(jobs):
                collect(await finished)
    report.seconds = time.perf_counter() - started
    return report


def migrate_batch(url: str, schemas: list[str], location: str | None) -> dict[str, str | None]:
    """One batch, one schema after another, in a worker process."""
    from bpo.core.db import Database, DatabaseOptions

    async def run() -> dict[str, str | None]:
        db = Database(
            url, DatabaseOptions(pool_size=1, max_overflow=0, application_name="bpo-migrate")
        )
        where = Path(location) if location else None
        try:
            return {s: await _upgrade_and_record(db.engine, s, where) for s in schemas}
        finally:
            await db.dispose()

    return asyncio.run(run())


async def _upgrade_and_record(
    engine: AsyncEngine, schema: str, location: Path | None
) -> str | None:
    attempted = datetime.now(UTC)
    started = time.perf_counter()
    try:
        async with engine.begin() as conn:
            revision = await conn.run_sync(upgrade_schema_sync, schema, location)
            await _record(conn, schema, attempted, started, revision=revision, error=None)
        return None
    except Exception as exc:  # one schema's failure must not stop the others
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        async with engine.begin() as conn:
            await _record(conn, schema, attempted, started, revision=None, error=error)
        return error


async def _record(
    conn: Any,
    schema: str,
    attempted: datetime,
    started: float,
    *,
    revision: str | None,
    error: str | None,
) -> None:

    values: dict[str, Any] = {
        "schema_name": schema,
        "last_error": error,
        "attempted_at": attempted,
        "duration_ms": int((time.perf_counter() - started) * 1000),
    }
    if revision is not None:
        values |= {"revision": revision, "migrated_at": datetime.now(UTC)}
    statement = pg_insert(TenantMigration).values(**values)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[TenantMigration.schema_name],
            set_={k: statement.excluded[k] for k in values if k != "schema_name"},
        )
    )


@dataclass
class DriftReport:
    platform_revision: str | None
    platform_head: str | None
    platform_model_drift: list[Any]
    tenant_head: str
    tenants_behind: dict[str, str | None]
    tenant_model_drift: list[Any]

    @property
    def clean(self) -> bool:
        return (
            self.platform_revision == self.platform_head
            and not self.platform_model_drift
            and not self.tenants_behind
            and not self.tenant_model_drift
        )


async def check_drift(engine: AsyncEngine, location: Path | None = None) -> DriftReport:
    """What `bpo migrate` would change, and where models and migrations disagree.

    Changes nothing: the tenant model comparison replays the track into a scratch schema
    inside a transaction that is rolled back.
    """
    head = tenant_head(location)
    revisions = await schema_revisions(engine)
    async with engine.connect() as conn:
        trans = await conn.begin()
        try:
            tenant_drift = await conn.run_sync(_tenant_model_drift, location)
        finally:
            await trans.rollback()
    return DriftReport(
        platform_revision=await current_revision(engine),
        platform_head=head_revision("platform"),
        platform_model_drift=await platform_drift(engine),
        tenant_head=head,
        tenants_behind={name: rev for name, rev in revisions.items() if rev != head},
        tenant_model_drift=tenant_drift,
    )


def _tenant_model_drift(conn: Connection, location: Path | None) -> list[Any]:
    from alembic.autogenerate import compare_metadata

    require_all_models()
    scratch = "tenant_" + "0" * 32
    conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{scratch}" CASCADE')
    upgrade_schema_sync(conn, scratch, location)
    target = MetaData(naming_convention=NAMING_CONVENTION)
    for table in TenantBase.metadata.tables.values():
        table.to_metadata(target, schema=scratch)
    context = MigrationContext.configure(
        conn,
        opts={
            "include_schemas": True,
            "include_name": lambda name, kind, _: (
                name == scratch if kind == "schema" else name != "alembic_version"
            ),
            "compare_type": True,
        },
    )
    return list(compare_metadata(context, target))
