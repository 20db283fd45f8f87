"""How a transaction finds its tenant: schema routing plus a database role per tenant.

Tenant tables are declared against the placeholder schema `tenant`. A tenant transaction
maps it to `tenant_<id hex>` with `schema_translate_map` and, first thing, runs
`SET LOCAL ROLE <tenant role>` and a transaction-local `statement_timeout`. Both end with the
transaction, so nothing reaches the pool. The role is what isolates: it holds privileges on
its schema only, so even raw SQL naming another tenant's schema is refused by PostgreSQL.

The two SET LOCAL lines travel in the same message as the transaction's BEGIN
(`RoutedConnection`), so routing costs no extra round trip; a statement of a tenant session
in a transaction that began without them is refused (`route_tenants_in_begin`): fail closed.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.util import greenlet_spawn

from bpo.core.models import TENANT_PLACEHOLDER

TENANT_SCHEMA_RE = re.compile(r"^tenant_[0-9a-f]{32}$")
TENANTS_GROUP_ROLE = (
    "bpo_tenants"  # every tenant role is a member; later issues grant it narrow rights
)
STATEMENT_TIMEOUT_MS = {"api": 15_000, "worker": 120_000}
_TIMEOUTS = {purpose: str(ms) for purpose, ms in STATEMENT_TIMEOUT_MS.items()}
# A backend that has served this many distinct tenants is closed on check-in, which bounds
# its per-schema caches (catalog, plans, prepared statements): see the memory guard figures.
DEFAULT_TENANTS_PER_CONNECTION = 200

Purpose = Literal["api", "worker"]


def schema_name(tenant_id: uuid.UUID) -> str:
    """The tenant's schema: derived from its id, never from user text."""
    return f"tenant_{tenant_id.hex}"


def role_name(tenant_id: uuid.UUID) -> str:
    """The tenant's NOLOGIN role, holding privileges on its schema only."""
    return f"tenant_{tenant_id.hex}_app"


_ISSUER = object()


class TenantRoutingError(RuntimeError):
    """A tenant session's statement would have run without the tenant's role in force."""


class RoutedConnection(asyncpg.Connection):
    """An asyncpg connection that sends a tenant's SET LOCAL lines with every BEGIN.

    asyncpg opens and closes transactions with plain `execute("BEGIN ...;")`, `"COMMIT;"`
    and `"ROLLBACK;"` (simple query protocol, which takes several statements at once), so
    the lines cost no round trip, and a session that rolls back and goes on gets its role
    again with the next BEGIN.
    """

    tenant_enter: str | None = None  # set while a tenant session holds this connection
    in_routed_transaction: bool = False  # the open transaction began with tenant_enter
    pool_info: dict[str, Any]  # its pool record's info, while checked out bare (memory guard)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        enter = self.tenant_enter
        if enter is None or args:
            return await super().execute(query, *args, timeout=timeout)
        if query in ("COMMIT;", "ROLLBACK;"):
            self.in_routed_transaction = False
        elif query.startswith("BEGIN"):
            try:
                result = await super().execute(f"{query} {enter}", timeout=timeout)
            except BaseException:
                # BEGIN may have passed and a SET failed (a dropped role): leave no
                # transaction open, and let asyncpg forget the failed one (it keeps it as
                # the "top" transaction and would turn the next BEGIN into a SAVEPOINT).
                if not self.is_closed() and self.is_in_transaction():
                    with contextlib.suppress(Exception):
                        await super().execute("ROLLBACK;")
                self._top_xact = None
                raise
            self.in_routed_transaction = True
            return result
        return await super().execute(query, timeout=timeout)

    def leave_tenant(self) -> None:
        self.tenant_enter = None
        self.in_routed_transaction = False


class TenantContext:
    """Proof that the caller may act for one tenant. Only the auth layer makes these.

    Code that opens a tenant session must be handed one; it cannot be built from a slug or
    an id found in a request (the constructor refuses anyone without the issuer token).
    """

    __slots__ = ("role", "schema", "slug", "tenant_id")

    def __init__(self, tenant_id: uuid.UUID, slug: str, *, issuer: object) -> None:
        if issuer is not _ISSUER:
            raise PermissionError("TenantContext is issued by the auth layer only")
        self.tenant_id = tenant_id
        self.slug = slug
        self.schema = schema_name(tenant_id)
        self.role = role_name(tenant_id)

    def __repr__(self) -> str:
        return f"TenantContext({self.slug!r}, {self.schema})"


