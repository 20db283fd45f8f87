"""The one way to ask for background work: a row in the caller's own transaction.

Nothing reaches the broker until the transaction commits (the relay reads only committed
rows), and nothing is lost if the process dies after the commit: the row waits for a relay.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, cast

import msgspec
from sqlalchemy import Table, func, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bpo.core import tracing
from bpo.core.ids import uuid7
from bpo.core.tenancy import TenantContext
from bpo.jobs.models import OutboxMessage
from bpo.jobs.registry import JOBS, JobSpec, load_job_modules

# NOTIFY travels at commit (and only then), once per transaction however many rows.
OUTBOX_CHANNEL = "bpo_outbox"


class UnknownJob(LookupError):
    """No job of that name is declared."""


def spec_of(actor: str | Callable[..., Any]) -> JobSpec:
    load_job_modules()
    name = actor if isinstance(actor, str) else getattr(actor, "__name__", "")
    spec = JOBS.get(name)
    if spec is None or (not isinstance(actor, str) and spec.fn is not actor):
        raise UnknownJob(f"{name!r} is not a declared job")
    return spec


def outbox_row(
    actor: str | Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    tenant: TenantContext | uuid.UUID | None,
    delay: timedelta | None = None,
    message_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    spec = spec_of(actor)
    # Arguments travel as JSON: refuse what would not survive the trip, here, not in a worker.
    args_json, kwargs_json = msgspec.to_builtins(list(args)), msgspec.to_builtins(kwargs)
    row: dict[str, Any] = {
        "id": message_id or uuid7(),
        "tenant_id": tenant.tenant_id if isinstance(tenant, TenantContext) else tenant,
        "actor": spec.name,
        "queue": spec.queue,
        "args": args_json,
        "kwargs": kwargs_json,
    }
    if delay is not None:
        row["available_at"] = func.now() + delay
    if (trace := tracing.carrier()) is not None:
        row["trace_context"] = trace
    return row


# The insert of `outbox_row` rows, for a caller that folds it into a statement of its own
# (a claim, a posting); `outbox_params` gives its parameters.
OUTBOX_SQL = (
    "INSERT INTO platform.outbox (id, tenant_id, actor, queue, args, kwargs, trace_context)"
    " SELECT * FROM unnest(CAST(:ev_ids AS uuid[]), CAST(:ev_tenants AS uuid[]),"
    " CAST(:ev_actors AS text[]), CAST(:ev_queues AS text[]), CAST(:ev_args AS jsonb[]),"
    " CAST(:ev_kwargs AS jsonb[]), CAST(:ev_traces AS jsonb[]))"
)


def _trace_json(row: dict[str, Any]) -> str | None:
    trace = row.get("trace_context")
    return None if trace is None else msgspec.json.encode(trace).decode()


def outbox_params(rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    encode = msgspec.json.encode
    return {
        "ev_ids": [r["id"] for r in rows],
        "ev_tenants": [r["tenant_id"] for r in rows],
        "ev_actors": [r["actor"] for r in rows],
        "ev_queues": [r["queue"] for r in rows],
        "ev_args": [encode(r["args"]).decode() for r in rows],
        "ev_kwargs": [encode(r["kwargs"]).decode() for r in rows],
        "ev_traces": [_trace_json(r) for r in rows],
    }


async def enqueue(
    session: AsyncSession | AsyncConnection,
    actor: str | Callable[..., Any],
    *args: Any,
    tenant: TenantContext | uuid.UUID | None,
    delay: timedelta | None = None,
    **kwargs: Any,
) -> uuid.UUID:
    """Write a job into `session`'s transaction; returns its message id.

    `tenant` is the tenant the job acts for (None for platform jobs); the worker opens that
    tenant's context for it. A tenant session may enqueue for its own tenant only: the
    database refuses any other (row-level security on platform.outbox).
    """
    if delay is None:  # one prebuilt statement (hot paths enqueue in every transaction)
        (message_id,) = await enqueue_many(session, actor, [(args, kwargs)], tenant=tenant)
        return message_id
    row = outbox_row(actor, args, kwargs, tenant=tenant, delay=delay)
    await session.execute(insert(OutboxMessage).values(row))
    return uuid.UUID(str(row["id"]))


async def enqueue_many(
    session: AsyncSession | AsyncConnection,
    actor: str | Callable[..., Any],
    calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]],
    *,
    tenant: TenantContext | uuid.UUID | None,
) -> list[uuid.UUID]:
    """Several calls of one job in one statement (args, kwargs each); their message ids."""
    rows = [outbox_row(actor, args, kwargs, tenant=tenant) for args, kwargs in calls]
    if rows:
        await session.execute(_INSERT, rows)
    return [uuid.UUID(str(row["id"])) for row in rows]


_INSERT = insert(cast(Table, OutboxMessage.__table__))  # Core: no ORM bookkeeping
