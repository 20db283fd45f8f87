"""Record-keeping APIs under /v1/tenants/{slug}/records: documents and their content
(`content_routes`), classes, holds, erasure requests and exports.

API clients need `records:read` / `records:write`; a firm's members and the provider's staff
assigned to it work through the same routes. Classes, holds and erasure requests are for
the firm's admins (and staff admins); a governance-mode early deletion for a provider
admin (`staff_admin`) with a reason.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.idempotency import STREAMED_BODY
from bpo.core.pagination import uuid_cursor
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.identity.guards import TENANT_ADMINS, Principal, requires
from bpo.jobs.outbox import enqueue
from bpo.records import content_routes, disposal, exports, holds, retention, search, service
from bpo.records.models import Erasure, Export, Hold, RecordClass
from bpo.records.schemas import (
    ClassIn,
    ClassOut,
    ClassPage,
    ClassUpdate,
    DocumentOut,
    DocumentPage,
    ErasureIn,
    ErasureOut,
    ExportIn,
    ExportOut,
    HoldIn,
    HoldOut,
    HoldPage,
    ReleaseIn,
    VersionPage,
)
from bpo.records.storage import store_for

READ = requires("records:read")
WRITE = requires("records:write")
ADMIN = requires("records:write", roles=TENANT_ADMINS)
MAX_PAGE = 200
Page = Annotated[int, Parameter(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Parameter(max_length=300)]
Short = Annotated[str | None, Parameter(max_length=300)]


class DocumentsController(Controller):
    path = "/v1/tenants/{slug:str}/records"
    tags = ["records"]

    @get(
        "/documents",
        guards=[READ],
        operation_id="listRecordDocuments",
        summary="Find documents: filters on every metadata field, `q=` full text (ranked)",
    )
    async def list_documents(
        self,
        tenant_db: NamedDependency[AsyncSession],
        q: Annotated[str | None, Parameter(max_length=500)] = None,
        record_class: Short = None,
        type: Short = None,
        counterparty: Short = None,
        title: Short = None,
        tag: Annotated[list[str] | None, Parameter(max_items=20)] = None,
        link: Short = None,
        field: Annotated[list[str] | None, Parameter(max_items=20)] = None,
        date_from: FromQuery[date | None] = None,
        date_to: FromQuery[date | None] = None,
        received_from: FromQuery[date | None] = None,
        received_to: FromQuery[date | None] = None,
        status: Annotated[str | None, Parameter(pattern="^(pending|active|disposed)$")] = None,
        held: FromQuery[bool | None] = None,
        sha256: Annotated[str | None, Parameter(pattern="^[0-9a-fA-F]{64}$")] = None,
        cursor: Cursor = None,
        limit: Page = 50,
    ) -> DocumentPage:
        filters = search.Filters(
            q=q,
            record_class=record_class,
            type=type,
            counterparty=counterparty,
            title=title,
            tags=tag or [],
            link=link,
            fields=field or [],
            date_from=date_from,
            date_to=date_to,
            received_from=received_from,
            received_to=received_to,
            status=status,
            held=held,
            sha256=sha256,
        )
        docs, ranks, next_cursor = await search.find(tenant_db, filters, limit, cursor)
        return DocumentPage(await service.documents_out(tenant_db, docs, ranks), next_cursor)

    @post(
        "/documents",
        guards=[WRITE],
        status_code=201,
        operation_id="fileRecordDocument",
        request_max_body_size=content_routes.NO_LIMIT,
        opt={STREAMED_BODY: True},
        summary="File a document: metadata as JSON, or metadata and file as multipart",
    )
    async def file_document(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        state: State,
    ) -> Response[DocumentOut]:
        """Metadata as JSON (content follows with `PUT .../content`), or `multipart/form-data`
        with a `metadata` part (the same JSON) and a `file` part."""
        return await content_routes.file_document(request, tenant, principal, state)

    @get(
        "/documents/{document_id:uuid}",
        guards=[READ],
        operation_id="getRecordDocument",
        summary="A document: metadata, current version, retention and the holds on it",
    )
    async def get_document(
        self,
        document_id: FromPath[uuid.UUID],
        tenant_db: NamedDependency[AsyncSession],
        include_disposed: FromQuery[bool] = False,
    ) -> DocumentOut:
        doc = await service.find_document(tenant_db, document_id, disposed=include_disposed)
        return (await service.documents_out(tenant_db, [doc]))[0]

    @get(
        "/documents/{document_id:uuid}/versions",
        guards=[READ],
        operation_id="listRecordVersions",
        summary="Every version of a document, oldest first",
    )
    async def versions(
        self, document_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> VersionPage:
        doc = await service.find_document(tenant_db, document_id)
        return VersionPage(
            [service.version_out(v) for v in await service.versions_of(tenant_db, doc)]
        )

    @delete(
        "/documents/{document_id:uuid}",
        guards=[WRITE],
        status_code=200,
        operation_id="disposeRecordDocument",
        summary="Dispose of a document whose retention ended (409 naming what keeps it)",
    )
    async def dispose(
        self,
        document_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        state: State,
        reason: Annotated[str, Parameter(max_length=2_000)] = "",
    ) -> DocumentOut:
        """In governance mode a provider admin may dispose early, giving a `reason`."""
        store = store_for(state.settings)
        override = principal.role == "staff_admin" and bool(reason.strip())
        async with tenant_session(state.db.engine, tenant) as session:
            doc = await service.find_document(session, document_id, lock=True)
            held = (await holds.holds_on(session, [doc.id])).get(doc.id, [])
            blocked = disposal.blocks(doc, held, override=override)
            if blocked is not None:
                raise disposal.refusal(blocked)
            why = reason.strip() or "deleted on request"
            _, blobs = await disposal.dispose(
                session, store, tenant, principal, [doc], why, override=override
            )
        await disposal.purge(store, blobs, bypass=override)
        async with tenant_session(state.db.engine, tenant) as session:
            doc = await service.find_document(session, document_id, disposed=True)
            return (await service.documents_out(session, [doc]))[0]


class ClassesController(Controller):
    path = "/v1/tenants/{slug:str}/records/classes"
    tags = ["records"]

    @get(
        "/",
        guards=[READ],
        operation_id="listRecordClasses",
        summary="Record classes and their retention rules",
    )
    async def list_classes(
        self, tenant_db: NamedDependency[AsyncSession], cursor: Cursor = None, limit: Page = 100
    ) -> ClassPage:
        query = select(RecordClass).order_by(RecordClass.code).limit(limit + 1)
        if cursor:
            query = query.where(RecordClass.code > cursor)
        rows = list(await tenant_db.scalars(query))
        more = len(rows) > limit
        return ClassPage(
            [retention.class_out(c) for c in rows[:limit]], rows[limit - 1].code if more else None
        )

    @post(
        "/",
        guards=[ADMIN],
        status_code=201,
        operation_id="createRecordClass",
        summary="A record class: retention years after an anchor (or permanent), and a mode",
    )
    async def create_class(
        self,
        data: JSONBody[ClassIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[ClassOut]:
        row = await retention.create_class(tenant_db, tenant.tenant_id, principal, data)
        location = f"/v1/tenants/{tenant.slug}/records/classes/{row.code}"
        return Response(retention.class_out(row), status_code=201, headers={"Location": location})

    @get("/{code:str}", guards=[READ], operation_id="getRecordClass", summary="A record class")
    async def get_class(
        self, code: FromPath[str], tenant_db: NamedDependency[AsyncSession]
    ) -> ClassOut:
        row = await tenant_db.scalar(select(RecordClass).where(RecordClass.code == code))
        if row is None:
            raise Problem(404, "not-found", "no such record class")
        return retention.class_out(row)

    @post(
        "/{code:str}/retention",
        guards=[ADMIN],
        status_code=200,
        operation_id="changeRecordRetention",
        summary="Change a class's rule: extend it, or (governance mode, provider admin) shorten it",
    )
    async def change(
        self,
        code: FromPath[str],
        data: JSONBody[ClassUpdate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> ClassOut:
        row = await tenant_db.scalar(
            select(RecordClass).where(RecordClass.code == code).with_for_update()
        )
        if row is None:
            raise Problem(404, "not-found", "no such record class")
        changed = await retention.change_class(tenant_db, tenant.tenant_id, principal, row, data)
        if changed:
            await enqueue(tenant_db, service.PROTECT_JOB, [str(i) for i in changed], tenant=tenant)
        return retention.class_out(row)


class HoldsController(Controller):
    path = "/v1/tenants/{slug:str}/records/holds"
    tags = ["records"]

    @get("/", guards=[READ], operation_id="listRecordHolds", summary="Legal holds, newest first")
    async def list_holds(
        self,
        tenant_db: NamedDependency[AsyncSession],
        open_only: FromQuery[bool] = False,
        cursor: Cursor = None,
        limit: Page = 100,
    ) -> HoldPage:
        query = select(Hold).order_by(Hold.id.desc()).limit(limit + 1)
        if open_only:
            query = query.where(Hold.released_at.is_(None))
        if cursor:
            query = query.where(Hold.id < uuid_cursor(cursor))
        rows = list(await tenant_db.scalars(query))
        more, rows = len(rows) > limit, rows[:limit]
        codes = await holds.class_codes(tenant_db, rows)
        items = [holds.hold_out(h, codes.get(h.class_id) if h.class_id else None) for h in rows]
        return HoldPage(items, str(rows[-1].id) if more else None)

    @post(
        "/",
        guards=[ADMIN],
        status_code=201,
        operation_id="placeRecordHold",
        summary="Place a legal hold on documents, a counterparty, a class or a date range",
    )
    async def place(
        self,
        data: JSONBody[HoldIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[HoldOut]:
        hold = await holds.place(tenant_db, tenant.tenant_id, principal, data)
        await _protect_scope(tenant_db, tenant, hold.id)
        codes = await holds.class_codes(tenant_db, [hold])
        location = f"/v1/tenants/{tenant.slug}/records/holds/{hold.id}"
        out = holds.hold_out(hold, codes.get(hold.class_id) if hold.class_id else None)
        return Response(out, status_code=201, headers={"Location": location})

    @get("/{hold_id:uuid}", guards=[READ], operation_id="getRecordHold", summary="A legal hold")
    async def get_hold(
        self, hold_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> HoldOut:
        hold = await tenant_db.get(Hold, hold_id)
        if hold is None:
            raise Problem(404, "not-found", "no such hold")
        codes = await holds.class_codes(tenant_db, [hold])
        return holds.hold_out(hold, codes.get(hold.class_id) if hold.class_id else None)

    @post(
        "/{hold_id:uuid}/release",
        guards=[ADMIN],
        status_code=200,
        operation_id="releaseRecordHold",
        summary="Release a legal hold (once, with a reason)",
    )
    async def release(
        self,
        hold_id: FromPath[uuid.UUID],
        data: JSONBody[ReleaseIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> HoldOut:
        scope = await holds.in_scope(tenant_db, hold_id)
        hold = await holds.release(tenant_db, tenant.tenant_id, principal, hold_id, data.reason)
        if scope:
            await enqueue(tenant_db, service.PROTECT_JOB, [str(i) for i in scope], tenant=tenant)
        codes = await holds.class_codes(tenant_db, [hold])
        return holds.hold_out(hold, codes.get(hold.class_id) if hold.class_id else None)


async def _protect_scope(session: AsyncSession, tenant: TenantContext, hold_id: uuid.UUID) -> None:
    scope = await holds.in_scope(session, hold_id)
    if scope:
        await enqueue(session, service.PROTECT_JOB, [str(i) for i in scope], tenant=tenant)


class ErasuresController(Controller):
    path = "/v1/tenants/{slug:str}/records/erasures"
    tags = ["records"]

    @post(
        "/",
        guards=[ADMIN],
        status_code=201,
        operation_id="requestRecordErasure",
        summary="Erase a person's records where no retention or hold keeps them",
    )
    async def request_erasure(
        self,
        data: JSONBody[ErasureIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        state: State,
    ) -> Response[ErasureOut]:
        """Refused whole (409 naming each hold or retain-until date) when nothing could be
        erased; otherwise 201, listing what was erased and what was kept and why. The
        request is kept either way."""
        store = store_for(state.settings)
        async with tenant_session(state.db.engine, tenant) as session:
            row, blobs = await disposal.erase(session, store, tenant, principal, data)
            out = disposal.erasure_out(row)
        await disposal.purge(store, blobs)
        if out.status == "refused":
            first = out.blocked[0]
            problem = disposal.refusal(first)
            problem.extensions.update(
                erasure_id=out.id, blocked=[disposal.blocked_record(b) for b in out.blocked]
            )
            raise problem
        location = f"/v1/tenants/{tenant.slug}/records/erasures/{out.id}"
        return Response(out, status_code=201, headers={"Location": location})

    @get(
        "/{erasure_id:uuid}",
        guards=[ADMIN],
        operation_id="getRecordErasure",
        summary="An erasure request and its outcome",
    )
    async def get_erasure(
        self, erasure_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> ErasureOut:
        row = await tenant_db.get(Erasure, erasure_id)
        if row is None:
            raise Problem(404, "not-found", "no such erasure request")
        return disposal.erasure_out(row)


class ExportsController(Controller):
    path = "/v1/tenants/{slug:str}/records/exports"
    tags = ["records"]

    @post(
        "/",
        guards=[WRITE],
        status_code=202,
        operation_id="startRecordExport",
        summary="Pack a selection (class, date range, hold) into an archive with a manifest",
    )
    async def start(
        self,
        data: JSONBody[ExportIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[ExportOut]:
        row = await exports.start(tenant_db, tenant, principal, data)
        location = f"/v1/tenants/{tenant.slug}/records/exports/{row.id}"
        return Response(
            exports.export_out(row, tenant.slug), status_code=202, headers={"Location": location}
        )

    @get(
        "/{export_id:uuid}",
        guards=[READ],
        operation_id="getRecordExport",
        summary="An export's state; its archive's link while it lasts",
    )
    async def show(
        self,
        export_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        tenant_db: NamedDependency[AsyncSession],
    ) -> ExportOut:
        row = await tenant_db.get(Export, export_id)
        if row is None:
            raise Problem(404, "not-found", "no such export")
        return exports.export_out(row, tenant.slug)

    @get(
        "/{export_id:uuid}/archive",
        guards=[READ],
        operation_id="downloadRecordExport",
        summary="The export's archive (zip with manifest.json), verified, until it expires",
        media_type="application/octet-stream",
    )
    async def archive(
        self,
        export_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        state: State,
    ) -> Response[Any]:
        return await content_routes.export_archive(state, tenant, export_id)


route_handlers: list[ControllerRouterHandler] = [
    DocumentsController,
    ClassesController,
    HoldsController,
    ErasuresController,
    ExportsController,
    *content_routes.route_handlers,
]
