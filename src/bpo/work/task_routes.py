"""Staff work: the inbox across assigned tenants, claim-next, and every action on a task
(claim, heartbeat, release, notes, questions, time, complete, approve, send back)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.billing import service as billing
from bpo.core.pagination import uuid_cursor
from bpo.core.tenancy import TenantContext
from bpo.identity.guards import TENANT_STAFF, Principal, requires
from bpo.work import claims, dispatch, queue, service, timesheet
from bpo.work.models import Task, TaskComment
from bpo.work.routes import MAX_PAGE, comment_out
from bpo.work.schemas import (
    ClaimIn,
    CommentOut,
    CompleteIn,
    InboxItem,
    InboxPage,
    NoteIn,
    ReviewIn,
    SendBackIn,
    TaskOut,
    TaskPage,
    TaskStatus,
    TimeIn,
    TimeOut,
    TimeUpdate,
)

SlaState = Literal["breached", "due_soon", "on_track"]
STAFF_READ = requires("work:read", roles=TENANT_STAFF)
STAFF_WRITE = requires("work:write", roles=TENANT_STAFF)
STAFF_INBOX = requires("work:read", roles=TENANT_STAFF, tenant_bound=False)
STAFF_CLAIM = requires("work:write", roles=TENANT_STAFF, tenant_bound=False)
TASKS = "/v1/tenants/{slug:str}/work/tasks"


def task_out(
    task: Task,
    slug: str,
    comments: list[TaskComment] | None = None,
    entries: list[TimeOut] | None = None,
) -> TaskOut:
    return TaskOut(
        id=str(task.id),
        request_id=str(task.request_id),
        tenant=slug,
        title=task.title,
        service=task.service_key,
        status=task.status,
        priority=task.priority,
        skills=list(task.skills),
        checklist=list(task.checklist),
        review_required=task.review_required,
        claimed_by=service.id_text(task.claimed_by),
        lease_until=task.lease_until,
        completed_by=service.id_text(task.completed_by),
        reviewed_by=service.id_text(task.reviewed_by),
        result=task.result,
        response_due_at=task.response_due_at,
        resolution_due_at=task.resolution_due_at,
        responded_at=task.responded_at,
        resolved_at=task.resolved_at,
        paused=task.paused_at is not None,
        response_breached=task.response_breached_at is not None,
        resolution_breached=task.resolution_breached_at is not None,
        created_at=task.created_at,
        updated_at=task.updated_at,
        comments=None if comments is None else [comment_out(c) for c in comments],
        time_entries=entries,
    )


def _staff(principal: Principal) -> uuid.UUID:
    assert principal.user_id is not None  # staff roles are people
    return principal.user_id


# --- inbox ----------------------------------------------------------------------------------


@get(
    "/v1/staff/inbox",
    guards=[STAFF_INBOX],
    tags=["work"],
    summary="Claimable tasks across your tenants and skills, most urgent SLA first",
    operation_id="listInbox",
)
async def inbox(
    principal: NamedDependency[Principal],
    state: State,
    cursor: Annotated[str | None, Parameter(max_length=200)] = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 50,
    escalated: FromQuery[bool] = False,
    firm: Annotated[
        str | None, QueryParameter(name="tenant", max_length=63, description="Only this firm")
    ] = None,
    service: Annotated[
        str | None, Parameter(max_length=64, description="Only this service")
    ] = None,
    sla: Annotated[
        SlaState | None,
        Parameter(description="breached (escalated), due_soon (within 4 h) or on_track"),
    ] = None,
) -> InboxPage:
    viewer = await dispatch.viewer_of(state.db, principal)
    only = queue.InboxFilter(firm, service, "breached" if escalated else sla)
    async with state.db.autocommit() as conn:
        rows, following = await queue.inbox(conn, viewer, limit=limit, cursor=cursor, only=only)
    return InboxPage(items=[_inbox_item(r) for r in rows], next_cursor=following)


def _inbox_item(r: Any) -> InboxItem:
    """A row of the queue index; urgency 'infinity' (paused or met) shows as no due time."""
    return InboxItem(
        task_id=str(r.task_id),
        tenant=r.slug,
        service=r.service_key,
        status=r.status,
        priority=r.priority,
        due_at=None if r.urgency.year >= 9999 else r.urgency,
        response_due_at=r.response_due_at,
        resolution_due_at=r.resolution_due_at,
        claimed_by=service.id_text(r.claimed_by),
        lease_until=r.lease_until,
        escalated=r.escalated,
        created_at=r.created_at,
    )


@post(
    "/v1/staff/inbox/claim",
    guards=[STAFF_CLAIM],
    tags=["work"],
    status_code=200,
    summary="Claim the most urgent task you may take (204 when there is none)",
    operation_id="claimNextTask",
)
async def claim_next(
    data: JSONBody[ClaimIn], principal: NamedDependency[Principal], state: State
) -> Response[TaskOut | None]:
    claimed = await claims.claim_next(state.db, principal, timedelta(minutes=data.lease_minutes))
    if claimed is not None:
        return Response(task_out(*claimed))
    return Response(None, status_code=204)


# --- one tenant's tasks ---------------------------------------------------------------------


@get(
    TASKS,
    guards=[STAFF_READ],
    tags=["work"],
    summary="The tenant's tasks (cursor pagination)",
    operation_id="listTasks",
)
async def list_tasks(
    tenant: NamedDependency[TenantContext],
    tenant_db: NamedDependency[AsyncSession],
    status: FromQuery[TaskStatus | None] = None,
    cursor: Annotated[str | None, Parameter(max_length=100)] = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 50,
) -> TaskPage:
    query = select(Task).order_by(Task.id.desc()).limit(limit)
    after = uuid_cursor(cursor)
    if after is not None:
        query = query.where(Task.id < after)
    if status is not None:
        query = query.where(Task.status == status)
    rows = list(await tenant_db.scalars(query))
    following = str(rows[-1].id) if len(rows) == limit else None
    return TaskPage(items=[task_out(t, tenant.slug) for t in rows], next_cursor=following)


@get(
    TASKS + "/{task_id:uuid}",
    guards=[STAFF_READ],
    tags=["work"],
    summary="One task with its notes, comments and time",
    operation_id="getTask",
)
async def show_task(
    task_id: FromPath[uuid.UUID],
    tenant: NamedDependency[TenantContext],
    tenant_db: NamedDependency[AsyncSession],
) -> TaskOut:
    task = await service.get_task(tenant_db, task_id, lock=False)
    return await _detailed(tenant_db, task, tenant.slug)


async def _detailed(session: AsyncSession, task: Task, slug: str) -> TaskOut:
    comments = await session.scalars(
        select(TaskComment)
        .where(TaskComment.request_id == task.request_id)
        .order_by(TaskComment.id)
    )
    entries = [timesheet.time_out(e) for e in await timesheet.entries_of(session, task.id)]
    return task_out(task, slug, list(comments), entries)


async def _change_time(
    task_id: uuid.UUID,
    entry_id: uuid.UUID,
    data: TimeUpdate | None,
    tenant: TenantContext,
    principal: Principal,
    session: AsyncSession,
    state: State,
) -> TimeOut:
    task = await service.get_task(session, task_id)
    entry = await timesheet.get_entry(session, task, entry_id)
    async with state.db.autocommit() as conn:
        invoiced = await billing.period_invoiced(conn, tenant.tenant_id, entry.worked_at)
    minutes = timesheet.minutes_of(data.minutes) if data and data.minutes is not None else None
    changed = await timesheet.change_time(
        session, tenant, principal, task, entry, staff_id=_staff(principal),
        is_admin=principal.role == "staff_admin", minutes=minutes,
        note=data.note if data else None, delete=data is None, period_invoiced=invoiced,
    )  # fmt: skip
    return timesheet.time_out(changed)


class TaskActions(Controller):
    """What staff do to one task; each needs `work:write` and a staff role."""

    path = TASKS + "/{task_id:uuid}"
    guards = [STAFF_WRITE]
    tags = ["work"]

    @post(
        "/claim",
        status_code=200,
        summary="Claim it (to work or review) with a lease; a 409 names who holds it",
        operation_id="claimTask",
    )
    async def claim_task(
        self,
        task_id: FromPath[uuid.UUID],
        data: JSONBody[ClaimIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        state: State,
    ) -> TaskOut:
        viewer = await dispatch.viewer_of(state.db, principal)
        task = await service.get_task(tenant_db, task_id)
        if task.claimed_by != viewer.user_id:  # extending one's own claim needs no capacity
            dispatch.check_capacity(await dispatch.holding_now(tenant_db, viewer))
            dispatch.check_skills(viewer, task)
        lease = timedelta(minutes=data.lease_minutes)
        await service.claim(tenant_db, tenant, principal, viewer.user_id, task, lease)
        return task_out(task, tenant.slug)

    @post(
        "/heartbeat", status_code=200, summary="Extend your lease", operation_id="extendTaskLease"
    )
    async def heartbeat(
        self,
        task_id: FromPath[uuid.UUID],
        data: JSONBody[ClaimIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> TaskOut:
        task = await service.get_task(tenant_db, task_id)
        lease = timedelta(minutes=data.lease_minutes)
        await service.heartbeat(tenant_db, tenant, _staff(principal), task, lease)
        return task_out(task, tenant.slug)

    @post(
        "/release",
        status_code=200,
        summary="Give the task back to the queue",
        operation_id="releaseTask",
    )
    async def release(
        self,
        task_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> TaskOut:
        task = await service.get_task(tenant_db, task_id)
        await service.release(tenant_db, tenant, principal, _staff(principal), task)
        return task_out(task, tenant.slug)

    @post(
        "/comments",
        status_code=201,
        summary="An internal note, or a comment the client sees (client_visible)",
        operation_id="addTaskComment",
    )
    async def add_comment(
        self,
        task_id: FromPath[uuid.UUID],
        data: JSONBody[NoteIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> CommentOut:
        task = await service.get_task(tenant_db, task_id)
        note = await service.comment(
            tenant_db, tenant, principal, task, data.body, data.client_visible
        )
        return comment_out(note)

    @post(
        "/questions",
        status_code=200,
        summary="Ask the client a question: the SLA pauses until they answer",
        operation_id="askTaskQuestion",
    )
    async def ask(
        self,
        task_id: FromPath[uuid.UUID],
        data: JSONBody[NoteIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> TaskOut:
        task = await service.get_task(tenant_db, task_id)
        await service.ask(tenant_db, tenant, principal, _staff(principal), task, data.body)
        return task_out(task, tenant.slug)

    @post(
        "/complete",
        status_code=200,
        summary="Complete with a result (to review first, if the service requires it)",
        operation_id="completeTask",
    )
    async def complete(
        self,
        task_id: FromPath[uuid.UUID],
        data: JSONBody[CompleteIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> TaskOut:
        task = await service.get_task(tenant_db, task_id)
        await service.complete(tenant_db, tenant, principal, _staff(principal), task, data.result)
        return task_out(task, tenant.slug)

    @post(
        "/approve",
        status_code=200,
        summary="Approve a reviewed task (never your own): the client gets the result",
        operation_id="approveTask",
    )
    async def approve(
        self,
        task_id: FromPath[uuid.UUID],
        data: JSONBody[ReviewIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> TaskOut:
        task = await service.get_task(tenant_db, task_id)
        await service.approve(tenant_db, tenant, principal, _staff(principal), task, data.note)
        return task_out(task, tenant.slug)

    @post(
        "/send-back",
        status_code=200,
        summary="Send a reviewed task back to the queue with the reason",
        operation_id="sendBackTask",
    )
    async def send_back(
        self,
        task_id: FromPath[uuid.UUID],
        data: JSONBody[SendBackIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> TaskOut:
        task = await service.get_task(tenant_db, task_id)
        await service.send_back(tenant_db, tenant, principal, _staff(principal), task, data.reason)
        return task_out(task, tenant.slug)

    @post(
        "/time",
        status_code=201,
        summary="Log minutes worked (billed as staff_minutes, rounded up per entry)",
        operation_id="logTaskTime",
    )
    async def log_time(
        self,
        task_id: FromPath[uuid.UUID],
        data: JSONBody[TimeIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        state: State,
    ) -> TimeOut:
        task = await service.get_task(tenant_db, task_id)
        worked_at = data.worked_at or service.now_utc()
        async with state.db.autocommit() as conn:
            invoiced = await billing.period_invoiced(conn, tenant.tenant_id, worked_at)
        minutes = timesheet.minutes_of(data.minutes)
        entry = await timesheet.log_time(
            tenant_db, tenant, principal, _staff(principal), task, minutes=minutes,
            worked_at=worked_at, note=data.note, period_invoiced=invoiced,
        )  # fmt: skip
        return timesheet.time_out(entry)

    @patch(
        "/time/{entry_id:uuid}",
        summary="Correct a time entry (409 once its period is invoiced)",
        operation_id="updateTimeEntry",
    )
    async def change_time(
        self,
        task_id: FromPath[uuid.UUID],
        entry_id: FromPath[uuid.UUID],
        data: JSONBody[TimeUpdate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        state: State,
    ) -> TimeOut:
        return await _change_time(task_id, entry_id, data, tenant, principal, tenant_db, state)

    @delete(
        "/time/{entry_id:uuid}",
        status_code=200,
        summary="Delete a time entry (409 once its period is invoiced)",
        operation_id="deleteTimeEntry",
    )
    async def delete_time(
        self,
        task_id: FromPath[uuid.UUID],
        entry_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        state: State,
    ) -> TimeOut:
        return await _change_time(task_id, entry_id, None, tenant, principal, tenant_db, state)


route_handlers: list[ControllerRouterHandler] = [
    inbox,
    claim_next,
    list_tasks,
    show_task,
    TaskActions,
]
