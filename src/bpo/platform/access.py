"""The auth layer's side of tenancy: who may act for which tenant, as a TenantContext.

`tenant_context` is the dependency every `/v1/tenants/{slug}/...` route takes. Today it
checks the tenant's existence and status; the OAuth issue adds "the token grants this
tenant" here, with the same answers: 404 for a tenant the caller may not see (so tenants
cannot be enumerated), 403 for a suspended one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext, issue_tenant_context, tenant_session
from bpo.platform.models import Tenant


async def tenant_context(slug: FromPath[str], state: State) -> TenantContext:
    async with state.db.sessionmaker() as session:
        row = (
            await session.execute(select(Tenant.id, Tenant.status).where(Tenant.slug == slug))
        ).first()
    if row is None or row.status == "deleting":
        raise Problem(404, "not-found", f"no tenant {slug!r}")
    if row.status == "suspended":
        raise Problem(
            403,
            "tenant-suspended",
            f"tenant {slug!r} is suspended; contact the provider",
            title="The tenant is suspended",
        )
    return issue_tenant_context(row.id, slug)


async def tenant_db_session(
    tenant: NamedDependency[TenantContext], state: State
) -> AsyncGenerator[AsyncSession, None]:
    """The request's tenant transaction: routed schema, tenant role, API statement timeout."""
    async with tenant_session(state.db.engine, tenant, "api") as session:
        yield session
