"""Requests and tasks: every transition, whatever the route or job that asks for it.

Each function runs in the tenant's transaction (its role, its schema) and does the whole
transition there: the task, the queue index row, the audit event, the tenant event (so
client firms get webhooks) and any usage to bill. A refusal raises a problem and changes
nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from jsonschema import Draft202012Validator
from referencing.exceptions import Unresolvable
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import Actor, actor_of
from bpo.billing.quotas import hold_quota, reserve_usage
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext
from bpo.webhooks.service import record_event, record_events
from bpo.work import queue, sla
from bpo.work.calendar import BusinessCalendar, CalendarError
from bpo.work.catalog import get_service, goal_minutes
from bpo.work.models import Service, Task, TaskComment, WorkCalendar, WorkRequest

Who = str | Actor
ERRORS_SHOWN = 20


_R = TypeVar("_R")


def now_utc() -> datetime:
    return datetime.now(UTC)


async def calendar_of(session: AsyncSession) -> BusinessCalendar:
    row = await session.get(WorkCalendar, 1)
    return BusinessCalendar.from_settings(row.settings) if row else BusinessCalendar()


async def _transition(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    action: str,
    task: Task,
    before: dict[str, Any],
    *,
    request: bool = True,
    **extra: Any,
) -> None:
    """What every task transition ends with: the index, the request's status (unless the
    caller refreshes it after several tasks), the event, and the audit chain last: its head
    row is the tenant's one serialising lock, held from that append to the commit."""
    task.updated_at = now_utc()
    await session.flush()
    await queue.project(session, tenant.tenant_id, task)
    events = [await _refresh_request(session, task.request_id)] if request else []
    after = {"status": task.status, "claimed_by": id_text(task.claimed_by)} | extra
    data = {"task_id": str(task.id), "request_id": str(task.request_id)} | after
    await record_events(session, tenant, [e for e in events if e] + [(action, data)])
    await audit.record(
        session, tenant.tenant_id, actor=who, action=action, target=f"task:{task.id}",
        before=before, after=after,
    )  # fmt: skip


def id_text(value: object) -> str | None:
    return None if value is None else str(value)


def _state(task: Task) -> dict[str, Any]:
    return {"status": task.status, "claimed_by": id_text(task.claimed_by)}


# --- requests ---------------------------------------------------------------------------


def check_payload(service: Service, payload: dict[str, Any]) -> None:
    """422 with the JSON Schema errors, each with a JSON Pointer into the payload."""
    validator = Draft202012Validator(service.form)
    try:
        errors = sorted(validator.iter_errors(payload), key=lambda e: [str(p) for p in e.path])
    except RecursionError:
        raise Problem(422, "validation-error", "the payload is nested too deeply") from None
    except Unresolvable as exc:  # a form saved before refs were checked; the provider's fix
        raise Problem(
            422, "validation-error", f"the form of {service.key!r} cannot be applied: {exc}"
        ) from None
    if not errors:
        return
    listed = [
        {
            "pointer": "#/payload" + "".join(f"/{_escape(p)}" for p in e.absolute_path),
            "detail": e.message,
            "schema_path": "/".join(str(p) for p in e.absolute_schema_path),
        }
        for e in errors[:ERRORS_SHOWN]
    ]
    raise Problem(
        422,
        "validation-error",
        f"the payload does not satisfy the form of {service.key!r}: "
        + "; ".join(f"{e['pointer']}: {e['detail']}" for e in listed[:3]),
        errors=listed,
    )


def _escape(part: object) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return str(part).replace("~", "~0").replace("/", "~1")