def issue_tenant_context(tenant_id: uuid.UUID, slug: str) -> TenantContext:
    """For the auth layer (bpo.platform.access) and trusted internals (CLI, job middleware)."""
    return TenantContext(tenant_id, slug, issuer=_ISSUER)


@asynccontextmanager
async def tenant_session(
    engine: AsyncEngine, ctx: TenantContext, purpose: Purpose = "api"
) -> AsyncIterator[AsyncSession]:
    """A session on one connection routed to `ctx`'s schema, as `ctx`'s role.

    Commits when the block ends, rolls back if it raises. The session is bound to its
    connection, so even after a rollback inside the block it never leaves the tenant.
    """
    async with engine.connect() as conn:
        await conn.execution_options(schema_translate_map={TENANT_PLACEHOLDER: ctx.schema})
        raw = (await conn.get_raw_connection()).driver_connection
        if not isinstance(raw, RoutedConnection):
            raise TenantRoutingError("tenant sessions need an engine from bpo.core.db.Database")
        sync = conn.sync_connection
        assert sync is not None
        sync.info.setdefault("bpo_tenants", set()).add(ctx.schema)
        raw.tenant_enter = _enter(ctx, purpose)
        try:
            async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                try:
                    yield session
                except BaseException:
                    await session.rollback()
                    raise
                else:
                    await session.commit()
        finally:
            raw.leave_tenant()  # before the connection goes back to the pool


def _enter(ctx: TenantContext, purpose: Purpose) -> str:
    """The lines every BEGIN of a tenant transaction carries: the tenant's role (what
    isolates), its schema first on the search path (so SQL that names tables unqualified
    has the same text for every tenant: one prepared statement, not one per tenant), and
    the statement timeout."""
    return (
        f'SET LOCAL ROLE "{ctx.role}"; SET LOCAL search_path = "{ctx.schema}";'
        f" SET LOCAL statement_timeout = {_TIMEOUTS[purpose]};"
    )


@asynccontextmanager
async def bare_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection as bare asyncpg, outside any tenant (autocommit until a
    transaction is begun on it; `in_tenant` routes one). Back to the pool at the end."""
    pooled = await engine.raw_connection()
    try:
        raw = pooled.driver_connection
        if not isinstance(raw, RoutedConnection):
            raise TenantRoutingError("tenant sessions need an engine from bpo.core.db.Database")
        raw.pool_info = pooled.info
        yield raw
    finally:
        await greenlet_spawn(pooled.close)  # back to the pool (its reset runs on asyncpg)


@asynccontextmanager
async def in_tenant(
    raw: asyncpg.Connection, ctx: TenantContext, extra: str = "", purpose: Purpose = "api"
) -> AsyncIterator[None]:
    """A transaction on a bare connection as `ctx`'s role with its schema first on the
    search path (and `extra` SET LOCAL lines in the same message as BEGIN); commits when
    the block ends, rolls back if it raises."""
    assert isinstance(raw, RoutedConnection)
    raw.pool_info.setdefault("bpo_tenants", set()).add(ctx.schema)
    raw.tenant_enter = _enter(ctx, purpose) + extra
    try:
        async with raw.transaction():
            yield
    finally:
        raw.leave_tenant()


@asynccontextmanager
async def tenant_connection(
    engine: AsyncEngine, ctx: TenantContext, purpose: Purpose = "api"
) -> AsyncIterator[asyncpg.Connection]:
    """The tenant's transaction on the bare asyncpg connection, for hot reads: SQL naming
    the tenant's tables unqualified, rows as asyncpg records (no ORM, no SQLAlchemy
    compilation). The same role, schema and timeout as `tenant_session`; commits when the
    block ends, rolls back if it raises."""
    async with bare_connection(engine) as raw, in_tenant(raw, ctx, purpose=purpose):
        yield raw


def route_tenants_in_begin(engine: AsyncEngine) -> None:
    """Fail closed: refuse any statement of a tenant session whose transaction did not begin
    with the tenant's SET LOCAL lines (it then rolls back, and nothing it read is returned)."""

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _refuse_unrouted(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        raw = conn.connection.driver_connection
        if getattr(raw, "tenant_enter", None) is not None and not raw.in_routed_transaction:
            raise TenantRoutingError("the tenant role was not in force for this statement")


def recycle_after_tenants(engine: AsyncEngine, limit: int = DEFAULT_TENANTS_PER_CONNECTION) -> None:
    """Close a pooled connection on check-in once it has served `limit` distinct tenants."""

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is None:
            return
        if len(record.info.get("bpo_tenants", ())) >= limit:
            record.invalidate()  # the next checkout opens a fresh backend
