"""Claim-next in a few statements: the hot path of every staff member's day.

1. One platform read: the staff member's routing profile and the tenants holding the most
   urgent tasks they may take (as `dispatch` reads them).
2. In a tenant's transaction (its role, on the bare asyncpg connection):
   - one statement takes the staff member's claim slot (`platform.claim_slot`: a lock per
     staff member and a fresh count of what they hold, so two claims arriving together
     cannot pass the capacity), picks and locks the most urgent task `FOR UPDATE SKIP
     LOCKED`, locks its request and reads its siblings' statuses;
   - the claim itself is `service.take` (the same rules as a claim by id), then one
     statement writes it all: the task, its index row, the request's status, the events
     (outbox) and the audit event (linked into the tenant's chain at commit, so nothing
     waits on the chain's head before then).
So a claim is BEGIN, two statements and COMMIT in the tenant, instead of a dozen.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import asyncpg

from bpo.audit import service as audit
from bpo.core.db import Database, positional
from bpo.core.tenancy import TenantContext, bare_connection, in_tenant, issue_tenant_context
from bpo.identity.guards import Principal
from bpo.jobs.outbox import OUTBOX_SQL, outbox_params, outbox_row
from bpo.webhooks.service import FAN_OUT, event_calls
from bpo.work import dispatch, queue, service
from bpo.work.models import Task

_TASK_COLUMNS = tuple(column.name for column in Task.__table__.columns)
_PICK = """
WITH slot AS MATERIALIZED (
    SELECT platform.claim_slot(:me) AS held
), pick AS (
    SELECT t.* FROM tasks t JOIN platform.work_queue q ON q.task_id = t.id
    WHERE (SELECT held FROM slot) < :capacity
      AND q.tenant_id = :tenant AND q.status IN ('open', 'awaiting_review')
      AND t.status IN ('open', 'awaiting_review')
      AND (q.completed_by IS NULL OR q.completed_by <> :me OR q.status = 'open') {skills}
    ORDER BY q.urgency, q.rank, q.task_id LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
), request AS (
    SELECT r.status, r.service_key, r.priority FROM work_requests r
    WHERE r.id = (SELECT request_id FROM pick) FOR UPDATE
)
SELECT (SELECT held FROM slot) AS held, pick.*,
    (SELECT status FROM request) AS request_status,
    (SELECT service_key FROM request) AS request_service,
    (SELECT priority FROM request) AS request_priority,
    ARRAY(SELECT s.status FROM tasks s
          WHERE s.request_id = pick.request_id AND s.id <> pick.id) AS siblings
FROM (SELECT 1) AS one LEFT JOIN pick ON true
"""
_WRITE = f"""
WITH task AS (
    UPDATE tasks SET status = :status, claimed_by = :claimed_by, lease_until = :lease_until,
        responded_at = :responded_at, response_met = :response_met, updated_at = :updated_at
    WHERE id = :task_id
), queued AS ({queue.UPSERT_SQL}
), request AS (
    UPDATE work_requests SET status = :request_status, updated_at = :updated_at
    WHERE id = :request_id AND :request_changed
), events AS ({OUTBOX_SQL}
), audited AS ({audit.APPEND_SQL}
)
SELECT 1
"""  # noqa: S608  (fixed fragments; every value is a parameter)


@cache
def _statement(sql: str) -> tuple[str, tuple[str, ...]]:
    return positional(sql)


async def claim_next(
    db: Database, principal: Principal, lease: timedelta
) -> tuple[Task, str] | None:
    """Claim the most urgent task the caller may take; None when there is none."""
    assert principal.user_id is not None  # staff roles are people
    async with bare_connection(db.engine) as conn:
        viewer = queue.viewer_of_row(
            principal.user_id,
            principal.role == "staff_admin",
            await _fetchrow(conn, queue.VIEWER_SQL, {"me": principal.user_id}),
        )
        found = await _fetch(conn, queue.CANDIDATES_SQL[viewer.scope], queue.params_of(viewer))
        for tenant_id, slug, _ in found[: dispatch.TENANTS_TRIED]:
            tenant = issue_tenant_context(tenant_id, slug)  # an assigned tenant, found above
            async with in_tenant(conn, tenant):
                task = await _claim_in(conn, tenant, principal, viewer, lease)
            if task is not None:
                return task, slug
    return None


async def _claim_in(
    conn: asyncpg.Connection,
    tenant: TenantContext,
    principal: Principal,
    viewer: queue.Viewer,
    lease: timedelta,
) -> Task | None:
    skills = "AND q.skills <@ CAST(:skills AS varchar[])" if viewer.scope == "skills" else ""
    values = {"me": viewer.user_id, "capacity": viewer.capacity, "tenant": tenant.tenant_id,
              "skills": viewer.skills}  # fmt: skip
    row = await _fetchrow(conn, _PICK.format(skills=skills), values)
    dispatch.check_capacity(dataclasses.replace(viewer, held=row["held"]))
    if row["id"] is None:
        return None
    task = Task(**{name: row[name] for name in _TASK_COLUMNS})
    now = service.now_utc()
    before = service.take(task, viewer.user_id, lease, now)
    await _write(conn, tenant, principal, task, before, row, now)
    return task


async def _write(
    conn: asyncpg.Connection,
    tenant: TenantContext,
    principal: Principal,
    task: Task,
    before: dict[str, Any],
    row: asyncpg.Record,
    now: datetime,
) -> None:
    """The claim's every effect, in one statement (see the module's docstring)."""
    assert task.lease_until is not None
    status = service.request_status([*row["siblings"], task.status])
    changed = status != row["request_status"]
    after = {"status": task.status, "claimed_by": service.id_text(task.claimed_by),
             "lease_until": task.lease_until.isoformat()}  # fmt: skip
    events = [("work.task.claimed", {"task_id": str(task.id), "request_id": str(task.request_id)}
               | after)]  # fmt: skip
    announced = service.request_event(
        task.request_id, status, row["request_service"], row["request_priority"]
    )
    if changed and announced is not None:
        events.insert(0, announced)
    _, calls = event_calls(events)
    outbox = [outbox_row(FAN_OUT, args, kwargs, tenant=tenant) for args, kwargs in calls]
    _, audited = audit.prepare_append(
        tenant.tenant_id, principal, "work.task.claimed", f"task:{task.id}", before, after
    )
    values = {
        **queue.projection(tenant.tenant_id, task),
        "claimed_by": task.claimed_by,
        "responded_at": task.responded_at,
        "response_met": task.response_met,
        "updated_at": now,
        "request_id": task.request_id,
        "request_status": status,
        "request_changed": changed,
        **outbox_params(outbox),
        **audited,
    }
    sql, names = _statement(_WRITE)
    await conn.execute(sql, *(values[n] for n in names))


async def _fetchrow(conn: asyncpg.Connection, sql: str, values: dict[str, Any]) -> asyncpg.Record:
    text, names = _statement(sql)
    row = await conn.fetchrow(text, *(values[n] for n in names))
    assert row is not None  # these statements always answer one row
    return row


async def _fetch(
    conn: asyncpg.Connection, sql: str, values: dict[str, Any]
) -> list[asyncpg.Record]:
    text, names = _statement(sql)
    return list(await conn.fetch(text, *(values[n] for n in names)))
