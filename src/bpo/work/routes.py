"""Work APIs of the catalog and of client firms: services, staff profiles, requests, the
business calendar and reports. Staff routes on tasks are in `task_routes`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Request, Response, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import PLATFORM_CHAIN
from bpo.billing.service import month_of
from bpo.core.errors import Problem
from bpo.core.etags import check_if_match, etag
from bpo.core.pagination import uuid_cursor
from bpo.core.tenancy import TenantContext, tenant_connection
from bpo.identity.guards import STAFF_ADMIN, TENANT_ADMINS, Principal, requires
from bpo.work import catalog, clocks, reports, service
from bpo.work.calendar import BusinessCalendar, CalendarError
from bpo.work.models import Task, TaskComment, WorkCalendar, WorkRequest
from bpo.work.schemas import (
    AnswerIn,
    CalendarIn,
    CancelIn,
    CommentOut,
    ReportOut,
    RequestIn,
    RequestOut,
    RequestPage,
    RequestStatus,
    ServiceIn,
    ServiceOut,
    ServiceUpdate,
    StaffProfileIn,
    StaffProfileOut,
    TaskSummary,
)

ANY_CALLER = requires(tenant_bound=False)
READ_WORK = requires("work:read")
WRITE_WORK = requires("work:write")
MAX_PAGE = 100


# --- the catalog --------------------------------------------------------------------------


@get(
    "/v1/services",
    guards=[ANY_CALLER],
    tags=["work"],
    summary="The provider's service catalog",
    operation_id="listServices",
)
async def list_services(
    db_session: NamedDependency[AsyncSession],
    include_inactive: FromQuery[bool] = False,
) -> list[ServiceOut]:
    services = await catalog.list_services(db_session, include_inactive)
    return [catalog.service_out(s) for s in services]


@get(
    "/v1/services/{key:str}",
    guards=[ANY_CALLER],
    tags=["work"],
    summary="One service",
    operation_id="getService",
)
async def show_service(
    key: FromPath[str], db_session: NamedDependency[AsyncSession]
) -> Response[ServiceOut]:
    found = await catalog.get_service(db_session, key)
    return Response(catalog.service_out(found), headers={"ETag": etag(found.version)})


@post(
    "/v1/services",
    guards=[STAFF_ADMIN],
    tags=["work"],
    status_code=201,
    summary="Add a service (form: a JSON Schema; SLA goals per priority band, business hours)",
    operation_id="createService",
)
async def create_service(
    data: JSONBody[ServiceIn],
    principal: NamedDependency[Principal],
    db_session: NamedDependency[AsyncSession],
) -> Response[ServiceOut]:
    created = await catalog.create_service(db_session, data)
    out = catalog.service_out(created)
    await audit.record(db_session, PLATFORM_CHAIN, actor=principal, action="service.created",
                       target=f"service:{created.key}", after=out)  # fmt: skip
    return Response(out, status_code=201, headers={"ETag": etag(created.version)})


@patch(
    "/v1/services/{key:str}",
    guards=[STAFF_ADMIN],
    tags=["work"],
    summary="Change a service (If-Match guards the change; open requests keep their terms)",
    operation_id="updateService",
)
async def update_service(
    key: FromPath[str],
    request: Request[Any, Any, Any],
    data: JSONBody[ServiceUpdate],
    principal: NamedDependency[Principal],
    db_session: NamedDependency[AsyncSession],
) -> Response[ServiceOut]:
    found = await catalog.get_service(db_session, key, lock=True)
    check_if_match(request, found.version, "service")
    before = catalog.service_out(found)
    changed = await catalog.update_service(db_session, found, data)
    out = catalog.service_out(changed)
    await audit.record(db_session, PLATFORM_CHAIN, actor=principal, action="service.updated",
                       target=f"service:{key}", before=before, after=out)  # fmt: skip
    return Response(out, headers={"ETag": etag(changed.version)})


@put(
    "/v1/staff/members/{user_id:uuid}/work-profile",
    guards=[STAFF_ADMIN],
    tags=["work"],
    summary="A staff member's skills and capacity (tasks held at once)",
    operation_id="setWorkProfile",
)
async def set_staff_profile(
    user_id: FromPath[uuid.UUID],
    data: JSONBody[StaffProfileIn],
    principal: NamedDependency[Principal],
    db_session: NamedDependency[AsyncSession],
) -> StaffProfileOut:
    profile = await catalog.set_staff_profile(db_session, user_id, data)
    out = StaffProfileOut(str(user_id), list(profile.skills), profile.capacity)
    await audit.record(db_session, PLATFORM_CHAIN, actor=principal, action="staff.profile.set",
                       target=f"user:{user_id}", after=out)  # fmt: skip
    return out


@get(
    "/v1/staff/members/{user_id:uuid}/work-profile",
    guards=[STAFF_ADMIN],
    tags=["work"],
    summary="A staff member's skills and capacity",
    operation_id="getWorkProfile",
)
async def show_staff_profile(
    user_id: FromPath[uuid.UUID], db_session: NamedDependency[AsyncSession]
) -> StaffProfileOut:
    profile = await catalog.staff_profile(db_session, user_id)
    if profile is None:
        return StaffProfileOut(str(user_id), None, 10)
    return StaffProfileOut(str(user_id), list(profile.skills), profile.capacity)


# --- requests -----------------------------------------------------------------------------


def comment_out(c: TaskComment) -> CommentOut:
    return CommentOut(
        id=str(c.id),
        kind=c.kind,
        author=c.author,
        body=c.body,
        client_visible=c.client_visible,
        task_id=str(c.task_id) if c.task_id else None,
        created_at=c.created_at,
    )


def request_out(
    r: WorkRequest, tasks: list[Task] | None = None, comments: list[TaskComment] | None = None
) -> RequestOut:
    return RequestOut(
        id=str(r.id),
        service=r.service_key,
        title=r.title,
        status=r.status,
        priority=r.priority,
        payload=r.payload,
        attachments=list(r.attachments),
        result=r.result if r.status == "completed" else None,
        requested_by=r.requested_by,
        created_at=r.created_at,
        updated_at=r.updated_at,
        closed_at=r.closed_at,
        tasks=None
        if tasks is None
        else [
            TaskSummary(str(t.id), t.title, t.status, t.response_due_at, t.resolution_due_at)
            for t in tasks
        ],
        comments=None if comments is None else [comment_out(c) for c in comments],
    )


async def _full(session: AsyncSession, r: WorkRequest) -> RequestOut:
    """The request as the client sees it: tasks, and only the comments addressed to it."""
    comments = await session.scalars(
        select(TaskComment)
        .where(TaskComment.request_id == r.id, TaskComment.client_visible)
        .order_by(TaskComment.id)
    )
    return request_out(r, await service.tasks_of(session, r.id), list(comments))


@post(
    "/v1/tenants/{slug:str}/work/requests",
    guards=[WRITE_WORK],
    tags=["work"],
    status_code=201,
    summary="Ask for work: a service, a payload its form accepts, a priority (0-100)",
    operation_id="createWorkRequest",
)
async def create_request(
    data: JSONBody[RequestIn],
    tenant: NamedDependency[TenantContext],
    principal: NamedDependency[Principal],
    tenant_db: NamedDependency[AsyncSession],
) -> RequestOut:
    offered = await catalog.get_service(tenant_db, data.service)
    created, _ = await service.create_request(
        tenant_db, tenant, principal, offered, payload=data.payload, priority=data.priority,
        title=data.title, attachments=data.attachments,
    )  # fmt: skip
    return await _full(tenant_db, created)


@get(
    "/v1/tenants/{slug:str}/work/requests",
    guards=[READ_WORK],
    tags=["work"],
    summary="The firm's requests, newest first (cursor pagination)",
    operation_id="listWorkRequests",
)
async def list_requests(
    tenant: NamedDependency[TenantContext],
    state: State,
    status: FromQuery[RequestStatus | None] = None,
    cursor: Annotated[str | None, Parameter(max_length=100)] = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 50,
) -> RequestPage:
    # A hot read: one statement on the bare connection, rows straight into the answer's
    # structs (no ORM entities); the statement's text is the same for every tenant.
    after = uuid_cursor(cursor)
    sql = _REQUEST_PAGES[(after is not None, status is not None)]
    args = [a for a in (after, status) if a is not None]
    async with tenant_connection(state.db.engine, tenant) as conn:
        rows = await conn.fetch(sql, *args, limit)
    items = [RequestOut(*row) for row in rows]
    following = items[-1].id if len(items) == limit else None
    return RequestPage(items=items, next_cursor=following)


# RequestOut's fields in order (a completed request's result only), newest first.
_REQUEST_COLUMNS = (
    "SELECT id::text, service_key, title, status, priority, payload, attachments,"
    " CASE WHEN status = 'completed' THEN result END, requested_by, created_at, updated_at,"
    " closed_at FROM work_requests"
)
_REQUEST_PAGES = {
    (False, False): f"{_REQUEST_COLUMNS} ORDER BY id DESC LIMIT $1",
    (True, False): f"{_REQUEST_COLUMNS} WHERE id < $1 ORDER BY id DESC LIMIT $2",
    (False, True): f"{_REQUEST_COLUMNS} WHERE status = $1 ORDER BY id DESC LIMIT $2",
    (True, True): f"{_REQUEST_COLUMNS} WHERE id < $1 AND status = $2 ORDER BY id DESC LIMIT $3",
}


@get(
    "/v1/tenants/{slug:str}/work/requests/{request_id:uuid}",
    guards=[READ_WORK],
    tags=["work"],
    summary="One request: status, tasks, comments addressed to the client, the result",
    operation_id="getWorkRequest",
)
async def show_request(
    request_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
) -> RequestOut:
    return await _full(tenant_db, await service.get_request(tenant_db, request_id))


@post(
    "/v1/tenants/{slug:str}/work/requests/{request_id:uuid}/answer",
    guards=[WRITE_WORK],
    tags=["work"],
    status_code=200,
    summary="Answer the provider's question (the SLA clock resumes)",
    operation_id="answerWorkRequest",
)
async def answer_request(
    request_id: FromPath[uuid.UUID],
    data: JSONBody[AnswerIn],
    tenant: NamedDependency[TenantContext],
    principal: NamedDependency[Principal],
    tenant_db: NamedDependency[AsyncSession],
) -> RequestOut:
    answered = await service.answer(tenant_db, tenant, principal, request_id, data.body)
    return await _full(tenant_db, answered)


@post(
    "/v1/tenants/{slug:str}/work/requests/{request_id:uuid}/cancel",
    guards=[WRITE_WORK],
    tags=["work"],
    status_code=200,
    summary="Cancel a request that is not completed",
    operation_id="cancelWorkRequest",
)
async def cancel_request(
    request_id: FromPath[uuid.UUID],
    data: JSONBody[CancelIn],
    tenant: NamedDependency[TenantContext],
    principal: NamedDependency[Principal],
    tenant_db: NamedDependency[AsyncSession],
) -> RequestOut:
    canceled = await service.cancel(tenant_db, tenant, principal, request_id, data.reason)
    return await _full(tenant_db, canceled)


# --- calendar and reports -----------------------------------------------------------------


@get(
    "/v1/tenants/{slug:str}/work/calendar",
    guards=[READ_WORK],
    tags=["work"],
    summary="The firm's business calendar: SLA clocks run only in its working time",
    operation_id="getWorkCalendar",
)
async def show_calendar(tenant_db: NamedDependency[AsyncSession]) -> Response[dict[str, Any]]:
    row = await tenant_db.get(WorkCalendar, 1)
    settings = row.settings if row else BusinessCalendar().to_settings()
    return Response(settings, headers={"ETag": etag(row.version if row else 0)})


@put(
    "/v1/tenants/{slug:str}/work/calendar",
    guards=[requires("admin", roles=TENANT_ADMINS)],
    tags=["work"],
    summary="Set the business calendar (running SLA clocks are re-planned on it)",
    operation_id="setWorkCalendar",
)
async def set_calendar(
    request: Request[Any, Any, Any],
    data: JSONBody[CalendarIn],
    tenant: NamedDependency[TenantContext],
    principal: NamedDependency[Principal],
    tenant_db: NamedDependency[AsyncSession],
) -> Response[dict[str, Any]]:
    raw = {k: v for k, v in _builtins(data).items() if v is not None}
    try:
        calendar = BusinessCalendar.from_settings(raw)
        calendar.add(datetime.now(UTC), timedelta(hours=1))  # some working time must exist
        settings = calendar.to_settings()
    except CalendarError as exc:
        raise Problem(422, "validation-error", str(exc), errors=[{"detail": str(exc)}]) from None
    row = await tenant_db.get(WorkCalendar, 1, with_for_update=True)
    check_if_match(request, row.version if row else 0, "calendar")
    before = row.settings if row else None
    if row is None:
        row = WorkCalendar(id=1, settings=settings, version=1)
        tenant_db.add(row)
    else:
        row.settings, row.version, row.updated_at = settings, row.version + 1, datetime.now(UTC)
    await tenant_db.flush()
    old = BusinessCalendar.from_settings(before) if before else BusinessCalendar()
    moved = await clocks.replan_clocks(tenant_db, tenant, principal, old, calendar)
    await audit.record(tenant_db, tenant.tenant_id, actor=principal, action="work.calendar.set",
                       target="work_calendar", before=before,
                       after={**settings, "clocks_replanned": len(moved)})  # fmt: skip
    return Response(
        settings,
        headers={"ETag": etag(row.version), "X-Clocks-Replanned": str(len(moved))},
    )


def _builtins(data: CalendarIn) -> dict[str, Any]:
    return {f: getattr(data, f) for f in data.__struct_fields__}


@get(
    "/v1/tenants/{slug:str}/work/reports",
    guards=[READ_WORK],
    tags=["work"],
    summary="Volume, SLA attainment, breaches, median resolution and minutes for a period",
    operation_id="getWorkReport",
)
async def work_report(
    tenant_db: NamedDependency[AsyncSession],
    start: Annotated[datetime | None, QueryParameter(name="from")] = None,
    end: Annotated[datetime | None, QueryParameter(name="to")] = None,
) -> ReportOut:
    """The period is [from, to); by default the current calendar month (UTC)."""
    month_start, month_end = month_of(datetime.now(UTC))
    start, end = start or month_start, end or month_end
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise Problem(
            400,
            "malformed-request",
            "from and to must be RFC 3339 times with a zone, and from must come before to",
        )
    return await reports.report(tenant_db, start, end)


route_handlers: list[ControllerRouterHandler] = [
    list_services,
    show_service,
    create_service,
    update_service,
    set_staff_profile,
    show_staff_profile,
    create_request,
    list_requests,
    show_request,
    answer_request,
    cancel_request,
    show_calendar,
    set_calendar,
    work_report,
]
