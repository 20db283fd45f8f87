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
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Select, Table, TextClause, bindparam, delete, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bpo.core.pagination import bad_cursor
from bpo.work import sla
from bpo.work.models import QueueEntry, Task

INFINITY = "infinity"


_PROJECTED = ("tenant_id", "service_key", "skills", "priority", "status", "claimed_by",
              "lease_until", "completed_by", "response_due_at", "resolution_due_at",
              "next_check_at", "escalated")  # fmt: skip
_TABLE = cast(Table, QueueEntry.__table__)  # Core: no ORM bulk-insert bookkeeping
_UPSERT = (
    pg_insert(_TABLE)
    .values({c: bindparam(c) for c in ("task_id", "created_at", *_PROJECTED)})
    .on_conflict_do_update(index_elements=["task_id"], set_={c: bindparam(c) for c in _PROJECTED})
)
_REMOVE = delete(QueueEntry).where(QueueEntry.task_id == bindparam("id"))


async def project(session: AsyncSession, tenant_id: uuid.UUID, task: Task) -> None:
    """Write the task's routing facts to the index (or remove it once finished)."""
    if task.status in ("done", "canceled"):
        await session.execute(_REMOVE, {"id": task.id})
        return
    await session.execute(_UPSERT, projection(tenant_id, task))


