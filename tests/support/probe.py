"""Routes mounted only in tests, to exercise the framework wiring against the real database.

The foundation has no domain routes that take a body yet; these exercise JSON decoding,
validation paths, and the commit-or-rollback contract of the per-request session.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.jobs.models import JobHeartbeat


class Label(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]


class HeartbeatIn(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    worker_pid: int = 0
    labels: list[Label] = []


class HeartbeatOut(msgspec.Struct):
    token: str
    worker_pid: int


@post("/_probe/heartbeats", status_code=201)
async def create_heartbeat(
    data: JSONBody[HeartbeatIn], db_session: NamedDependency[AsyncSession]
) -> HeartbeatOut:
    db_session.add(JobHeartbeat(token=data.token, worker_pid=data.worker_pid))
    await db_session.flush()
    return HeartbeatOut(token=data.token, worker_pid=data.worker_pid)


@post("/_probe/heartbeats/then-fail", status_code=201)
async def create_then_fail(
    data: JSONBody[HeartbeatIn], db_session: NamedDependency[AsyncSession]
) -> None:
    db_session.add(JobHeartbeat(token=data.token, worker_pid=data.worker_pid))
    await db_session.flush()
    raise Problem(409, "conflict", "the handler failed after writing")


@post("/_probe/heartbeats/then-crash", status_code=201)
async def create_then_crash(
    data: JSONBody[HeartbeatIn], db_session: NamedDependency[AsyncSession]
) -> None:
    db_session.add(JobHeartbeat(token=data.token, worker_pid=data.worker_pid))
    await db_session.flush()
    raise RuntimeError("a bug")


@get("/_probe/heartbeats")
async def list_heartbeats(
    db_session: NamedDependency[AsyncSession],
    limit: Annotated[int, Parameter(ge=1, le=100)] = 10,
) -> list[str]:
    rows = await db_session.scalars(
        select(JobHeartbeat.token).order_by(JobHeartbeat.id).limit(limit)
    )
    return list(rows)


probe_routes = [create_heartbeat, create_then_fail, create_then_crash, list_heartbeats]
