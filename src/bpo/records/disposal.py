"""Disposal and erasure: a document's content deleted once nothing keeps it, its metadata
and hashes kept, and a destruction certificate issued (a record itself, kept permanently
in compliance mode).

What keeps a document: an open legal hold covering it (`legal-hold`), or its retention
(`retention-active`, until its retain-until date has passed). In governance mode a provider
admin may dispose early, with a reason (audited); compliance mode and holds yield to nobody.
An erasure request (GDPR art. 17) disposes of and redacts a person's documents where
nothing keeps them, and names what keeps the rest (art. 17(3)(b)).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import structlog
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext
from bpo.records.holds import holds_on
from bpo.records.models import PERMANENT, Document, Erasure, RecordClass, Version
from bpo.records.retention import today
from bpo.records.schemas import Blocked, ErasureIn, ErasureOut
from bpo.records.storage import Lock, Spooled, Store, StoreRefused, content_key
from bpo.webhooks.service import record_events

log = structlog.get_logger("bpo.records")
CERTIFICATES = "destruction-certificates"  # the class certificates are kept in
ERASED = "[erased]"


@dataclass(slots=True)
class Blob:
    """Stored content no version needs any longer (removed from the store after commit)."""

    key: str
    version: str | None


def blocks(doc: Document, held: list[str], *, override: bool) -> Blocked | None:
    """What keeps `doc` from disposal now, if anything."""
    if held:
        return Blocked(str(doc.id), "legal-hold", hold=held[0])
    retained = doc.status == "active" and doc.retain_until >= today()
    if retained and not (override and doc.mode == "governance"):
        until = None if doc.retain_until == PERMANENT else doc.retain_until
        return Blocked(str(doc.id), "retention-active", retain_until=until)
    return None


def refusal(blocked: Blocked) -> Problem:
    if blocked.reason == "legal-hold":
        return Problem(
            409,
            "legal-hold",
            f"the document is under the legal hold {blocked.hold!r}",
            hold=blocked.hold,
        )
    until = blocked.retain_until.isoformat() if blocked.retain_until else "permanently"
    return Problem(
        409, "retention-active", f"the document is retained until {until}", retain_until=until
    )


async def dispose(
    session: AsyncSession,
    store: Store,
    tenant: TenantContext,
    who: Any,
    docs: list[Document],
    reason: str,
    *,
    override: bool = False,
    redact: bool = False,
) -> tuple[Document, list[Blob]]:
    """Dispose of `docs` (checked: nothing keeps them) under one destruction certificate.
    Returns the certificate and the content to remove from the store once this commits."""
    if override:
        await session.execute(text("SET LOCAL bpo.records_override = 'governance'"))
    ids = [d.id for d in docs]
    versions = list(
        await session.scalars(
            select(Version).where(Version.document_id.in_(ids)).order_by(Version.number)
        )
    )
    certificate = await _certificate(session, store, tenant, who, docs, versions, reason)
    values: dict[str, Any] = {
        "status": "disposed",
        "disposed_at": func.now(),
        "disposal_reason": reason[:2000],
        "certificate_id": certificate.id,
        "updated_at": func.now(),
    }
    if redact:
        values |= _REDACTED
    await session.execute(update(Document).where(Document.id.in_(ids)).values(**values))
    await session.execute(
        update(Version)
        .where(Version.document_id.in_(ids), Version.content_removed_at.is_(None))
        .values(content_removed_at=func.now())
    )
    blobs = await _unneeded(session, versions)
    action = "records.document.erased" if redact else "records.document.disposed"
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action=action,
        target=f"records.certificate:{certificate.id}",
        after={"documents": [str(i) for i in ids], "override": override, "reason": reason[:500]},
    )
    await record_events(
        session,
        tenant,
        [
            ("record.disposed", {"document_id": str(i), "certificate_id": str(certificate.id)})
            for i in ids
        ],
    )
    return certificate, blobs


_REDACTED: dict[str, Any] = {
    "title": ERASED,
    "counterparty": None,
    "custom_fields": {},
    "extracted_text": "",
    "tags": [],
    "redacted": True,
}


async def _unneeded(session: AsyncSession, versions: list[Version]) -> list[Blob]:
    """Content of `versions` that no version still holding content shares."""
    hashes = {v.sha256 for v in versions}
    still = set(
        await session.scalars(
            select(Version.sha256).where(
                Version.sha256.in_(hashes), Version.content_removed_at.is_(None)
            )
        )
    )
    seen: dict[str, Blob] = {}
    for v in versions:
        if v.sha256 not in still:
            seen.setdefault(v.storage_key, Blob(v.storage_key, v.storage_version))
    return list(seen.values())


async def purge(store: Store, blobs: list[Blob], *, bypass: bool = False) -> int:
    """Delete disposed content from the store (after the disposal committed)."""
    removed = 0
    for blob in blobs:
        try:
            await store.remove(blob.key, blob.version, bypass=bypass)
            removed += 1
        except StoreRefused as exc:  # the store's own lock outlives the database's rule
            log.warning("records_purge_refused", key=blob.key, error=str(exc)[:300])
    return removed


async def _certificate_class(session: AsyncSession) -> RecordClass:
    found = await session.scalar(select(RecordClass).where(RecordClass.code == CERTIFICATES))
    if found is not None:
        return found
    row = RecordClass(
        code=CERTIFICATES,
        name="Destruction certificates",
        mode="compliance",
        retention_years=None,
        created_by="system:records",
        description="Issued by bpo for every disposal: what was destroyed, when, why, by whom.",
    )
    session.add(row)
    await session.flush()
    return row


async def _certificate(
    session: AsyncSession,
    store: Store,
    tenant: TenantContext,
    who: Any,
    docs: list[Document],
    versions: list[Version],
    reason: str,
) -> Document:
    """The destruction certificate: which documents (ids, classes, dates, hashes, sizes;
    no titles or names), when, why and by whom; stored and kept like any record."""
    cls = await _certificate_class(session)
    codes = {r[0]: r[1] for r in await session.execute(select(RecordClass.id, RecordClass.code))}
    cert_id, now = uuid.uuid4(), (await session.scalar(select(func.now())))
    by_doc: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for v in versions:
        by_doc.setdefault(v.document_id, []).append(
            {"number": v.number, "sha256": v.sha256, "size": v.size}
        )
    body = json.dumps(
        {
            "certificate": str(cert_id),
            "issued_at": now.isoformat() if now else None,
            "disposed_by": actor_of(who),
            "reason": reason,
            "documents": [
                {
                    "id": str(d.id),
                    "record_class": codes.get(d.class_id),
                    "mode": d.mode,
                    "document_date": d.document_date.isoformat(),
                    "retain_until": d.retain_until.isoformat(),
                    "versions": by_doc.get(d.id, []),
                }
                for d in docs
            ],
        },
        indent=1,
    ).encode()
    spooled = _spool_bytes(store.spool_dir, body)
    key = content_key(tenant.tenant_id, spooled.sha256)
    stored = await store.put(spooled, key, Lock("compliance", PERMANENT))
    day = today()
    cert = Document(
        id=cert_id,
        class_id=cls.id,
        title=f"Destruction certificate {day.isoformat()}",
        type="destruction-certificate",
        document_date=day,
        received_on=day,
        mode="compliance",
        retain_until=PERMANENT,
        status="active",
        current_version=1,
        tags=["disposal"],
        custom_fields={"documents": len(docs)},
        created_by="system:records",
    )
    session.add(cert)
    await session.flush()
    session.add(
        Version(
            document_id=cert.id,
            number=1,
            sha256=spooled.sha256,
            size=len(body),
            declared_type="application/json",
            sniffed_type="application/json",
            filename=f"destruction-certificate-{cert_id}.json",
            storage_key=key,
            storage_version=stored,
            created_by="system:records",
        )
    )
    await session.flush()
    return cert


def _spool_bytes(into: Path, body: bytes) -> Spooled:
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=into, prefix=".cert-", delete=False) as f:
        f.write(body)
    return Spooled(Path(f.name), hashlib.sha256(body).hexdigest(), len(body), body[:8192])


async def erase(
    session: AsyncSession, store: Store, tenant: TenantContext, who: Any, data: ErasureIn
) -> tuple[Erasure, list[Blob]]:
    """Carry out an erasure request where nothing keeps the person's documents."""
    docs = await _of_person(session, data)
    held = await holds_on(session, [d.id for d in docs])
    blocked = [b for d in docs if (b := blocks(d, held.get(d.id, []), override=False))]
    kept = {b.document_id for b in blocked}
    free = [d for d in docs if str(d.id) not in kept]
    blobs: list[Blob] = []
    erasure_id = uuid.uuid4()
    live = [d for d in free if d.status != "disposed"]
    if live:
        _, blobs = await dispose(
            session, store, tenant, who, live, f"erasure request {erasure_id}", redact=True
        )
    gone = [d.id for d in free if d.status == "disposed"]
    if gone:
        await session.execute(update(Document).where(Document.id.in_(gone)).values(**_REDACTED))
    status = (
        "nothing" if not docs else "refused" if not free else "partial" if blocked else "completed"
    )
    row = Erasure(
        id=erasure_id,
        status=status,
        erased=[str(d.id) for d in free],
        blocked=[blocked_record(b) for b in blocked],
        requested_by=actor_of(who)[:200],
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="records.erasure." + status,
        target=f"records.erasure:{row.id}",
        after={"person": _person_digest(data), "erased": len(free), "blocked": len(blocked)},
    )
    await record_events(
        session,
        tenant,
        [
            (
                f"record.erasure.{status}",
                {"erasure_id": str(row.id), "erased": len(free), "blocked": len(blocked)},
            )
        ],
    )
    return row, blobs


