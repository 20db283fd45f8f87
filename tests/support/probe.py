"""Routes mounted only in tests, to exercise the framework wiring against the real database.

The foundation has no domain routes that take a body yet; these exercise JSON decoding,
validation paths, and the commit-or-rollback contract of the per-request session.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter
from sqlalchemy import BigInteger, Column, MetaData, Table, Text, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.models import TENANT_PLACEHOLDER
from bpo.core.tenancy import TenantContext
from bpo.identity.guards import PUBLIC, requires
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


@post("/_probe/heartbeats", status_code=201, opt={PUBLIC: True})
async def create_heartbeat(
    data: JSONBody[HeartbeatIn], db_session: NamedDependency[AsyncSession]
) -> HeartbeatOut:
    db_session.add(JobHeartbeat(token=data.token, worker_pid=data.worker_pid))
    await db_session.flush()
    return HeartbeatOut(token=data.token, worker_pid=data.worker_pid)


@post("/_probe/heartbeats/then-fail", status_code=201, opt={PUBLIC: True})
async def create_then_fail(
    data: JSONBody[HeartbeatIn], db_session: NamedDependency[AsyncSession]
) -> None:
    db_session.add(JobHeartbeat(token=data.token, worker_pid=data.worker_pid))
    await db_session.flush()
    raise Problem(409, "conflict", "the handler failed after writing")


@post("/_probe/heartbeats/then-crash", status_code=201, opt={PUBLIC: True})
async def create_then_crash(
    data: JSONBody[HeartbeatIn], db_session: NamedDependency[AsyncSession]
) -> None:
    db_session.add(JobHeartbeat(token=data.token, worker_pid=data.worker_pid))
    await db_session.flush()
    raise RuntimeError("a bug")


@get("/_probe/heartbeats", opt={PUBLIC: True})
async def list_heartbeats(
    db_session: NamedDependency[AsyncSession],
    limit: Annotated[int, Parameter(ge=1, le=100)] = 10,
) -> list[str]:
    rows = await db_session.scalars(
        select(JobHeartbeat.token).order_by(JobHeartbeat.id).limit(limit)
    )
    return list(rows)


# --- a tenant-scoped resource, in a table tests add to each tenant schema ------------------

notes = Table(
    "notes",
    MetaData(schema=TENANT_PLACEHOLDER),
    Column("id", BigInteger, primary_key=True),
    Column("tenant_slug", Text, nullable=False),
    Column("body", Text, nullable=False),
)


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class NoteOut(msgspec.Struct):
    id: int
    tenant_slug: str
    body: str


@post("/v1/tenants/{slug:str}/_probe/notes", status_code=201, guards=[requires("work:write")])
async def add_note(
    data: JSONBody[NoteIn],
    tenant: NamedDependency[TenantContext],
    tenant_db: NamedDependency[AsyncSession],
) -> NoteOut:
    row = (
        await tenant_db.execute(
            insert(notes).values(tenant_slug=tenant.slug, body=data.body).returning(notes)
        )
    ).one()
    return NoteOut(id=row.id, tenant_slug=row.tenant_slug, body=row.body)


@get("/v1/tenants/{slug:str}/_probe/notes/{note_id:int}", guards=[requires("work:read")])
async def get_note(note_id: FromPath[int], tenant_db: NamedDependency[AsyncSession]) -> NoteOut:
    row = (await tenant_db.execute(select(notes).where(notes.c.id == note_id))).first()
    if row is None:
        raise Problem(404, "not-found", f"no note {note_id}")
    return NoteOut(id=row.id, tenant_slug=row.tenant_slug, body=row.body)


@delete(
    "/v1/tenants/{slug:str}/_probe/notes/{note_id:int}",
    status_code=204,
    guards=[requires("work:write")],
)
async def delete_note(note_id: FromPath[int], tenant_db: NamedDependency[AsyncSession]) -> None:
    result = await tenant_db.execute(notes.delete().where(notes.c.id == note_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise Problem(404, "not-found", f"no note {note_id}")


probe_routes = [
    create_heartbeat,
    create_then_fail,
    create_then_crash,
    list_heartbeats,
    add_note,
    get_note,
    delete_note,
]
