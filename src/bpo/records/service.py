"""Documents and their versions: filing metadata, storing content, reading it back.

A document is filed first (metadata, status `pending`), then gets content: each upload is a
new immutable version (its SHA-256, size, declared and sniffed types), stored under its
hash, the latest being the default. Storing is announced (`record.stored`), audited (ids
and hashes only: no personal data enters the audit chain, so erasure never has to touch
it) and metered (`records_stored`). Other domains file evidence through these functions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import filetype
import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.billing.quotas import reserve_usage
from bpo.core.errors import Problem, invalid
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.jobs.outbox import enqueue
from bpo.records.holds import holds_on
from bpo.records.models import PERMANENT, Document, RecordClass, Version
from bpo.records.retention import class_by_code, retain_until, today
from bpo.records.schemas import DocumentIn, DocumentOut, VersionOut
from bpo.records.storage import Lock, Spooled, Store, content_key
from bpo.webhooks.service import record_events

RECORDS_STORED = "records_stored"
EXTRACT_JOB = "records.extract_text"
PROTECT_JOB = "records.protect"


def version_out(v: Version) -> VersionOut:
    return VersionOut(
        v.number,
        v.sha256,
        v.size,
        v.declared_type,
        v.sniffed_type,
        v.filename,
        v.created_by,
        v.created_at,
        v.content_removed_at,
    )


def document_out(
    d: Document, class_code: str, version: Version | None, held: list[str], rank: float | None
) -> DocumentOut:
    return DocumentOut(
        str(d.id),
        class_code,
        d.title,
        d.type,
        d.counterparty,
        d.document_date,
        d.received_on,
        list(d.tags),
        dict(d.custom_fields),
        list(d.links),
        d.mode,
        None if d.retain_until == PERMANENT else d.retain_until,
        d.status,
        version_out(version) if version else None,
        held,
        d.created_by,
        d.created_at,
        d.disposed_at,
        str(d.certificate_id) if d.certificate_id else None,
        rank,
    )


async def documents_out(
    session: AsyncSession, docs: list[Document], ranks: list[float | None] | None = None
) -> list[DocumentOut]:
    """Many documents shown in three queries (classes, current versions, holds)."""
    if not docs:
        return []
    ids = [d.id for d in docs]
    wanted = {d.class_id for d in docs}
    rows = await session.execute(
        select(RecordClass.id, RecordClass.code).where(RecordClass.id.in_(wanted))
    )
    codes = {r[0]: r[1] for r in rows}
    current = {
        v.document_id: v
        for v in await session.scalars(
            select(Version).where(
                Version.document_id.in_(ids),
                Version.number
                == select(Document.current_version)
                .where(Document.id == Version.document_id)
                .scalar_subquery(),
            )
        )
    }
    held = await holds_on(session, ids)
    ranks = ranks or [None] * len(docs)
    return [
        document_out(d, codes[d.class_id], current.get(d.id), held.get(d.id, []), r)
        for d, r in zip(docs, ranks, strict=True)
    ]


async def file_document(
    session: AsyncSession, tenant: TenantContext, who: Any, data: DocumentIn
) -> Document:
    """File a document's metadata (content follows with `store_version`)."""
    record_class = await class_by_code(session, data.record_class, "#/record_class")
    received = data.received_on or today()
    doc = Document(
        class_id=record_class.id,
        title=data.title,
        type=data.type,
        counterparty=data.counterparty,
        document_date=data.document_date,
        received_on=received,
        tags=list(dict.fromkeys(data.tags)),
        custom_fields=data.custom_fields,
        links=[msgspec.to_builtins(link) for link in data.links],
        mode=record_class.mode,
        retain_until=retain_until(record_class, data.document_date, received),
        created_by=actor_of(who)[:200],
    )
    session.add(doc)
    await session.flush()
    await session.refresh(doc)
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="records.document.filed",
        target=f"records.document:{doc.id}",
        after={"class": record_class.code, "retain_until": doc.retain_until.isoformat()},
    )
    return doc


async def find_document(
    session: AsyncSession, doc_id: uuid.UUID, *, lock: bool = False, disposed: bool = False
) -> Document:
    """The document, or a 404 (also for a disposed one, unless `disposed`)."""
    query = select(Document).where(Document.id == doc_id)
    doc = await session.scalar(query.with_for_update() if lock else query)
    if doc is None or (doc.status == "disposed" and not disposed):
        raise Problem(404, "not-found", "no such document")
    return doc


async def find_version(session: AsyncSession, doc: Document, number: int | None) -> Version:
    wanted = number if number is not None else doc.current_version
    version = await session.get(Version, (doc.id, wanted))
    if version is None:
        what = f"version {number}" if number is not None else "content"
        raise Problem(404, "not-found", f"the document has no {what}")
    return version