def projection(tenant_id: uuid.UUID, task: Task) -> dict[str, Any]:
    """The task's index row: what routing needs (the upsert's parameters)."""
    return {
        "task_id": task.id,
        "created_at": task.created_at,
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


# The same upsert as SQL text with named parameters, for statements that fold it in.
UPSERT_SQL = (  # noqa: S608
    "INSERT INTO platform.work_queue (task_id, created_at, {cols})"
    " VALUES (:task_id, :created_at, {values})"
    " ON CONFLICT (task_id) DO UPDATE SET {sets}"
).format(
    cols=", ".join(_PROJECTED),
    values=", ".join(f":{c}" for c in _PROJECTED),
    sets=", ".join(f"{c} = excluded.{c}" for c in _PROJECTED),
)  # column names from _PROJECTED only; every value is a parameter


@dataclass(frozen=True, slots=True)
class Viewer:
    """Whose inbox: a staff member sees the tenants assigned to them, tasks their skills
    cover (every task while no skills were ever set for them: a generalist), and no review
    of their own work; a staff admin sees every tenant and task."""

    user_id: uuid.UUID
    admin: bool
    skills: list[str] | None  # None: no profile yet, not filtered by skills
    capacity: int = 10  # tasks held at once
    held: int = 0  # tasks held, across tenants: counted under the claim lock, when claiming
    tenants: tuple[uuid.UUID, ...] = ()  # assigned, active tenants (staff admins: all)

    @property
    def scope(self) -> str:
        return "all" if self.admin else "tenants" if self.skills is None else "skills"


# Claimable: open work, a review by someone else, or a claim whose lease ran out. The
# routing filter (assignment, skills, four eyes) is the same for the inbox and claim-next.
# Staff admins see every tenant and skill. The assigned tenants come as an array (read with
# the viewer), so the planner weighs how many there are: few, it reads those tenants' rows
# (ix_work_queue_tenant_id); many, it walks ix_work_queue_claimable in order and stops at
# the limit. Joined to staff_assignments instead, it guessed a handful of tenants and read
# every row of all 200 (47 ms instead of under 1 ms). Tenants are joined after the limit.
_SCOPES = {
    "all": "",
    "tenants": "q.tenant_id = ANY(CAST(:tenants AS uuid[])) AND",
    "skills": """q.tenant_id = ANY(CAST(:tenants AS uuid[]))
        AND q.skills <@ CAST(:skills AS varchar[]) AND""",
}
_FOUR_EYES = """(q.completed_by IS NULL OR q.completed_by <> :me
         OR q.status NOT IN ('awaiting_review', 'in_review'))"""
_AFTER = "(q.urgency, q.rank, q.task_id) > (CAST(:u AS timestamptz), :r, CAST(:t AS uuid))"
_FIELDS = """q.task_id, q.tenant_id, q.service_key, q.status, q.priority, q.rank, q.urgency,
    q.response_due_at, q.resolution_due_at, q.claimed_by, q.lease_until, q.escalated,
    q.created_at"""
_OPEN = "q.status IN ('open', 'awaiting_review')"
_LAPSED = "q.status IN ('in_progress', 'in_review') AND q.lease_until < now()"


def _routed(state: str, scope: str, limit: int, extra: str = "") -> str:
    """Claimable index rows in `state` for the viewer, most urgent first.

    The limit is written into the statement (an int): as a parameter, PostgreSQL's generic
    plan for a prepared statement cannot count on it and sorted the whole queue (20x).
    """
    return f"""SELECT {_FIELDS} FROM platform.work_queue q
        WHERE {state} AND {_SCOPES[scope]} {_FOUR_EYES} {extra}
        ORDER BY q.urgency, q.rank, q.task_id LIMIT {int(limit)}"""  # noqa: S608


# The inbox's filters, as fixed fragments (their values are bound): the firm, the service,
# and the SLA state (breached: escalated; due soon: the nearest goal within DUE_SOON).
DUE_SOON = "interval '4 hours'"
_FILTERS = {
    "tenant": "AND q.tenant_id = (SELECT id FROM platform.tenants WHERE slug = :only_tenant)",
    "service": "AND q.service_key = :only_service",
    "breached": "AND q.escalated",
    "due_soon": f"AND NOT q.escalated AND q.urgency < now() + {DUE_SOON}",
    "on_track": f"AND NOT q.escalated AND q.urgency >= now() + {DUE_SOON}",
}
SLA_STATES = ("breached", "due_soon", "on_track")


@dataclass(frozen=True, slots=True)
class InboxFilter:
    tenant: str | None = None
    service: str | None = None
    sla: str | None = None  # one of SLA_STATES

    def fragments(self) -> tuple[str, ...]:
        names = [n for n, v in (("tenant", self.tenant), ("service", self.service)) if v]
        return (*names, *([self.sla] if self.sla in SLA_STATES else []))

    def params(self) -> dict[str, Any]:
        return {"only_tenant": self.tenant, "only_service": self.service}


@lru_cache(maxsize=512)
def _inbox_sql(scope: str, after: bool, filters: tuple[str, ...], limit: int) -> TextClause:
    extra = (f"AND {_AFTER}" if after else "") + " ".join(_FILTERS[f] for f in filters)
    open_, lapsed = _routed(_OPEN, scope, limit, extra), _routed(_LAPSED, scope, limit, extra)
    return text(  # fixed fragments and an int only; every other value is bound
        f"""SELECT x.*, t.slug FROM (({open_}) UNION ALL ({lapsed})) AS x
        JOIN platform.tenants t ON t.id = x.tenant_id
        ORDER BY x.urgency, x.rank, x.task_id LIMIT {int(limit)}"""  # noqa: S608
    )


CANDIDATES_SQL = {  # the tenants of the most urgent claimable tasks (claim-next)
    scope: f"""SELECT x.tenant_id, t.slug, min(x.urgency) AS urgency
            FROM ({_routed(_OPEN, scope, 20)}) AS x
            JOIN platform.tenants t ON t.id = x.tenant_id AND t.status = 'active'
            GROUP BY x.tenant_id, t.slug ORDER BY min(x.urgency)"""  # noqa: S608
    for scope in _SCOPES
}
_CANDIDATES = {scope: text(sql) for scope, sql in CANDIDATES_SQL.items()}


def params_of(viewer: Viewer) -> dict[str, Any]:
    return {"me": viewer.user_id, "skills": viewer.skills, "tenants": list(viewer.tenants)}


async def inbox(
    conn: AsyncConnection,
    viewer: Viewer,
    *,
    limit: int,
    cursor: str | None = None,
    only: InboxFilter | None = None,
) -> tuple[list[Any], str | None]:
    only = only or InboxFilter()
    params = params_of(viewer) | only.params()
    if cursor is not None:
        params.update(_decode(cursor))
    query = _inbox_sql(viewer.scope, cursor is not None, only.fragments(), limit)
    rows = (await conn.execute(query, params)).all()
    following = _encode(rows[-1]) if len(rows) == limit else None
    return list(rows), following


def _encode(row: Any) -> str:
    urgency = INFINITY if row.urgency.year >= 9999 else row.urgency.isoformat()
    raw = f"{urgency}|{row.rank}|{row.task_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        urgency, rank, task_id = raw.split("|")
        # asyncpg binds datetimes, not strings; datetime.max is its 'infinity'.
        after = datetime.max if urgency == INFINITY else datetime.fromisoformat(urgency)
        if after.tzinfo is None and after != datetime.max:
            raise ValueError("a cursor's time carries its zone")
        return {"u": after, "r": int(rank), "t": uuid.UUID(task_id)}
    except (ValueError, UnicodeDecodeError):
        raise bad_cursor() from None


async def candidate_tenants(conn: AsyncConnection, viewer: Viewer) -> list[tuple[uuid.UUID, str]]:
    """The tenants holding the most urgent claimable tasks for `viewer`, most urgent first."""
    rows = (await conn.execute(_CANDIDATES[viewer.scope], params_of(viewer))).all()
    return [(r.tenant_id, r.slug) for r in rows]


@lru_cache(maxsize=4)
def _next_in_tenant(filter_skills: bool) -> Select[Task]:
    """The tenant's most urgent claimable task, locked, in the index's order.

    The task row is what is locked (SKIP LOCKED), as every other transition locks the task
    before its index row: locking the index row first deadlocked with them.
    """
    q = QueueEntry
    conditions = [
        q.tenant_id == bindparam("tenant"),
        q.status.in_(("open", "awaiting_review")),
        Task.status.in_(("open", "awaiting_review")),
        or_(q.completed_by.is_(None), q.completed_by != bindparam("me"), q.status == "open"),
    ]
    if filter_skills:
        conditions.append(q.skills.contained_by(bindparam("skills", type_=q.skills.type)))
    return (
        select(Task)
        .join(q, q.task_id == Task.id)
        .where(*conditions)
        .order_by(q.urgency, q.rank, q.task_id)
        .limit(1)
        .with_for_update(of=Task, skip_locked=True)
    )


async def lock_next(session: AsyncSession, tenant_id: uuid.UUID, viewer: Viewer) -> Task | None:
    """The tenant's most urgent task `viewer` may take, locked; one statement.

    Run in the tenant's own transaction: row-level security limits it to that tenant's
    index rows, and SKIP LOCKED lets concurrent claimers take different tasks at once.
    """
    params = {"tenant": tenant_id, "me": viewer.user_id, "skills": viewer.skills}
    task: Task | None = await session.scalar(_next_in_tenant(viewer.scope == "skills"), params)
    return task


VIEWER_SQL = """SELECT p.skills, coalesce(p.capacity, 10) AS capacity,
         ARRAY(SELECT a.tenant_id FROM platform.staff_assignments a
               JOIN platform.tenants t ON t.id = a.tenant_id AND t.status = 'active'
               WHERE a.user_id = :me) AS tenants
       FROM (SELECT 1) AS one LEFT JOIN platform.staff_profiles p ON p.user_id = :me"""
_VIEWER = text(VIEWER_SQL)


async def viewer(conn: AsyncConnection, user_id: uuid.UUID, admin: bool) -> Viewer:
    """A staff member's routing profile (one statement). What they hold is counted when
    they claim, under their claim lock (`dispatch.holding_now`, `platform.claim_slot`)."""
    row = (await conn.execute(_VIEWER, {"me": user_id})).one()
    return viewer_of_row(user_id, admin, row)


def viewer_of_row(user_id: uuid.UUID, admin: bool, row: Any) -> Viewer:
    """From a SQLAlchemy row or an asyncpg record of `VIEWER_SQL`."""
    skills, capacity, tenants = row[0], row[1], row[2]
    return Viewer(
        user_id, admin, None if skills is None else list(skills), capacity, tenants=tuple(tenants)
    )


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
