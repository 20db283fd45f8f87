"""Filing documents and moving their content, in constant memory both ways.

`POST /documents` takes the metadata as JSON (content follows with `PUT .../content`, the
raw body), or metadata and file together as `multipart/form-data` (parts `metadata` and
`file`, for browsers). Uploads stream to a spool file while hashed; a declared digest
(`Content-Digest`, `Repr-Digest` or `Digest`) that does not match is a 422 with nothing
stored. Downloads re-verify the hash before the first byte, then stream, with the hash as
`ETag`, `Range` requests and `Repr-Digest`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, Response, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from bpo.core.errors import Problem
from bpo.core.idempotency import STREAMED_BODY
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.identity.guards import Principal, requires
from bpo.records import exports, service, transfer
from bpo.records.models import Export
from bpo.records.schemas import DocumentIn, DocumentOut
from bpo.records.storage import Corrupted, Store, content_key, store_for

READ = requires("records:read")
WRITE = requires("records:write")
NO_LIMIT = 1 << 50  # the records limit (a setting) is applied while streaming, not here
MAX_JSON = 64 * 1024
_SAFE_TYPE = "application/octet-stream"


class ContentController(Controller):
    path = "/v1/tenants/{slug:str}/records/documents"
    tags = ["records"]

    @put(
        "/{document_id:uuid}/content",
        guards=[WRITE],
        status_code=201,
        operation_id="storeRecordContent",
        request_max_body_size=NO_LIMIT,
        opt={STREAMED_BODY: True},
        summary="Store the raw body as the document's next version (SHA-256 checked as it streams)",
    )
    async def put_content(
        self,
        document_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        state: State,
        filename: Annotated[str | None, Parameter(max_length=300)] = None,
    ) -> Response[DocumentOut]:
        store, limit = store_for(state.settings), state.settings.records_max_bytes
        _check_length(request, limit)
        wanted = transfer.wanted_digests(request.headers)
        async with tenant_session(state.db.engine, tenant) as session:
            await service.find_document(session, document_id)  # 404 before reading the body
        spooled = await transfer.spool_body(request.stream(), store.spool_dir, limit, wanted)
        declared = request.headers.get("content-type") or _SAFE_TYPE
        out, version = await service.store_version(
            state.db.engine,
            store,
            tenant,
            principal,
            document_id,
            spooled,
            declared,
            _filename(filename),
        )
        headers = {
            "ETag": f'"{version.sha256}"',
            "Repr-Digest": transfer.digest_header(version.sha256),
        }
        return Response(out, status_code=201, headers=headers)

    @get(
        "/{document_id:uuid}/content",
        guards=[READ],
        operation_id="getRecordContent",
        summary="The content (latest version, or ?version=n), verified, with Range support",
        media_type="application/octet-stream",
    )
    async def get_content(
        self,
        document_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        state: State,
        version: Annotated[int | None, Parameter(ge=1, le=1_000_000)] = None,
    ) -> Response[Any]:
        store = store_for(state.settings)
        async with tenant_session(state.db.engine, tenant) as session:
            doc = await service.find_document(session, document_id)
            v = await service.find_version(session, doc, version)
        etag = f'"{v.sha256}"'
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(b"", status_code=304, headers={"ETag": etag})
        fetched = await _verified(state, store, tenant, doc, v)
        span = None
        if_range = request.headers.get("if-range")
        if if_range is None or if_range.strip() == etag:
            try:
                span = transfer.byte_range(request.headers.get("range"), fetched.size)
            except Problem:
                fetched.close()
                raise
        headers = {
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Repr-Digest": transfer.digest_header(v.sha256),
            "Content-Disposition": _disposition(v.filename or doc.title),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Content-Length": str(span.length if span else fetched.size),
        }
        if span is not None:
            headers["Content-Range"] = f"bytes {span.start}-{span.end}/{fetched.size}"
        return Stream(
            transfer.stream_out(fetched, span, v.sha256),
            status_code=206 if span else 200,
            media_type=v.declared_type or _SAFE_TYPE,
            headers=headers,
        )


async def file_document(
    request: Request[Any, Any, Any],
    tenant: NamedDependency[TenantContext],
    principal: NamedDependency[Principal],
    state: State,
) -> Response[DocumentOut]:
    kind = request.headers.get("content-type", "")
    store, limit = store_for(state.settings), state.settings.records_max_bytes
    if kind.split(";")[0].strip().lower() == "multipart/form-data":
        _check_length(request, limit + MAX_JSON)
        upload = await transfer.multipart_upload(request.stream(), kind, store.spool_dir, limit, {})
        assert upload.spooled is not None
        try:
            data = _decode(msgspec.json.encode(transfer.metadata_json(upload)))
            filename = _filename(upload.filename)
        except BaseException:
            upload.spooled.discard()
            raise
        # Filed and stored in one transaction: a refusal leaves no document behind.
        out, _ = await service.store_version(
            state.db.engine,
            store,
            tenant,
            principal,
            data,
            upload.spooled,
            upload.content_type,
            filename,
        )
    elif kind.split(";")[0].strip().lower() in ("application/json", ""):
        _check_length(request, MAX_JSON)
        data = _decode(await _small_body(request))
        async with tenant_session(state.db.engine, tenant) as session:
            doc = await service.file_document(session, tenant, principal, data)
            out = (await service.documents_out(session, [doc]))[0]
    else:
        raise Problem(
            415,
            "unsupported-media-type",
            "send the metadata as application/json, or multipart/form-data",
        )
    location = f"/v1/tenants/{tenant.slug}/records/documents/{out.id}"
    return Response(out, status_code=201, headers={"Location": location})


async def export_archive(state: State, tenant: TenantContext, export_id: uuid.UUID) -> Stream:
    async with tenant_session(state.db.engine, tenant) as session:
        row = await session.get(Export, export_id)
        if row is None:
            raise Problem(404, "not-found", "no such export")
        shown = exports.export_out(row, tenant.slug)
    if shown.status == "expired":
        raise Problem(410, "export-expired", "the export expired: request a new one")
    if shown.status != "ready" or row.sha256 is None:
        raise Problem(409, "conflict", f"the export is {shown.status}, not ready yet")
    store = store_for(state.settings)
    try:
        fetched = await store.fetch(content_key(tenant.tenant_id, row.sha256), None, row.sha256)
    except Corrupted:
        raise Problem(
            500, "record-corrupted", "the export's archive no longer matches its hash"
        ) from None
    headers = {
        "ETag": f'"{row.sha256}"',
        "Repr-Digest": transfer.digest_header(row.sha256),
        "Content-Length": str(fetched.size),
        "Content-Disposition": _disposition(f"records-export-{row.id}.zip"),
    }
    return Stream(
        transfer.stream_out(fetched, None, row.sha256),
        media_type="application/zip",
        headers=headers,
    )


async def _verified(state: State, store: Store, tenant: TenantContext, doc: Any, v: Any) -> Any:
    """The version's content, its hash checked; a mismatch is audited and a 500."""
    if v.content_removed_at is not None:
        raise Problem(404, "not-found", "this version's content was disposed of")
    try:
        return await store.fetch(v.storage_key, v.storage_version, v.sha256)
    except Corrupted as exc:
        async with tenant_session(state.db.engine, tenant) as session:
            await service.record_corruption(session, tenant, doc, v, str(exc))
        raise Problem(
            500,
            "record-corrupted",
            f"version {v.number} of this document no longer matches its SHA-256 {v.sha256};"
            " it is not served, and the firm's audit trail records it",
        ) from None


