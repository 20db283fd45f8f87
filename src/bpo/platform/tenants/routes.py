"""Provider-admin API over the tenant registry: `/v1/tenants` and `/v1/tenants/{slug}`.

Staff admins only (role `staff_admin`, scope `admin`), for every tenant whatever its status:
resuming a suspended tenant is one of the things it is for.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec.enums import OpenAPIFormat
from litestar.params import BodyKwarg, FromQuery, JSONBody, Parameter, PathParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import PLATFORM_CHAIN
from bpo.core.errors import Problem
from bpo.identity.guards import STAFF_ADMIN, Principal
from bpo.jobs.outbox import enqueue
from bpo.platform.models import Tenant
from bpo.platform.tenants import service
from bpo.platform.tenants.export import export_tenant
from bpo.platform.tenants.jobs import refill_tenant_pool
from bpo.platform.tenants.schemas import TenantCreate, TenantOut, TenantPage

Slug = Annotated[str, PathParameter(min_length=3, max_length=40, description="The tenant's slug")]
GZIP = "application/gzip"
# A Stream documents no body; say it is bytes, so generated clients keep the download.
# (Any: Litestar reads the Annotated form as a type, mypy does not.)
_GZIP_BYTES: Any = Annotated[
    bytes, BodyKwarg(format=OpenAPIFormat.BINARY, schema_extra={"contentMediaType": GZIP})
]
_ARCHIVE = ResponseSpec(
    _GZIP_BYTES,
    media_type=GZIP,
    description="The archive (.tar.gz, data/<table>.csv per table); its SHA-256 is in "
    "Repr-Digest and X-Export-SHA256",
    generate_examples=False,
)


def tenant_out(tenant: Tenant, provisioned_from: str | None = None) -> TenantOut:
    return TenantOut(
        id=str(tenant.id),
        slug=tenant.slug,
        name=tenant.name,
        status=tenant.status,
        schema_name=tenant.schema_name,
        created_at=tenant.created_at,
        updated_at=tenant.updated_at,
        last_export_at=tenant.last_export_at,
        provisioned_from=provisioned_from,
    )


class TenantAdminController(Controller):
    path = "/v1/tenants"
    tags = ["tenants"]
    guards = [STAFF_ADMIN]

    @post(
        "/",
        status_code=201,
        summary="Register a tenant (schema and role included)",
        operation_id="createTenant",
    )
    async def create(
        self,
        data: JSONBody[TenantCreate],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
    ) -> TenantOut:
        created = await service.create_tenant(db_session, data.slug, data.name)
        # It took a warm schema, or found the pool empty: a worker tops the pool up.
        await enqueue(db_session, refill_tenant_pool, tenant=None)
        out = tenant_out(created.tenant, "warm-pool" if created.from_pool else "cold")
        await _audit(db_session, principal, "tenant.created", created.tenant.slug, after=out)
        return out

    @get("/", summary="List tenants", operation_id="listTenants")
    async def list_(
        self,
        db_session: NamedDependency[AsyncSession],
        limit: Annotated[int, Parameter(ge=1, le=100)] = 50,
        cursor: Annotated[str | None, Parameter(max_length=64)] = None,
    ) -> TenantPage:
        tenants, next_cursor = await service.list_tenants(db_session, limit=limit, cursor=cursor)
        return TenantPage(items=[tenant_out(t) for t in tenants], next_cursor=next_cursor)

    @get("/{slug:str}", summary="Show a tenant", operation_id="getTenant")
    async def show(self, slug: Slug, db_session: NamedDependency[AsyncSession]) -> TenantOut:
        return tenant_out(await service.get_tenant(db_session, slug))

    @post(
        "/{slug:str}/suspend",
        status_code=200,
        summary="Suspend: every tenant route answers 403",
        operation_id="suspendTenant",
    )
    async def suspend(
        self,
        slug: Slug,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
    ) -> TenantOut:
        out = tenant_out(await service.set_status(db_session, slug, "suspended"))
        await _audit(db_session, principal, "tenant.suspended", slug, after=out)
        return out

    @post(
        "/{slug:str}/resume",
        status_code=200,
        summary="Resume a suspended tenant",
        operation_id="resumeTenant",
    )
    async def resume(
        self,
        slug: Slug,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
    ) -> TenantOut:
        out = tenant_out(await service.set_status(db_session, slug, "active"))
        await _audit(db_session, principal, "tenant.resumed", slug, after=out)
        return out

    @post(
        "/{slug:str}/export",
        status_code=200,
        summary="Export the tenant's whole data as one archive",
        media_type=GZIP,
        responses={200: _ARCHIVE},
        operation_id="exportTenant",
    )
    async def export(self, slug: Slug, state: State) -> Stream:
        folder = Path(tempfile.mkdtemp(prefix="bpo-export-"))
        try:
            result = await export_tenant(state.db.engine, slug, folder / f"{slug}.tar.gz")
        except BaseException:
            _remove(folder)
            raise
        return Stream(
            _read_then_remove(result.path, folder),
            media_type=GZIP,
            headers={
                "Content-Disposition": f'attachment; filename="{result.path.name}"',
                "Content-Length": str(result.path.stat().st_size),
                "Repr-Digest": _repr_digest(result.sha256),
                "X-Export-SHA256": result.sha256,
            },
        )

    @delete(
        "/{slug:str}",
        status_code=204,
        summary="Delete the tenant and all its data (needs a fresh export unless forced)",
        operation_id="deleteTenant",
    )
    async def delete_(
        self,
        slug: Slug,
        state: State,
        principal: NamedDependency[Principal],
        force: FromQuery[bool] = False,
    ) -> None:
        if not await service.delete_tenant(state.db.engine, slug, force=force):
            raise Problem(404, "not-found", f"no tenant {slug!r}")
        # The deletion commits in steps of its own (schema, role, rows): recorded after.
        async with state.db.sessionmaker.begin() as session:
            await _audit(session, principal, "tenant.deleted", slug, after={"forced": force})


async def _audit(
    session: AsyncSession, principal: Principal, action: str, slug: str, *, after: object
) -> None:
    """Provider admin actions on tenants go to the platform's chain."""
    await audit.record(
        session,
        PLATFORM_CHAIN,
        actor=principal,
        action=action,
        target=f"tenant:{slug}",
        after=after,
    )


def _repr_digest(sha256_hex: str) -> str:
    """RFC 9530 `Repr-Digest` of the archive."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


async def _read_then_remove(path: Path, folder: Path) -> AsyncIterator[bytes]:
    try:
        with path.open("rb") as archive:
            while chunk := archive.read(1 << 16):
                yield chunk
    finally:
        _remove(folder)


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
