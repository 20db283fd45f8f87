"""Filings with a second pair of eyes (maker-checker): a maker drafts and submits; a
different person approves or rejects; the data's hash taken at submission must still hold
at approval and at filing, so a change after submission voids the approval; filed with the
regulator's reference and evidence kept in records (compliance mode), then locked.

    draft --submit--> submitted --approve--> approved --file--> filed (locked)
       ^                  |  \\--reject--> rejected --(edit)--> draft
       \\----(edit)-------/ (an edit after approval voids it: back to draft)
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.compliance import obligations
from bpo.compliance.models import Deadline, Filing
from bpo.compliance.schemas import FileIn, FilingIn, FilingOut, FilingUpdate
from bpo.core.errors import Problem, invalid
from bpo.core.tenancy import TenantContext
from bpo.records import service as records
from bpo.webhooks.service import record_events

MAX_DATA_BYTES = 256 * 1024


def filing_out(f: Filing) -> FilingOut:
    return FilingOut(
        id=str(f.id), title=f.title, obligation=str(f.obligation_id) if f.obligation_id else None,
        deadline=str(f.deadline_id) if f.deadline_id else None, period=f.period, data=f.data,
        status=f.status, maker=f.maker, submitted_at=f.submitted_at,
        submitted_hash=f.submitted_hash, checker=f.checker, approved_at=f.approved_at,
        rejections=list(f.rejections), regulator_reference=f.regulator_reference,
        filed_on=f.filed_on, filed_by=f.filed_by, evidence=list(f.evidence),
        locked_at=f.locked_at, version=f.version, created_at=f.created_at,
        updated_at=f.updated_at,
    )  # fmt: skip


def data_hash(f: Filing) -> str:
    """What the checker approves: the title, the period and the data, canonically."""
    doc = {"title": f.title, "period": f.period.isoformat() if f.period else None, "data": f.data}
    return hashlib.sha256(msgspec.json.encode(doc, order="sorted")).hexdigest()


def _check_data(data: dict[str, Any]) -> None:
    if len(msgspec.json.encode(data)) > MAX_DATA_BYTES:
        raise invalid("#/data", f"at most {MAX_DATA_BYTES} bytes of JSON")


def _conflict(detail: str) -> Problem:
    return Problem(409, "conflict", detail)


async def create(session: AsyncSession, tenant: TenantContext, who: Any, data: FilingIn) -> Filing:
    _check_data(data.data)
    obligation_id, deadline_id, period = None, None, data.period
    if data.deadline:
        deadline = await _deadline(session, data.deadline)
        deadline_id, obligation_id = deadline.id, deadline.obligation_id
        period = period or deadline.period
    if data.obligation:
        found = await obligations.get(session, data.obligation)
        if obligation_id not in (None, found.id):
            raise invalid("#/deadline", "the deadline is another obligation's")
        obligation_id = found.id
    f = Filing(
        title=data.title, obligation_id=obligation_id, deadline_id=deadline_id, period=period,
        data=data.data, maker=actor_of(who)[:200],
    )  # fmt: skip
    session.add(f)
    await session.flush()
    await session.refresh(f)
    await _audit(session, tenant, who, f, "created")
    return f


async def _deadline(session: AsyncSession, raw: str) -> Deadline:
    try:
        found = await session.get(Deadline, uuid.UUID(raw))
    except ValueError:
        found = None
    if found is None:
        raise invalid("#/deadline", f"no deadline {raw}")
    return found


async def get(session: AsyncSession, filing_id: uuid.UUID, lock: bool = False) -> Filing:
    found = await session.get(Filing, filing_id, with_for_update=lock)
    if found is None:
        raise Problem(404, "not-found", f"no filing {filing_id}")
    return found


async def update(
    session: AsyncSession, tenant: TenantContext, who: Any, f: Filing, data: FilingUpdate
) -> Filing:
    """Change a filing not yet filed. After submission the hash no longer holds (the
    checker must see it again); after approval the approval is void (back to draft)."""
    if f.status == "filed":
        raise _conflict("a filed filing is locked")
    if data.data is not None:
        _check_data(data.data)
        f.data = data.data
    if data.title is not None:
        f.title = data.title
    if f.status in ("approved", "rejected"):
        f.status, f.checker, f.approved_at = "draft", None, None
    await _bump(session, f)
    await _audit(session, tenant, who, f, "changed")
    return f


async def submit(session: AsyncSession, tenant: TenantContext, who: Any, f: Filing) -> Filing:
    if f.status not in ("draft", "rejected", "submitted"):
        raise _conflict(f"a {f.status} filing cannot be submitted")
    f.status, f.submitted_hash, f.submitted_at = "submitted", data_hash(f), datetime.now(UTC)
    f.checker, f.approved_at = None, None
    await _bump(session, f)
    await _audit(session, tenant, who, f, "submitted")
    return f


def _four_eyes(f: Filing, who: Any, what: str) -> str:
    actor = actor_of(who)[:200]
    if actor == f.maker:
        raise Problem(
            403, "maker-checker",
            f"the maker of a filing cannot {what} it: a second person must (four-eyes rule)",
        )  # fmt: skip
    return actor


def _unchanged(f: Filing) -> None:
    if f.submitted_hash != data_hash(f):
        raise _conflict("the filing changed after it was submitted: submit it again")


async def approve(session: AsyncSession, tenant: TenantContext, who: Any, f: Filing) -> Filing:
    if f.status != "submitted":
        raise _conflict(f"only a submitted filing can be approved (this one is {f.status})")
    f.checker = _four_eyes(f, who, "approve")
    _unchanged(f)
    f.status, f.approved_at = "approved", datetime.now(UTC)
    await _bump(session, f)
    await _audit(session, tenant, who, f, "approved")
    await record_events(session, tenant, [("filing.approved", _event(f))])
    return f


async def reject(
    session: AsyncSession, tenant: TenantContext, who: Any, f: Filing, reason: str
) -> Filing:
    if f.status != "submitted":
        raise _conflict(f"only a submitted filing can be rejected (this one is {f.status})")
    actor = _four_eyes(f, who, "reject")
    now = datetime.now(UTC)
    f.rejections = [*f.rejections, {"by": actor, "at": now.isoformat(), "reason": reason}]
    f.status = "rejected"
    await _bump(session, f)
    await _audit(session, tenant, who, f, "rejected")
    return f


async def mark_filed(
    session: AsyncSession, tenant: TenantContext, who: Any, f: Filing, data: FileIn
) -> Filing:
    """Record the filing as made, with its evidence (checked in records), and lock it."""
    if f.status != "approved":
        raise _conflict(f"only an approved filing can be filed (this one is {f.status})")
    _unchanged(f)
    evidence = await records.evidence_of(session, list(dict.fromkeys(data.evidence)), "#/evidence")
    now = datetime.now(UTC)
    f.status, f.regulator_reference, f.filed_on = "filed", data.regulator_reference, data.filed_on
    f.filed_by, f.locked_at = actor_of(who)[:200], now
    f.evidence = [asdict(e) for e in evidence]
    if f.deadline_id:
        deadline = await session.get(Deadline, f.deadline_id, with_for_update=True)
        if deadline is not None:
            deadline.status, deadline.filing_id = "filed", f.id
    await _bump(session, f)
    await _audit(session, tenant, who, f, "filed")
    return f


async def _bump(session: AsyncSession, f: Filing) -> None:
    f.version += 1
    f.updated_at = datetime.now(UTC)
    await session.flush()


def _event(f: Filing) -> dict[str, Any]:
    return {"filing_id": str(f.id), "title": f.title, "status": f.status, "maker": f.maker,
            "checker": f.checker, "data_hash": f.submitted_hash}  # fmt: skip


async def _audit(
    session: AsyncSession, tenant: TenantContext, who: Any, f: Filing, what: str
) -> None:
    await audit.record(
        session, tenant.tenant_id, actor=who, action=f"compliance.filing.{what}",
        target=f"compliance.filing:{f.id}",
        after={"status": f.status, "version": f.version, "hash": data_hash(f),
               "checker": f.checker, "rejections": len(f.rejections)},
    )  # fmt: skip
