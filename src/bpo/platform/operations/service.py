"""Failed jobs: the dead-letter view staff admins list and replay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.pagination import uuid_cursor
from bpo.jobs.models import FailedJob
from bpo.jobs.outbox import UnknownJob, enqueue


async def list_failed(
    session: AsyncSession,
    *,
    actor: str | None,
    tenant_id: uuid.UUID | None,
    include_replayed: bool,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[FailedJob], str | None]:
    """Newest failures first; the cursor is the last row's failure time and id."""
    query: Select[FailedJob] = select(FailedJob)
    if actor:
        query = query.where(FailedJob.actor == actor)
    if tenant_id:
        query = query.where(FailedJob.tenant_id == tenant_id)
    if not include_replayed:
        query = query.where(FailedJob.replayed_at.is_(None))
    if cursor:
        query = query.where(FailedJob.id < uuid_cursor(cursor))
    rows = (await session.scalars(query.order_by(FailedJob.id.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    return rows[:limit], (str(rows[limit - 1].id) if more else None)


async def get_failed(session: AsyncSession, ident: uuid.UUID, *, lock: bool = False) -> FailedJob:
    row = await session.get(FailedJob, ident, with_for_update=lock)
    if row is None:
        raise Problem(404, "not-found", f"no failed job {ident}")
    return row


async def replay(session: AsyncSession, ident: uuid.UUID) -> tuple[FailedJob, uuid.UUID]:
    """Enqueue the failed job again, as a new message (its effect never committed)."""
    row = await get_failed(session, ident, lock=True)
    if row.replayed_as is not None:
        raise Problem(
            409,
            "already-replayed",
            f"this failed job was replayed as message {row.replayed_as} "
            "(if that failed too, it is listed as a failed job of its own)",
        )
    try:
        message_id = await enqueue(
            session, row.actor, *row.args, tenant=row.tenant_id, **row.kwargs
        )
    except UnknownJob:
        raise Problem(
            409, "unknown-job", f"no job named {row.actor!r} exists any more: it cannot run"
        ) from None
    row.replayed_at = func.now()
    row.replayed_as = message_id
    await session.flush()
    await session.refresh(row)
    return row, message_id
