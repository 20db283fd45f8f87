"""How a transaction finds its tenant: schema routing plus a database role per tenant.

Tenant tables are declared against the placeholder schema `tenant`. A tenant transaction
maps it to `tenant_<id hex>` with `schema_translate_map` and, first thing, switches to the
tenant's own role with `set_config('role', …, true)` (= SET LOCAL ROLE) and sets a
transaction-local `statement_timeout`. Both end with the transaction, so nothing reaches the
pool. The role is what isolates: it holds privileges on its schema only, so even raw SQL
naming another tenant's schema is refused by PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bpo.core.models import TENANT_PLACEHOLDER

TENANT_SCHEMA_RE = re.compile(r"^tenant_[0-9a-f]{32}$")
TENANTS_GROUP_ROLE = (
    "bpo_tenants"  # every tenant role is a member; later issues grant it narrow rights
)
STATEMENT_TIMEOUT_MS = {"api": 15_000, "worker": 120_000}
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
# SET LOCAL ROLE and SET LOCAL statement_timeout in one round trip.
_ENTER_TENANT = text(
    "SELECT set_config('role', :role, true), set_config('statement_timeout', :ms, true)"
)


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
    """A session inside one transaction routed to `ctx`'s schema, as `ctx`'s role.

    Commits when the block ends, rolls back if it raises.
    """
    async with AsyncSession(engine, expire_on_commit=False) as session:
        conn = await session.connection(
            execution_options={"schema_translate_map": {TENANT_PLACEHOLDER: ctx.schema}}
        )
        conn.sync_connection.info.setdefault("bpo_tenants", set()).add(ctx.schema)  # type: ignore[union-attr]
        await session.execute(
            text(
                "SELECT set_config('role', :role, true), set_config('statement_timeout', :ms, true)"
            ),
            {"role": ctx.role, "ms": str(STATEMENT_TIMEOUT_MS[purpose])},
        )
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


def recycle_after_tenants(engine: AsyncEngine, limit: int = DEFAULT_TENANTS_PER_CONNECTION) -> None:
    """Close a pooled connection on check-in once it has served `limit` distinct tenants."""

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is None:
            return
        if len(record.info.get("bpo_tenants", ())) >= limit:
            record.invalidate()  # the next checkout opens a fresh backend
