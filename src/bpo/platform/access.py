"""The auth layer's side of tenancy: the TenantContext a route's guard granted.

Every `/v1/tenants/{slug}/...` route declares a guard (`bpo.identity.guards.requires`);
the guard checks that the token grants the tenant (404 otherwise, so tenants cannot be
enumerated; 403 for a suspended one) and leaves the context here for the handler.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.tenancy import TenantContext, tenant_session
from bpo.identity.guards import Principal


async def current_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal | None = request.state.get("principal")
    if principal is None:  # a route without a guard asked for the caller: a wiring bug
        raise RuntimeError("this route has no guard (bpo.identity.guards.requires)")
    return principal


async def tenant_context(request: Request[Any, Any, Any]) -> TenantContext:
    tenant = (await current_principal(request)).tenant
    if tenant is None:
        raise RuntimeError("tenant routes need a tenant-bound guard")
    return tenant


async def tenant_db_session(
    tenant: NamedDependency[TenantContext], state: State
) -> AsyncGenerator[AsyncSession, None]:
    """The request's tenant transaction: routed schema, tenant role, API statement timeout."""
    async with tenant_session(state.db.engine, tenant, "api") as session:
        yield session
