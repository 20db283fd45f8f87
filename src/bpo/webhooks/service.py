"""Webhook endpoints, tenant events and deliveries.

Any domain records a tenant event with `record_event` in the transaction of its change; the
event travels through the outbox (so it exists exactly when the change committed) to the
`fan_out_event` job, which stores it in the tenant's schema and creates one delivery per
subscribed endpoint. Each delivery is attempted by `deliver_webhook` on the retry schedule.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bpo.core.errors import Problem
from bpo.core.ids import uuid7
from bpo.core.pagination import page_of, uuid_cursor
from bpo.core.security import seal, unseal
from bpo.core.tenancy import TenantContext
from bpo.jobs.outbox import enqueue, enqueue_many
from bpo.webhooks import signing
from bpo.webhooks.addresses import RefusedAddress, check_url
from bpo.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

# Delays before the 2nd, 3rd, ... attempt: about three days in all (71 h 35 min 5 s).
RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=20),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
ENDPOINT_DISABLED = "webhook.endpoint.disabled"


def webhook_id(event_id: uuid.UUID) -> str:
    """The `webhook-id` header: the same for every attempt, so receivers can deduplicate."""
    return f"msg_{event_id.hex}"


async def record_event(
    session: AsyncSession | AsyncConnection,
    tenant: TenantContext | uuid.UUID,
    event_type: str,
    data: dict[str, Any],
    *,
    only_endpoint: uuid.UUID | None = None,
) -> uuid.UUID:
    """Record a tenant event in the caller's transaction; returns its id."""
    (event_id,) = await record_events(session, tenant, [(event_type, data)], only_endpoint)
    return event_id


async def record_events(
    session: AsyncSession | AsyncConnection,
    tenant: TenantContext | uuid.UUID,
    events: Sequence[tuple[str, dict[str, Any]]],
    only_endpoint: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Record several tenant events in one statement, in order; returns their ids."""
    ids, calls = event_calls(events, only_endpoint)
    await enqueue_many(session, FAN_OUT, calls, tenant=tenant)
    return ids


FAN_OUT = "fan_out_event"  # the job that stores an event and makes its deliveries


def event_calls(
    events: Sequence[tuple[str, dict[str, Any]]], only_endpoint: uuid.UUID | None = None
) -> tuple[list[uuid.UUID], list[tuple[tuple[Any, ...], dict[str, Any]]]]:
    """The events' ids and the `fan_out_event` calls that carry them (for the outbox)."""
    now = datetime.now(UTC).isoformat()
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    ids: list[uuid.UUID] = []
    for event_type, data in events:
        if not EVENT_TYPE.match(event_type):
            raise ValueError(f"not an event type: {event_type!r}")
        event_id = uuid7()
        ids.append(event_id)
        endpoint = str(only_endpoint) if only_endpoint else None
        calls.append(((str(event_id), event_type, data, now, endpoint), {}))
    return ids, calls


def _not_found(what: str, ident: object) -> Problem:
    return Problem(404, "not-found", f"no {what} {ident}")


def check_event_types(types: Sequence[str]) -> list[str]:
    cleaned = sorted({t.strip() for t in types})
    bad = [t for t in cleaned if t != "*" and not EVENT_TYPE.match(t)]
    if bad or not cleaned:
        detail = f"not event types: {', '.join(bad)}" if bad else "at least one is needed"
        raise Problem(
            422,
            "validation-error",
            "event_types must be event types such as 'member.updated', or '*' for all",
            errors=[{"pointer": "#/event_types", "detail": detail}],
        )
    return cleaned


async def check_endpoint_url(url: str, allowlist: Sequence[str]) -> str:
    try:
        await check_url(url, allowlist, unresolvable_ok=True)
    except RefusedAddress as exc:
        raise Problem(
            422,
            "validation-error",
            f"the URL cannot receive webhooks: it {exc}",
            errors=[{"pointer": "#/url", "detail": str(exc)}],
        ) from None
    return url


def endpoint_secret(secret_key: str, endpoint: WebhookEndpoint) -> str:
    return unseal(secret_key, f"webhook:{endpoint.id}", endpoint.secret_sealed).decode()


MAX_ENDPOINTS = 20
_ENDPOINTS_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


async def create_endpoint(
    session: AsyncSession,
    secret_key: str,
    *,
    tenant_id: uuid.UUID,
    url: str,
    event_types: list[str],
    description: str,
    enabled: bool,
) -> tuple[WebhookEndpoint, str]:
    # Counted under a per-firm lock, so concurrent creates cannot pass the cap together.
    await session.execute(_ENDPOINTS_LOCK, {"key": f"webhook-endpoints:{tenant_id}"})
    held = await session.scalar(select(func.count()).select_from(WebhookEndpoint))
    if (held or 0) >= MAX_ENDPOINTS:
        raise Problem(
            409,
            "endpoint-limit",
            f"a firm may register at most {MAX_ENDPOINTS} webhook endpoints; remove one first "
            "(one endpoint can subscribe to many event types)",
            title="Too many webhook endpoints",
        )
    endpoint = WebhookEndpoint(
        id=uuid7(),
        url=url,
        event_types=event_types,
        description=description,
        enabled=enabled,
    )
    secret = signing.new_secret()
    endpoint.secret_sealed = seal(secret_key, f"webhook:{endpoint.id}", secret.encode())
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint)
    return endpoint, secret


async def get_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=lock)
    if endpoint is None:
        raise _not_found("webhook endpoint", endpoint_id)
    return endpoint


async def list_endpoints(
    session: AsyncSession, limit: int, cursor: str | None
) -> tuple[list[WebhookEndpoint], str | None]:
    """Oldest first (ids are time-ordered), `limit` at a time."""
    query = select(WebhookEndpoint)
    after = uuid_cursor(cursor)
    if after is not None:
        query = query.where(WebhookEndpoint.id > after)
    rows = list(await session.scalars(query.order_by(WebhookEndpoint.id).limit(limit + 1)))
    return page_of(rows, limit)


async def delete_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id)
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    return endpoint


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: uuid.UUID | None,
    status: str | None,
    limit: int,
    cursor: uuid.UUID | None,
) -> tuple[Sequence[WebhookDelivery], str | None]:
    """Newest first; the cursor is the last delivery id of the page."""
    query: Select[WebhookDelivery] = select(WebhookDelivery)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if cursor is not None:
        query = query.where(WebhookDelivery.id < cursor)
    rows = (await session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    return rows[:limit], (str(rows[limit - 1].id) if more else None)


async def get_delivery(
    session: AsyncSession, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, Sequence[WebhookAttempt]]:
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise _not_found("webhook delivery", delivery_id)
    attempts = (
        await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.number)
        )
    ).all()
    return delivery, attempts


async def replay_delivery(
    session: AsyncSession, tenant: TenantContext, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Attempt a delivery once more, now, whatever its status (the same webhook-id)."""
    delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise _not_found("webhook delivery", delivery_id)
    endpoint = await get_endpoint(session, delivery.endpoint_id)
    if not endpoint.enabled:
        raise Problem(409, "endpoint-disabled", "the endpoint is disabled: enable it, then replay")
    await enqueue(session, "deliver_webhook", str(delivery_id), "manual", tenant=tenant)
    return delivery
