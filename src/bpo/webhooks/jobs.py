"""Webhook jobs: fan an event out to its endpoints, and attempt one delivery.

An attempt is an HTTP POST outside any transaction, then one transaction that records it,
moves the delivery on and enqueues the next attempt (delayed in the outbox) with the
message's processed id: a redelivered message posts again at worst (receivers deduplicate
on `webhook-id`), but never records or schedules twice.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from bpo.jobs.context import current_job, exactly_once, worker_settings
from bpo.jobs.outbox import enqueue
from bpo.jobs.registry import job
from bpo.webhooks import signing
from bpo.webhooks.addresses import RefusedAddress, Unresolvable, resolve_checked
from bpo.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from bpo.webhooks.service import (
    ENDPOINT_DISABLED,
    MAX_ATTEMPTS,
    RETRY_SCHEDULE,
    endpoint_secret,
    record_event,
    webhook_id,
)

log = structlog.get_logger("bpo.webhooks")


@job(queue="webhooks", max_retries=10)
async def fan_out_event(
    event_id: str,
    event_type: str,
    data: dict[str, Any],
    occurred_at: str,
    only_endpoint: str | None = None,
) -> None:
    """Store the tenant event and create a delivery for each subscribed, enabled endpoint."""
    job_ = current_job()
    async with exactly_once() as session:
        event = uuid.UUID(event_id)
        await session.execute(
            pg_insert(WebhookEvent)
            .values(
                id=event,
                type=event_type,
                data=data,
                occurred_at=datetime.fromisoformat(occurred_at),
            )
            .on_conflict_do_nothing()
        )
        query = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
        if only_endpoint is not None:
            query = query.where(WebhookEndpoint.id == uuid.UUID(only_endpoint))
        else:
            query = query.where(WebhookEndpoint.event_types.overlap([event_type, "*"]))
        for endpoint_id in (await session.scalars(query)).all():
            delivery = WebhookDelivery(event_id=event, endpoint_id=endpoint_id)
            session.add(delivery)
            await session.flush()
            await enqueue(session, deliver_webhook, str(delivery.id), tenant=job_.tenant)


@job(queue="webhooks", max_retries=10)
async def deliver_webhook(delivery_id: str, trigger: str = "scheduled") -> None:
    """One attempt of one delivery (`trigger`: "scheduled" by the schedule, "manual" replay)."""
    job_ = current_job()
    settings = worker_settings()
    ident = uuid.UUID(delivery_id)
    async with job_.session() as session:
        row = (
            await session.execute(
                select(WebhookDelivery, WebhookEndpoint, WebhookEvent)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.id == ident)
            )
        ).one_or_none()
        if row is None:
            return  # the endpoint was deleted, and its deliveries with it
        delivery, endpoint, event = row
        if trigger == "scheduled" and (delivery.status != "pending" or not endpoint.enabled):
            return
        secret = endpoint_secret(settings.secret_key or "", endpoint)
    body = msgspec.json.encode(
        {
            "type": event.type,
            "timestamp": event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": event.data,
        }
    )
    outcome = await _post(
        endpoint.url,
        secret,
        webhook_id(event.id),
        body,
        settings.webhook_allowlist,
        settings.webhook_timeout_s,
    )
    await _record(ident, trigger, outcome)


class Outcome(msgspec.Struct):
    """What an attempt learned. Of the receiver's answer only the status code and the time
    are kept: a body shown back to the firm would make any service the request could reach
    readable through the delivery log."""

    attempted_at: datetime
    latency_ms: int
    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def _post(
    url: str, secret: str, message_id: str, body: bytes, allowlist: Any, timeout: float
) -> Outcome:
    started, at = time.perf_counter(), datetime.now(UTC)

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        target = await resolve_checked(url, allowlist)
        headers = signing.headers(secret, message_id, int(time.time()), body)
        headers["Host"] = target.host_header
        # Connect to the address just checked (no second lookup); TLS still verifies the
        # certificate against the URL's host name.
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client,
            client.stream(
                "POST", target.url(url), content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            status = response.status_code  # the body is never read
        return Outcome(at, elapsed(), status_code=status)
    except Unresolvable as exc:
        return Outcome(at, elapsed(), error=str(exc)[:500])
    except RefusedAddress as exc:
        return Outcome(at, elapsed(), error=f"refused: {exc}"[:500])
    except httpx.HTTPError as exc:
        return Outcome(at, elapsed(), error=f"{type(exc).__name__}: {exc}"[:500])


async def _record(delivery_id: uuid.UUID, trigger: str, outcome: Outcome) -> None:
    job_ = current_job()
    async with exactly_once() as session:
        delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None:
            return
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id, with_for_update=True)
        assert endpoint is not None
        scheduled_before = await session.scalar(
            select(func.count())
            .select_from(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id, WebhookAttempt.trigger == "scheduled")
        )
        delivery.attempts += 1
        session.add(
            WebhookAttempt(
                delivery_id=delivery_id,
                number=delivery.attempts,
                trigger=trigger,
                attempted_at=outcome.attempted_at,
                status_code=outcome.status_code,
                error=outcome.error,
                latency_ms=outcome.latency_ms,
            )
        )
        delivery.updated_at = func.now()
        if outcome.ok:
            delivery.status, delivery.next_attempt_at = "succeeded", None
            endpoint.failing_since = None
            return
        endpoint.failing_since = endpoint.failing_since or outcome.attempted_at
        if trigger != "scheduled":
            return  # a manual replay leaves the schedule as it was
        scheduled = (scheduled_before or 0) + 1  # this attempt included
        if scheduled < MAX_ATTEMPTS:
            delay = RETRY_SCHEDULE[scheduled - 1]
            delivery.next_attempt_at = outcome.attempted_at + delay
            await enqueue(
                session, deliver_webhook, str(delivery_id), tenant=job_.tenant, delay=delay
            )
            return
        delivery.status, delivery.next_attempt_at = "failed", None
        # Every attempt for about three days failed, with no success since: stop sending.
        endpoint.enabled = False
        endpoint.disabled_reason = (
            f"disabled after {MAX_ATTEMPTS} failed attempts since "
            f"{endpoint.failing_since.isoformat()}"
        )
        assert job_.tenant is not None
        await record_event(
            session,
            job_.tenant,
            ENDPOINT_DISABLED,
            {
                "endpoint_id": str(endpoint.id),
                "url": endpoint.url,
                "reason": endpoint.disabled_reason,
            },
        )
        log.warning("webhook_endpoint_disabled", endpoint_id=str(endpoint.id))
