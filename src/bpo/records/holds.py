"""Legal holds: named, with a reason and a scope, open until released. While a hold is
open nothing in its scope is deleted or disposed of, whatever its retention says (the
database's `records_holds_on` is the one definition of "in scope")."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.core.errors import Problem
from bpo.identity.guards import Principal
from bpo.records.models import Document, Hold, RecordClass
from bpo.records.retention import class_by_code
from bpo.records.schemas import HoldIn, HoldOut
from bpo.webhooks.service import record_events

_HOLDS_ON = text(
    "SELECT d.id, h.name FROM records_documents d,"
    " LATERAL records_holds_on(d) h WHERE d.id = ANY(:ids) ORDER BY h.placed_at"
)
# The documents in an open hold's scope (the same test as the database's function).
_IN_SCOPE = text(
    "SELECT d.id FROM records_documents d, LATERAL records_holds_on(d) h"
    " WHERE h.id = :hold AND d.status <> 'disposed'"
)


async def holds_on(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """The names of the open holds covering each document."""
    found: dict[uuid.UUID, list[str]] = {}
    for doc_id, name in await session.execute(_HOLDS_ON, {"ids": list(ids)}):
        found.setdefault(doc_id, []).append(name)
    return found


async def in_scope(session: AsyncSession, hold_id: uuid.UUID) -> list[uuid.UUID]:
    return [r[0] for r in await session.execute(_IN_SCOPE, {"hold": hold_id})]


def hold_out(h: Hold, class_code: str | None) -> HoldOut:
    return HoldOut(
        str(h.id),
        h.name,
        h.reason,
        [str(d) for d in h.document_ids],
        h.counterparty,
        class_code,
        h.date_from,
        h.date_to,
        h.placed_by,
        h.placed_at,
        h.released_at,
        h.released_by,
        h.release_reason,
    )


async def class_codes(session: AsyncSession, holds: list[Hold]) -> dict[uuid.UUID, str]:
    ids = {h.class_id for h in holds if h.class_id}
    if not ids:
        return {}
    rows = await session.execute(
        select(RecordClass.id, RecordClass.code).where(RecordClass.id.in_(ids))
    )
    return {r[0]: r[1] for r in rows}


async def place(session: AsyncSession, tenant_id: uuid.UUID, who: Principal, data: HoldIn) -> Hold:
    docs = _document_ids(data.documents)
    if not (docs or data.counterparty or data.record_class or data.date_from or data.date_to):
        raise Problem(
            422,
            "validation-error",
            "a hold needs a scope: documents, a counterparty, a class or a date range",
        )
    if data.date_from and data.date_to and data.date_from > data.date_to:
        raise Problem(
            422,
            "validation-error",
            "date_from is after date_to",
            errors=[{"pointer": "#/date_from", "detail": "after date_to"}],
        )
    known = set(await session.scalars(select(Document.id).where(Document.id.in_(docs))))
    missing = [str(d) for d in docs if d not in known]
    if missing:
        raise Problem(404, "not-found", f"no document {missing[0]}")
    record_class = None
    if data.record_class:
        record_class = await class_by_code(session, data.record_class, "#/record_class")
    hold = Hold(
        name=data.name,
        reason=data.reason,
        document_ids=docs,
        counterparty=data.counterparty,
        class_id=record_class.id if record_class else None,
        date_from=data.date_from,
        date_to=data.date_to,
        placed_by=actor_of(who)[:200],
    )
    session.add(hold)
    await session.flush()
    await session.refresh(hold)
    await audit.record(
        session,
        tenant_id,
        actor=who,
        action="records.hold.placed",
        target=f"records.hold:{hold.id}",
        after=_hold_record(hold),
    )
    await record_events(session, tenant_id, [("hold.placed", _hold_event(hold))])
    return hold


async def release(
    session: AsyncSession, tenant_id: uuid.UUID, who: Principal, hold_id: uuid.UUID, reason: str
) -> Hold:
    hold = await session.scalar(select(Hold).where(Hold.id == hold_id).with_for_update())
    if hold is None:
        raise Problem(404, "not-found", "no such hold")
    if hold.released_at is not None:
        raise Problem(409, "conflict", f"the hold {hold.name!r} was released already")
    hold.released_at, hold.released_by = func.now(), actor_of(who)[:200]
    hold.release_reason = reason
    await session.flush()
    await session.refresh(hold)
    await audit.record(
        session,
        tenant_id,
        actor=who,
        action="records.hold.released",
        target=f"records.hold:{hold.id}",
        after={"reason": reason},
    )
    await record_events(session, tenant_id, [("hold.released", _hold_event(hold))])
    return hold


def _document_ids(values: list[str]) -> list[uuid.UUID]:
    ids = []
    for i, value in enumerate(values):
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            raise Problem(
                422,
                "validation-error",
                f"documents[{i}] is not a document id",
                errors=[{"pointer": f"#/documents/{i}", "detail": "not a document id"}],
            ) from None
    return list(dict.fromkeys(ids))


def _hold_record(h: Hold) -> dict[str, Any]:
    # Ids and dates only: a counterparty's name is personal data, kept out of the chain.
    return {
        "name": h.name,
        "documents": len(h.document_ids),
        "class_id": str(h.class_id) if h.class_id else None,
        "by_counterparty": h.counterparty is not None,
        "date_from": h.date_from.isoformat() if h.date_from else None,
        "date_to": h.date_to.isoformat() if h.date_to else None,
    }


def _hold_event(h: Hold) -> dict[str, Any]:
    return {"hold_id": str(h.id), "name": h.name} | _hold_record(h)
