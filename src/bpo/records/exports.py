"""Exports for an auditor, and the text that full-text search reads.

An export packs a selection (a class, a date range, a hold) into one zip with a manifest of
every document's hashes; the job writes it a document at a time (each re-verified on the
way in), keeps the archive in the store, and it is downloadable until it expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import tempfile
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.jobs.outbox import enqueue
from bpo.records.holds import in_scope
from bpo.records.models import Document, Export, Hold, RecordClass, Version
from bpo.records.retention import class_by_code
from bpo.records.schemas import ExportIn, ExportOut
from bpo.records.storage import Corrupted, Spooled, Store, content_key, hash_file
from bpo.webhooks.service import record_events

EXPORT_JOB = "records.build_export"
MAX_TEXT = 200_000  # characters of extracted text kept for search, per document
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/csv")


def export_out(e: Export, slug: str) -> ExportOut:
    ready = e.status == "ready" and e.expires_at is not None and e.expires_at > datetime.now(UTC)
    status = "expired" if e.status == "ready" and not ready else e.status
    link = f"/v1/tenants/{slug}/records/exports/{e.id}/archive" if ready else None
    return ExportOut(
        str(e.id),
        status,
        e.selection,
        e.documents,
        e.size,
        e.sha256,
        e.expires_at,
        e.error,
        e.created_at,
        link,
    )


async def start(session: AsyncSession, tenant: TenantContext, who: Any, data: ExportIn) -> Export:
    selection: dict[str, Any] = {}
    if data.record_class:
        selection["record_class"] = (
            await class_by_code(session, data.record_class, "#/record_class")
        ).code
    if data.hold:
        hold = await _hold(session, data.hold)
        selection["hold"] = str(hold.id)
    if data.date_from and data.date_to and data.date_from > data.date_to:
        raise Problem(
            422,
            "validation-error",
            "date_from is after date_to",
            errors=[{"pointer": "#/date_from", "detail": "after date_to"}],
        )
    for name in ("date_from", "date_to"):
        if getattr(data, name):
            selection[name] = getattr(data, name).isoformat()
    row = Export(selection=selection, created_by=actor_of(who)[:200])
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="records.export.requested",
        target=f"records.export:{row.id}",
        after=selection,
    )
    await enqueue(session, EXPORT_JOB, str(row.id), tenant=tenant)
    return row


async def _hold(session: AsyncSession, value: str) -> Hold:
    try:
        hold = await session.get(Hold, uuid.UUID(value))
    except ValueError:
        hold = None
    if hold is None:
        raise Problem(
            422,
            "validation-error",
            "no such hold",
            errors=[{"pointer": "#/hold", "detail": "no such hold"}],
        )
    return hold


async def _selected(session: AsyncSession, selection: dict[str, Any]) -> list[Document]:
    query = select(Document).where(Document.status == "active").order_by(Document.id)
    if "record_class" in selection:
        query = query.join(RecordClass, RecordClass.id == Document.class_id).where(
            RecordClass.code == selection["record_class"]
        )
    if "hold" in selection:
        query = query.where(Document.id.in_(await in_scope(session, uuid.UUID(selection["hold"]))))
    if "date_from" in selection:
        query = query.where(Document.document_date >= selection["date_from"])
    if "date_to" in selection:
        query = query.where(Document.document_date <= selection["date_to"])
    return list(await session.scalars(query))


async def build(
    engine: AsyncEngine, store: Store, tenant: TenantContext, export_id: uuid.UUID, hours: int
) -> None:
    """The export job: the archive, its manifest, its hash; `ready` until it expires."""
    async with tenant_session(engine, tenant, "worker") as session:
        row = await session.get(Export, export_id)
        if row is None or row.status not in ("queued", "running"):
            return
        row.status = "running"
        docs = await _selected(session, row.selection)
        versions = {
            v.document_id: v
            for v in await session.scalars(
                select(Version).where(
                    Version.document_id.in_([d.id for d in docs]),
                    Version.number
                    == select(Document.current_version)
                    .where(Document.id == Version.document_id)
                    .scalar_subquery(),
                )
            )
        }
        rows = await session.execute(select(RecordClass.id, RecordClass.code))
        codes = {r[0]: r[1] for r in rows}
    path = Path(tempfile.mkstemp(dir=_made(store.spool_dir), prefix=".export-")[1])
    try:
        manifest = await _pack(store, path, docs, versions, codes)
    except Corrupted as exc:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        await _finish(engine, tenant, export_id, error=f"a document failed its check: {exc}")
        return
    sha = await asyncio.to_thread(hash_file, path)
    size = await asyncio.to_thread(os.path.getsize, path)
    await store.put(Spooled(path, sha, size), content_key(tenant.tenant_id, sha), None)
    expires = datetime.now(UTC) + timedelta(hours=hours)
    await _finish(
        engine, tenant, export_id, sha=sha, size=size, count=len(manifest), expires=expires
    )


async def _pack(
    store: Store,
    path: Path,
    docs: list[Document],
    versions: dict[uuid.UUID, Version],
    codes: dict[Any, str],
) -> list[Any]:
    manifest = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for d in docs:
            v = versions.get(d.id)
            if v is None:
                continue
            name = f"documents/{d.id}/v{v.number}"
            fetched = await store.fetch(v.storage_key, v.storage_version, v.sha256)
            try:
                archive.write(fetched.path, name)
            finally:
                fetched.close()
            manifest.append(
                {
                    "id": str(d.id),
                    "record_class": codes.get(d.class_id),
                    "title": d.title,
                    "type": d.type,
                    "counterparty": d.counterparty,
                    "document_date": d.document_date.isoformat(),
                    "version": v.number,
                    "filename": v.filename,
                    "content_type": v.declared_type,
                    "path": name,
                    "sha256": v.sha256,
                    "size": v.size,
                    "retain_until": d.retain_until.isoformat(),
                }
            )
        body = json.dumps(
            {"documents": manifest, "created_at": datetime.now(UTC).isoformat()}, indent=1
        )
        archive.writestr("manifest.json", body)
        digest = hashlib.sha256(body.encode()).hexdigest()
        archive.writestr("manifest.json.sha256", f"{digest}  manifest.json\n")
    return manifest


async def _finish(
    engine: AsyncEngine,
    tenant: TenantContext,
    export_id: uuid.UUID,
    *,
    error: str | None = None,
    sha: str | None = None,
    size: int = 0,
    count: int = 0,
    expires: datetime | None = None,
) -> None:
    async with tenant_session(engine, tenant, "worker") as session:
        row = await session.get(Export, export_id)
        if row is None:
            return
        row.status = "failed" if error else "ready"
        row.error, row.sha256, row.size, row.documents = error, sha, size, count
        row.expires_at = expires
        event = "record.export.failed" if error else "record.export.ready"
        await record_events(
            session, tenant, [(event, {"export_id": str(export_id), "documents": count})]
        )


async def expired(session: AsyncSession) -> list[Export]:
    """Ready exports past their time (the sweep marks them and removes the archive)."""
    return list(
        await session.scalars(
            select(Export).where(Export.status == "ready", Export.expires_at < func.now())
        )
    )


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def extract_text(path: Path, declared: str, sniffed: str) -> str:
    """Searchable text: plain text as is, PDF text via pypdf; other types none."""
    if sniffed == "application/pdf":
        return _pdf_text(path)
    if sniffed == "text/plain" or declared.startswith(TEXT_TYPES):
        with path.open("rb") as f:
            return f.read(MAX_TEXT * 4).decode("utf-8", "replace")[:MAX_TEXT].replace("\x00", "")
    return ""


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    out = io.StringIO()
    try:
        reader = PdfReader(str(path), strict=False)
        for page in reader.pages:
            out.write(page.extract_text() or "")
            out.write("\n")
            if out.tell() > MAX_TEXT:
                break
    except (PyPdfError, ValueError, KeyError, TypeError, OSError):
        pass  # a broken PDF is kept and served; it is only not searchable by its text
    return out.getvalue()[:MAX_TEXT].replace("\x00", "")