async def _of_person(session: AsyncSession, data: ErasureIn) -> list[Document]:
    if data.counterparty is None and (data.custom_field is None or data.value is None):
        raise Problem(
            422,
            "validation-error",
            "name the person: counterparty, or custom_field with value",
        )
    matches = []
    if data.counterparty is not None:
        matches.append(func.lower(Document.counterparty) == data.counterparty.lower())
    if data.custom_field is not None and data.value is not None:
        matches.append(Document.custom_fields[data.custom_field].astext == data.value)
    query = (
        select(Document)
        .where(
            or_(*matches), Document.redacted.is_(False), Document.type != "destruction-certificate"
        )
        .order_by(Document.id)
        .with_for_update()
    )
    return list(await session.scalars(query))


def _person_digest(data: ErasureIn) -> str:
    """The person as the audit chain keeps them: a digest, never the name."""
    raw = json.dumps(
        [data.counterparty and data.counterparty.lower(), data.custom_field, data.value]
    )
    return hashlib.sha256(raw.encode()).hexdigest()


def erasure_out(row: Erasure) -> ErasureOut:
    status: Any = row.status
    return ErasureOut(
        str(row.id),
        status,
        list(row.erased),
        msgspec.convert(row.blocked, list[Blocked]),
        row.created_at,
    )


def blocked_record(b: Blocked) -> dict[str, Any]:
    """What keeps a document, as the erasure request stores it."""
    return {
        k: v
        for k, v in {
            "document_id": b.document_id,
            "reason": b.reason,
            "hold": b.hold,
            "retain_until": b.retain_until.isoformat() if b.retain_until else None,
        }.items()
        if v is not None
    }