def sniff(head: bytes) -> str:
    """The content's type as its first bytes say (the declared type is kept beside it)."""
    kind = filetype.guess(head)
    if kind is not None:
        return str(kind.mime)
    if not head:
        return "application/octet-stream"
    if b"\x00" in head:
        return "application/octet-stream"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return "application/octet-stream"
    return "text/plain"


async def store_version(
    engine: AsyncEngine,
    store: Store,
    tenant: TenantContext,
    who: Any,
    doc_id: uuid.UUID | DocumentIn,
    spooled: Spooled,
    declared_type: str,
    filename: str | None,
) -> tuple[DocumentOut, Version]:
    """Keep `spooled` as the next version of the document `doc_id` (or of a document filed
    now from its metadata), in one transaction. The content goes into the store before the
    version row (by hash: storing the same bytes twice keeps one copy); content that never
    got a row is unreachable and harmless. Returns the document as shown and the version."""
    try:
        async with tenant_session(engine, tenant) as session:
            if isinstance(doc_id, DocumentIn):
                doc = await file_document(session, tenant, who, doc_id)
            else:
                doc = await find_document(session, doc_id, lock=True)
            held = (await holds_on(session, [doc.id])).get(doc.id, [])
            key = content_key(tenant.tenant_id, spooled.sha256)
            stored = await store.put(spooled, key, Lock(doc.mode, doc.retain_until, bool(held)))
            version = Version(
                document_id=doc.id,
                number=doc.current_version + 1,
                sha256=spooled.sha256,
                size=spooled.size,
                declared_type=declared_type[:200],
                sniffed_type=sniff(spooled.head),
                filename=filename,
                storage_key=key,
                storage_version=stored,
                created_by=actor_of(who)[:200],
            )
            session.add(version)
            doc.current_version, doc.status, doc.updated_at = version.number, "active", func.now()
            await session.flush()
            await session.refresh(version)
            await session.refresh(doc)
            await _stored(session, tenant, who, doc, version)
            code = await session.scalar(
                select(RecordClass.code).where(RecordClass.id == doc.class_id)
            )
            return document_out(doc, str(code), version, held, None), version
    finally:
        spooled.discard()  # gone already when the store took it; else not kept


async def _stored(
    session: AsyncSession, tenant: TenantContext, who: Any, doc: Document, v: Version
) -> None:
    target = f"records.document:{doc.id}"
    record = {"version": v.number, "sha256": v.sha256, "size": v.size}
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="records.version.stored",
        target=target,
        after=record,
    )
    await record_events(
        session, tenant, [("record.stored", {"document_id": str(doc.id), **record})]
    )
    key = f"records:{doc.id}:{v.number}"
    await reserve_usage(session, tenant, RECORDS_STORED, 1, key, v.created_at)
    await enqueue(session, EXTRACT_JOB, str(doc.id), v.number, tenant=tenant)


async def versions_of(session: AsyncSession, doc: Document) -> list[Version]:
    return list(
        await session.scalars(
            select(Version).where(Version.document_id == doc.id).order_by(Version.number)
        )
    )


async def record_corruption(
    session: AsyncSession, tenant: TenantContext, doc: Document, v: Version, why: str
) -> None:
    """A stored object that no longer matches its hash: audited and announced."""
    detail = {"version": v.number, "sha256": v.sha256, "found": why[:300]}
    await audit.record(
        session,
        tenant.tenant_id,
        actor="system:records",
        action="records.version.corrupted",
        target=f"records.document:{doc.id}",
        after=detail,
    )
    await record_events(
        session, tenant, [("record.corrupted", {"document_id": str(doc.id), **detail})]
    )


@dataclass(frozen=True)
class Evidence:
    """A document another domain cites as evidence (compliance files it with a filing)."""

    id: str
    record_class: str
    title: str
    version: int
    sha256: str


async def evidence_of(session: AsyncSession, ids: list[str], pointer: str) -> list[Evidence]:
    """The documents `ids`, each with content and kept in compliance mode (nobody can alter
    or delete it before it expires); a 422 naming the first that is not."""
    out = []
    for n, raw in enumerate(ids):
        where = f"{pointer}/{n}"
        try:
            doc = await find_document(session, uuid.UUID(raw))
        except (ValueError, Problem):
            raise invalid(where, f"no document {raw}") from None
        if doc.current_version == 0:
            raise invalid(where, f"document {raw} has no content yet")
        if doc.mode != "compliance":
            raise invalid(
                where, f"document {raw} is kept in {doc.mode} mode; evidence needs a class "
                "in compliance mode"
            )  # fmt: skip
        version = await find_version(session, doc, None)
        code = await session.scalar(select(RecordClass.code).where(RecordClass.id == doc.class_id))
        out.append(Evidence(raw, str(code), doc.title, version.number, version.sha256))
    return out
