"""Staff-admin job APIs: failed jobs (retries exhausted) and their replay."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, Parameter
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import PLATFORM_CHAIN
from bpo.identity.guards import STAFF_ADMIN, Principal
from bpo.jobs.models import FailedJob
from bpo.platform.operations import service
from bpo.platform.operations.schemas import FailedJobOut, FailedJobPage, ReplayOut


def failed_out(row: FailedJob) -> FailedJobOut:
    return FailedJobOut(
        id=str(row.id),
        tenant_id=str(row.tenant_id) if row.tenant_id else None,
        actor=row.actor,
        queue=row.queue,
        args=list(row.args),
        kwargs=dict(row.kwargs),
        error=row.error,
        retries=row.retries,
        failed_at=row.failed_at,
        replayed_at=row.replayed_at,
        replayed_as=str(row.replayed_as) if row.replayed_as else None,
    )


class FailedJobsController(Controller):
    path = "/v1/staff/jobs/failed"
    tags = ["jobs"]
    guards = [STAFF_ADMIN]

    @get(
        "/",
        summary="Jobs that exhausted their retries, newest first",
        operation_id="listFailedJobs",
    )
    async def list_(
        self,
        db_session: NamedDependency[AsyncSession],
        actor: Annotated[str | None, Parameter(max_length=100)] = None,
        tenant_id: FromQuery[uuid.UUID | None] = None,
        include_replayed: FromQuery[bool] = False,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Parameter(max_length=64)] = None,
    ) -> FailedJobPage:
        rows, next_cursor = await service.list_failed(
            db_session,
            actor=actor,
            tenant_id=tenant_id,
            include_replayed=include_replayed,
            limit=limit,
            cursor=cursor,
        )
        return FailedJobPage(items=[failed_out(r) for r in rows], next_cursor=next_cursor)

    @get("/{job_id:uuid}", summary="One failed job with its error", operation_id="getFailedJob")
    async def show(
        self, job_id: FromPath[uuid.UUID], db_session: NamedDependency[AsyncSession]
    ) -> FailedJobOut:
        return failed_out(await service.get_failed(db_session, job_id))

    @post(
        "/{job_id:uuid}/replay",
        status_code=202,
        summary="Run it again, as a new message",
        operation_id="replayFailedJob",
    )
    async def replay(
        self,
        job_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
    ) -> ReplayOut:
        row, message_id = await service.replay(db_session, job_id)
        await audit.record(
            db_session,
            PLATFORM_CHAIN,
            actor=principal,
            action="failed_job.replayed",
            target=f"job:{row.id}",
            after={"replayed_as": str(message_id)},
        )
        return ReplayOut(failed_job_id=str(row.id), message_id=str(message_id))


route_handlers: list[ControllerRouterHandler] = [FailedJobsController]
