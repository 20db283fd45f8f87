"""The queue index in `platform`: written with each task, read by the staff inbox and jobs.

`project` runs in the tenant's own transaction (as the tenant's role, which row-level
security limits to its own rows), so the index never disagrees with the task after a
commit. The inbox reads the index alone, one indexed scan whatever the number of tenants,
and returns only what routing needs; the task itself is read through the tenant's routes.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bpo.core.pagination import bad_cursor
from bpo.work import sla
from bpo.work.models import QueueEntry, Task

INFINITY = "infinity"


async def project(session: AsyncSession, tenant_id: uuid.UUID, task: Task) -> None:
    """Write the task's routing facts to the index (or remove it once finished)."""
    if task.status in ("done", "canceled"):
        await session.execute(delete(QueueEntry).where(QueueEntry.task_id == task.id))
        return
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "service_key": task.service_key,
        "skills": list(task.skills),
        "priority": task.priority,
        "status": task.status,
        "claimed_by": task.claimed_by,
        "lease_until": task.lease_until,
        "completed_by": task.completed_by,
        "response_due_at": sla.queue_due(task, "response"),
        "resolution_due_at": sla.queue_due(task, "resolution"),
        "next_check_at": sla.next_check(task),
        "escalated": task.response_breached_at is not None
        or task.resolution_breached_at is not None,
    }
    await session.execute(
        pg_insert(QueueEntry)
        .values(task_id=task.id, created_at=task.created_at, **values)
        .on_conflict_do_update(index_elements=[QueueEntry.task_id], set_=values)
    )


@dataclass(frozen=True, slots=True)
class Viewer:
    """Whose inbox: a staff member sees the tenants assigned to them, tasks their skills
    cover, and no review of their own work; a staff admin sees every tenant and task."""

    user_id: uuid.UUID
    admin: bool
    skills: list[str]


# Claimable: open work, a review by someone else, or a claim whose lease ran out. The
# routing filter (assignment, skills, four eyes) is the same for the inbox and claim-next.
_ROUTING = """
    (:admin OR (q.tenant_id IN (SELECT a.tenant_id FROM platform.staff_assignments a
                                WHERE a.user_id = :me)
                AND q.skills <@ CAST(:skills AS varchar[])))
    AND (q.completed_by IS NULL OR q.completed_by <> :me
         OR q.status NOT IN ('awaiting_review', 'in_review'))
"""
_AFTER = "(q.urgency, q.rank, q.task_id) > (CAST(:u AS timestamptz), :r, CAST(:t AS uuid))"
_COLUMNS = """q.task_id, q.tenant_id, t.slug, q.service_key, q.status, q.priority, q.rank,
    q.urgency, q.response_due_at, q.resolution_due_at, q.claimed_by, q.lease_until,
    q.escalated, q.created_at"""


def _inbox_sql(after: bool, escalated_only: bool) -> str:
    keyset = f"AND {_AFTER}" if after else ""
    flag = "AND q.escalated" if escalated_only else ""
    parts = [
        f"""(SELECT {_COLUMNS} FROM platform.work_queue q
            JOIN platform.tenants t ON t.id = q.tenant_id
            WHERE q.status IN ('open', 'awaiting_review') AND {_ROUTING} {keyset} {flag}
            ORDER BY q.urgency, q.rank, q.task_id LIMIT :limit)""",  # noqa: S608
        f"""(SELECT {_COLUMNS} FROM platform.work_queue q
            JOIN platform.tenants t ON t.id = q.tenant_id
            WHERE q.status IN ('in_progress', 'in_review') AND q.lease_until < now()
              AND {_ROUTING} {keyset} {flag}
            ORDER BY q.urgency, q.rank, q.task_id LIMIT :limit)""",  # noqa: S608
    ]
    return " UNION ALL ".join(parts) + " ORDER BY urgency, rank, task_id LIMIT :limit"


_INBOX = {
    (after, flag): text(_inbox_sql(after, flag))  # fixed fragments only; values are bound
    for after in (False, True)
    for flag in (False, True)
}


async def inbox(
    conn: AsyncConnection,
    viewer: Viewer,
    *,
    limit: int,
    cursor: str | None = None,
    escalated_only: bool = False,
) -> tuple[list[Any], str | None]:
    params: dict[str, Any] = {
        "admin": viewer.admin,
        "me": viewer.user_id,
        "skills": viewer.skills,
        "limit": limit,
    }
    if cursor is not None:
        params.update(_decode(cursor))
    rows = (await conn.execute(_INBOX[(cursor is not None, escalated_only)], params)).all()
    following = _encode(rows[-1]) if len(rows) == limit else None
    return list(rows), following