async def create_request(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    service: Service,
    *,
    payload: dict[str, Any],
    priority: int,
    title: str | None,
    attachments: Sequence[str],
) -> tuple[WorkRequest, list[Task]]:
    if not service.active:
        raise Problem(422, "validation-error", f"service {service.key!r} is not offered now")
    check_payload(service, payload)
    if service.bill_per_task:  # the plan's quota holds what the tasks will bill when done
        steps = len(service.steps or [service.name])
        await hold_quota(session, tenant, "tasks_completed", steps, held=lambda: _open(session))
    now = now_utc()
    request = WorkRequest(
        service_key=service.key,
        service_version=service.version,
        title=title or service.name,
        payload=payload,
        priority=priority,
        attachments=list(attachments),
        requested_by=actor_of(who),
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    await session.flush()
    calendar = await calendar_of(session)
    tasks = [
        _new_task(request, service, step, name, calendar, now)
        for step, name in enumerate(service.steps or [request.title], start=1)
    ]
    session.add_all(tasks)
    await session.flush()
    for task in tasks:
        await queue.project(session, tenant.tenant_id, task)
    await audit.record(
        session, tenant.tenant_id, actor=who, action="work.request.created",
        target=f"request:{request.id}", after={"service": service.key, "priority": priority},
    )  # fmt: skip
    await record_event(session, tenant, "work.request.created", _request_event(request))
    return request, tasks


async def _open(session: AsyncSession) -> int:
    """Tasks accepted and not yet done or canceled, each to be billed once done."""
    query = select(func.count()).where(Task.bill_per_task, Task.status.not_in(("done", "canceled")))
    return int(await session.scalar(query) or 0)


def on_calendar(compute: Callable[..., _R], *args: Any) -> _R:
    """Run a clock computation; a calendar that cannot hold the goal is the firm's to fix."""
    try:
        return compute(*args)
    except CalendarError as exc:
        raise Problem(
            422,
            "validation-error",
            f"the SLA goal cannot be scheduled on the firm's business calendar: {exc}",
        ) from None


def _new_task(
    request: WorkRequest,
    service: Service,
    step: int,
    name: str,
    calendar: BusinessCalendar,
    now: datetime,
) -> Task:
    task = Task(
        request_id=request.id,
        step=step,
        title=name[:200],
        service_key=service.key,
        skills=list(service.skills),
        checklist=list(service.checklist),
        priority=request.priority,
        review_required=service.review_required,
        bill_per_task=service.bill_per_task,
        bill_per_minute=service.bill_per_minute,
        status="open",
        response_goal_min=goal_minutes(service, request.priority, "response"),
        resolution_goal_min=goal_minutes(service, request.priority, "resolution"),
        created_at=now,
        updated_at=now,
    )
    on_calendar(sla.start_clocks, task, calendar, now, service.warn_fraction)
    return task


def _request_event(request: WorkRequest) -> dict[str, Any]:
    return {
        "request_id": str(request.id),
        "service": request.service_key,
        "status": request.status,
        "priority": request.priority,
    }


async def get_request(
    session: AsyncSession, request_id: uuid.UUID, lock: bool = False
) -> WorkRequest:
    query = select(WorkRequest).where(WorkRequest.id == request_id)
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise Problem(404, "not-found", f"no request {request_id}")
    return found


async def tasks_of(session: AsyncSession, request_id: uuid.UUID, lock: bool = False) -> list[Task]:
    """A request's tasks; `lock`: for update, in id order. Every transaction locks a task
    before its request (and the index row, then the audit head, after), so none deadlock."""
    query = select(Task).where(Task.request_id == request_id)
    if lock:
        return list(await session.scalars(query.order_by(Task.id).with_for_update()))
    return list(await session.scalars(query.order_by(Task.step, Task.id)))


def request_status(task_statuses: Sequence[str]) -> str:
    statuses = set(task_statuses)
    if statuses <= {"canceled"}:
        return "canceled"
    if statuses <= {"done", "canceled"}:
        return "completed"
    if "waiting_on_client" in statuses:
        return "waiting_on_client"
    if statuses & {"awaiting_review", "in_review"} and not statuses & {"open", "in_progress"}:
        return "in_review"
    if statuses & {"in_progress", "done", "awaiting_review", "in_review"}:
        return "in_progress"
    return "open"


Event = tuple[str, dict[str, Any]]  # a tenant event: type and data


async def _announce(session: AsyncSession, tenant: TenantContext, event: Event | None) -> None:
    if event is not None:
        await record_event(session, tenant, *event)


_REQUEST_AND_TASKS = (
    select(
        WorkRequest.status,
        select(func.array_agg(Task.status))
        .where(Task.request_id == WorkRequest.id)
        .scalar_subquery(),
    )
    .where(WorkRequest.id == bindparam("request_id"))
    .with_for_update(of=WorkRequest)
)


async def _refresh_request(session: AsyncSession, request_id: uuid.UUID) -> Event | None:
    """Derive the request's status from its tasks under the request's lock; the event to
    announce when it changed. One statement when nothing changes (the common case)."""
    found = await session.execute(_REQUEST_AND_TASKS, {"request_id": request_id})
    current, statuses = found.one()
    status = request_status(statuses)
    if status == current:
        return None
    values: dict[str, Any] = {"status": status, "updated_at": now_utc()}
    if status == "completed":
        values["closed_at"] = values["updated_at"]
        done = [t for t in await tasks_of(session, request_id) if t.status == "done"]
        values["result"] = (
            done[0].result
            if len(done) == 1
            else [{"step": t.step, "title": t.title, "result": t.result} for t in done]
        )
    changed = await session.execute(
        update(WorkRequest)
        .where(WorkRequest.id == request_id)
        .values(values)
        .returning(WorkRequest.service_key, WorkRequest.priority)
        .execution_options(synchronize_session=False)
    )
    service_key, priority = changed.one()
    return request_event(request_id, status, service_key, priority)


def request_event(
    request_id: uuid.UUID, status: str, service_key: str, priority: int
) -> Event | None:
    """What firms hear when a request's status changes (not every status is announced)."""
    if status not in ("completed", "waiting_on_client", "in_review", "in_progress"):
        return None
    data = {"request_id": str(request_id), "service": service_key, "status": status,
            "priority": priority}  # fmt: skip
    return f"work.request.{status}", data


async def answer(
    session: AsyncSession, tenant: TenantContext, who: Who, request_id: uuid.UUID, body: str
) -> WorkRequest:
    """The client answers a question: waiting tasks go back to the queue, clocks resume."""
    tasks = await tasks_of(session, request_id, lock=True)
    request = await get_request(session, request_id, lock=True)
    waiting = [t for t in tasks if t.status == "waiting_on_client"]
    if not waiting:
        raise Problem(409, "conflict", f"request {request_id} has no open question to answer")
    session.add(
        TaskComment(request_id=request.id, task_id=None, kind="answer", client_visible=True,
                    author=actor_of(who), body=body)
    )  # fmt: skip
    calendar, now = await calendar_of(session), now_utc()
    for task in waiting:
        before = _state(task)
        on_calendar(sla.resume, task, calendar, now)
        task.status = "open"
        await _transition(session, tenant, who, "work.task.answered", task, before, request=False)
    await _announce(session, tenant, await _refresh_request(session, request_id))
    await session.refresh(request)
    return request


async def cancel(
    session: AsyncSession, tenant: TenantContext, who: Who, request_id: uuid.UUID, reason: str
) -> WorkRequest:
    tasks = await tasks_of(session, request_id, lock=True)
    request = await get_request(session, request_id, lock=True)
    if request.status in ("completed", "canceled"):
        raise Problem(409, "conflict", f"request {request_id} is already {request.status}")
    for task in tasks:
        if task.status not in ("done", "canceled"):
            before = _state(task)
            task.status, task.claimed_by, task.lease_until = "canceled", None, None
            await _transition(
                session, tenant, who, "work.task.canceled", task, before, request=False
            )
    request.cancel_reason = reason or None
    await _announce(session, tenant, await _refresh_request(session, request_id))
    await session.refresh(request)
    if request.status == "canceled":
        request.closed_at = now_utc()
        await record_event(session, tenant, "work.request.canceled", _request_event(request))
    return request


# --- tasks ------------------------------------------------------------------------------


async def get_task(session: AsyncSession, task_id: uuid.UUID, lock: bool = True) -> Task:
    query = select(Task).where(Task.id == task_id)
    task = await session.scalar(query.with_for_update() if lock else query)
    if task is None:
        raise Problem(404, "not-found", f"no task {task_id}")
    return task


def _held(task: Task, now: datetime) -> bool:
    return task.lease_until is not None and task.lease_until > now


def _conflict_held(task: Task) -> Problem:
    assert task.lease_until is not None
    return Problem(
        409,
        "task-claimed",
        f"task {task.id} is held by {task.claimed_by} until {task.lease_until.isoformat()}",
        held_by=str(task.claimed_by),
        lease_until=task.lease_until.isoformat(),
    )


def _four_eyes(task: Task) -> Problem:
    return Problem(
        403,
        "four-eyes",
        f"you completed task {task.id}; another staff member must review it",
    )


async def claim(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    staff_id: uuid.UUID,
    task: Task,
    lease: timedelta,
) -> Task:
    """Take the task (to work on it, or to review it) with a lease."""
    now = now_utc()
    if task.status in ("in_progress", "in_review") and _held(task, now):
        if task.claimed_by != staff_id:
            raise _conflict_held(task)
        return await heartbeat(session, tenant, staff_id, task, lease)  # one's own: extend
    before = take(task, staff_id, lease, now)
    assert task.lease_until is not None
    await _transition(session, tenant, who, "work.task.claimed", task, before,
                      lease_until=task.lease_until.isoformat())  # fmt: skip
    return task


def take(task: Task, staff_id: uuid.UUID, lease: timedelta, now: datetime) -> dict[str, Any]:
    """The claim itself, on a locked task (to work on it, or to review it): the state
    before. The first claim meets the response goal."""
    if task.status in ("awaiting_review", "in_review"):
        if task.completed_by == staff_id:
            raise _four_eyes(task)
        status = "in_review"
    elif task.status in ("open", "in_progress"):
        status = "in_progress"
    else:
        raise Problem(409, "conflict", f"task {task.id} is {task.status}; it cannot be claimed")
    before = _state(task)
    task.status, task.claimed_by, task.lease_until = status, staff_id, now + lease
    task.updated_at = now
    sla.meet(task, "response", now)
    return before


def _require_lease(task: Task, staff_id: uuid.UUID, action: str) -> None:
    now = now_utc()
    if task.claimed_by == staff_id and _held(task, now):
        return
    if task.claimed_by is not None and _held(task, now):
        raise _conflict_held(task)
    raise Problem(
        409,
        "lease-required",
        f"{action} needs a claim on task {task.id} (status {task.status}); claim it first",
    )


async def heartbeat(
    session: AsyncSession, tenant: TenantContext, staff_id: uuid.UUID, task: Task, lease: timedelta
) -> Task:
    _require_lease(task, staff_id, "extending a lease")
    task.lease_until = now_utc() + lease
    await session.flush()
    await queue.project(session, tenant.tenant_id, task)
    return task


async def release(
    session: AsyncSession, tenant: TenantContext, who: Who, staff_id: uuid.UUID, task: Task
) -> Task:
    _require_lease(task, staff_id, "releasing")
    before = _state(task)
    task.status = "open" if task.status == "in_progress" else "awaiting_review"
    task.claimed_by, task.lease_until = None, None
    await _transition(session, tenant, who, "work.task.released", task, before)
    return task


async def return_expired(
    session: AsyncSession, tenant: TenantContext, task_ids: Sequence[uuid.UUID]
) -> int:
    """The lease job: tasks whose lease ran out go back to the queue."""
    now, returned = now_utc(), 0
    tasks = await session.scalars(
        select(Task).where(Task.id.in_(task_ids)).with_for_update(skip_locked=True)
    )
    for task in tasks:
        if task.status not in ("in_progress", "in_review") or _held(task, now):
            continue
        before = _state(task)
        task.status = "open" if task.status == "in_progress" else "awaiting_review"
        task.claimed_by, task.lease_until = None, None
        await _transition(session, tenant, "system:lease-expiry", "work.task.released", task,
                          before, reason="lease_expired")  # fmt: skip
        returned += 1
    return returned


async def comment(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    task: Task,
    body: str,
    client_visible: bool,
) -> TaskComment:
    """An internal note, or a comment the client sees (and gets a webhook for)."""
    if task.status == "canceled":
        raise Problem(409, "conflict", f"task {task.id} is canceled")
    note = TaskComment(
        request_id=task.request_id, task_id=task.id, kind="comment" if client_visible else "note",
        client_visible=client_visible, author=actor_of(who), body=body,
    )  # fmt: skip
    session.add(note)
    await session.flush()
    if client_visible:
        data = {"request_id": str(task.request_id), "comment_id": str(note.id)}
        await record_event(session, tenant, "work.request.commented", data)
    return note


async def ask(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    staff_id: uuid.UUID,
    task: Task,
    body: str,
) -> Task:
    """Ask the client a question: the SLA pauses and the task waits off the queue."""
    _require_lease(task, staff_id, "asking the client")
    if task.status != "in_progress":
        raise Problem(409, "conflict", "questions are asked while working a task, not reviewing")
    session.add(
        TaskComment(request_id=task.request_id, task_id=task.id, kind="question",
                    client_visible=True, author=actor_of(who), body=body)
    )  # fmt: skip
    before = _state(task)
    sla.pause(task, now_utc())
    task.status, task.claimed_by, task.lease_until = "waiting_on_client", None, None
    await _transition(session, tenant, who, "work.task.question_asked", task, before)
    return task


async def complete(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    staff_id: uuid.UUID,
    task: Task,
    result: Any,
) -> Task:
    _require_lease(task, staff_id, "completing")
    if task.status != "in_progress":
        raise Problem(409, "conflict", f"task {task.id} is {task.status}; approve or send it back")
    before = _state(task)
    task.result, task.completed_by = result, staff_id
    task.claimed_by, task.lease_until = None, None
    if task.review_required:
        task.status = "awaiting_review"
        await _transition(session, tenant, who, "work.task.completed", task, before)
        return task
    return await _resolve(session, tenant, who, task, before, "work.task.completed")


async def approve(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    staff_id: uuid.UUID,
    task: Task,
    note: str,
) -> Task:
    if task.completed_by == staff_id:
        raise _four_eyes(task)
    _require_lease(task, staff_id, "approving")
    if task.status != "in_review":
        raise Problem(409, "conflict", f"task {task.id} is {task.status}, not in review")
    before = _state(task)
    task.reviewed_by, task.claimed_by, task.lease_until = staff_id, None, None
    if note:
        session.add(TaskComment(request_id=task.request_id, task_id=task.id, kind="review",
                                client_visible=False, author=actor_of(who), body=note))  # fmt: skip
    return await _resolve(session, tenant, who, task, before, "work.task.approved")


async def send_back(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    staff_id: uuid.UUID,
    task: Task,
    reason: str,
) -> Task:
    if task.completed_by == staff_id:
        raise _four_eyes(task)
    _require_lease(task, staff_id, "sending back")
    if task.status != "in_review":
        raise Problem(409, "conflict", f"task {task.id} is {task.status}, not in review")
    before = _state(task)
    session.add(TaskComment(request_id=task.request_id, task_id=task.id, kind="review",
                            client_visible=False, author=actor_of(who), body=reason))  # fmt: skip
    task.status, task.claimed_by, task.lease_until = "open", None, None
    await _transition(session, tenant, who, "work.task.sent_back", task, before)
    return task


async def _resolve(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    task: Task,
    before: dict[str, Any],
    action: str,
) -> Task:
    """The result reaches the client: resolution met or not, the task billed once."""
    now = now_utc()
    task.status = "done"
    sla.meet(task, "resolution", now)
    if task.bill_per_task:
        key = f"task:{task.id}"  # held since requested: never refused here
        await reserve_usage(session, tenant, "tasks_completed", 1, key, now, held=True)
    await _transition(session, tenant, who, action, task, before)
    return task


async def request_service(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    key: str,
    payload: dict[str, Any],
    title: str,
) -> WorkRequest:
    """A request for the catalog's service `key`, opened by another domain (settlements
    open a bank reconciliation from their exceptions) at the default priority."""
    service = await get_service(session, key)
    request, _ = await create_request(
        session, tenant, who, service, payload=payload, priority=50, title=title, attachments=()
    )
    return request