def _check_length(request: Request[Any, Any, Any], limit: int) -> None:
    """A declared length over the limit is a 413 before a byte is read."""
    raw = request.headers.get("content-length")
    if raw is not None and raw.isdigit() and int(raw) > limit:
        raise Problem(
            413, "payload-too-large", f"the request body exceeds the limit of {limit} bytes"
        )


async def _small_body(request: Request[Any, Any, Any]) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON:
            raise Problem(413, "payload-too-large", f"metadata is limited to {MAX_JSON} bytes")
    return body


def _decode(body: bytes) -> DocumentIn:
    if not body.strip():
        raise Problem(400, "empty-body", "send the document's metadata as a JSON object")
    try:
        return msgspec.json.decode(body, type=DocumentIn)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        pointer = "#" + where.rstrip("`").replace(".", "/").replace("[", "/").replace("]", "")
        raise Problem(
            422,
            "validation-error",
            f"{pointer}: {message}",
            errors=[{"pointer": pointer, "detail": message}],
        ) from None
    except msgspec.DecodeError as exc:
        raise Problem(400, "malformed-request", f"the metadata is not valid JSON: {exc}") from None


def _filename(value: str | None) -> str | None:
    """The client's file name, kept only as a name: no directories, no control characters."""
    if not value:
        return None
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())[:300]
    if name in ("", ".", ".."):
        raise Problem(
            422,
            "validation-error",
            "the file name is not a name",
            errors=[{"pointer": "filename", "detail": "not a file name"}],
        )
    return name


def _disposition(name: str) -> str:
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


route_handlers: list[ControllerRouterHandler] = [ContentController]