def _encode(row: Any) -> str:
    urgency = row.urgency.isoformat() if row.urgency != datetime.max else INFINITY
    raw = f"{urgency}|{row.rank}|{row.task_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        urgency, rank, task_id = raw.split("|")
        if urgency != INFINITY:
            datetime.fromisoformat(urgency)
        return {"u": urgency, "r": int(rank), "t": str(uuid.UUID(task_id))}
    except (ValueError, UnicodeDecodeError):
        raise bad_cursor() from None


_CANDIDATE_TENANTS = text(
    f"""SELECT DISTINCT ON (tenant_id) tenant_id, slug, urgency, rank, task_id FROM (
        SELECT {_COLUMNS} FROM platform.work_queue q
        JOIN platform.tenants t ON t.id = q.tenant_id AND t.status = 'active'
        WHERE q.status IN ('open', 'awaiting_review') AND {_ROUTING}
        ORDER BY q.urgency, q.rank, q.task_id LIMIT 20) AS top
      ORDER BY tenant_id, urgency, rank, task_id"""  # noqa: S608
)


async def candidate_tenants(conn: AsyncConnection, viewer: Viewer) -> list[tuple[uuid.UUID, str]]:
    """The tenants holding the most urgent claimable tasks for `viewer`, most urgent first."""
    params = {"admin": viewer.admin, "me": viewer.user_id, "skills": viewer.skills}
    rows = list((await conn.execute(_CANDIDATE_TENANTS, params)).all())
    rows.sort(key=lambda r: (r.urgency, r.rank, r.task_id))
    return [(r.tenant_id, r.slug) for r in rows]


# Run in the tenant's own transaction: row-level security limits it to that tenant's rows,
# and SKIP LOCKED lets concurrent claimers take different tasks without waiting.
_NEXT_IN_TENANT = text(
    """SELECT q.task_id FROM platform.work_queue q
       WHERE q.tenant_id = :tenant AND q.status IN ('open', 'awaiting_review')
         AND (:admin OR q.skills <@ CAST(:skills AS varchar[]))
         AND (q.completed_by IS NULL OR q.completed_by <> :me OR q.status <> 'awaiting_review')
       ORDER BY q.urgency, q.rank, q.task_id
       LIMIT 1 FOR UPDATE SKIP LOCKED"""
)


async def lock_next(
    session: AsyncSession, tenant_id: uuid.UUID, viewer: Viewer
) -> uuid.UUID | None:
    params = {"tenant": tenant_id, "admin": viewer.admin, "me": viewer.user_id}
    params["skills"] = viewer.skills
    found = await session.scalar(_NEXT_IN_TENANT, params)
    return uuid.UUID(str(found)) if found is not None else None


_HELD = text(
    "SELECT count(*) FROM platform.work_queue"
    " WHERE claimed_by = :me AND status IN ('in_progress', 'in_review') AND lease_until > now()"
)


async def held_by(conn: AsyncConnection, user_id: uuid.UUID) -> int:
    """How many tasks the staff member holds now, across tenants (for capacity)."""
    return int((await conn.execute(_HELD, {"me": user_id})).scalar_one())


_DUE_FOR_CHECK = text(
    "SELECT tenant_id, task_id FROM platform.work_queue WHERE next_check_at <= now()"
    " ORDER BY next_check_at LIMIT :limit"
)
_EXPIRED = text(
    "SELECT tenant_id, task_id FROM platform.work_queue"
    " WHERE status IN ('in_progress', 'in_review') AND lease_until < now()"
    " ORDER BY lease_until LIMIT :limit"
)


async def due_for_check(conn: AsyncConnection, limit: int) -> dict[uuid.UUID, list[uuid.UUID]]:
    return _by_tenant((await conn.execute(_DUE_FOR_CHECK, {"limit": limit})).all())


async def expired_leases(conn: AsyncConnection, limit: int) -> dict[uuid.UUID, list[uuid.UUID]]:
    return _by_tenant((await conn.execute(_EXPIRED, {"limit": limit})).all())


def _by_tenant(rows: Sequence[Any]) -> dict[uuid.UUID, list[uuid.UUID]]:
    out: dict[uuid.UUID, list[uuid.UUID]] = {}
    for tenant_id, task_id in rows:
        out.setdefault(tenant_id, []).append(task_id)
    return out
