"""Webhook APIs for tenant admins: endpoints, deliveries with every attempt, replay."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.types import ControllerRouterHandler
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.core.errors import Problem
from bpo.core.etags import check_if_match, etag
from bpo.core.pagination import PageCursor, PageLimit, uuid_cursor
from bpo.core.ratelimit import Limit as RateLimit
from bpo.core.ratelimit import RateLimiter
from bpo.core.tenancy import TenantContext
from bpo.identity.guards import TENANT_ADMIN, Principal
from bpo.webhooks import service
from bpo.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from bpo.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    EndpointCreate,
    EndpointOut,
    EndpointPage,
    EndpointSecret,
    EndpointUpdate,
    EventQueued,
    ReplayQueued,
)

PING = "webhook.ping"


def endpoint_out(endpoint: WebhookEndpoint, secret: str | None = None) -> EndpointOut:
    return EndpointOut(
        id=str(endpoint.id),
        url=endpoint.url,
        event_types=list(endpoint.event_types),
        description=endpoint.description,
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        failing_since=endpoint.failing_since,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        secret=secret,
    )


def delivery_out(
    delivery: WebhookDelivery, attempts: list[WebhookAttempt] | None = None
) -> DeliveryOut:
    return DeliveryOut(
        id=str(delivery.id),
        event_id=str(delivery.event_id),
        webhook_id=service.webhook_id(delivery.event_id),
        endpoint_id=str(delivery.endpoint_id),
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        attempt_log=None
        if attempts is None
        else [
            AttemptOut(
                number=a.number,
                trigger=a.trigger,
                attempted_at=a.attempted_at,
                status_code=a.status_code,
                error=a.error,
                latency_ms=a.latency_ms,
            )
            for a in attempts
        ],
    )


def _with_etag(endpoint: WebhookEndpoint, status_code: int = 200) -> Response[EndpointOut]:
    return Response(
        endpoint_out(endpoint), status_code=status_code, headers={"ETag": etag(endpoint.version)}
    )


def _secret_key(state: State) -> str:
    key: str | None = state.settings.secret_key
    if not key:
        raise Problem(503, "service-unavailable", "webhook secrets need BPO_SECRET_KEY to be set")
    return key


# Each ping or replay makes an outbound request on the firm's behalf: bounded per firm.
PINGS_PER_MINUTE = 10
REPLAYS_PER_MINUTE = 30


async def _limited(state: State, name: str, key: str, allowed: int) -> None:
    limiter: RateLimiter = state.limiter
    await limiter.enforce(RateLimit(name, f"webhooks:{key}", allowed, 60))


class EndpointsController(Controller):
    path = "/v1/tenants/{slug:str}/webhooks/endpoints"
    tags = ["webhooks"]
    guards = [TENANT_ADMIN]

    @post(
        "/",
        status_code=201,
        summary="Register an endpoint (its signing secret is shown)",
        operation_id="createWebhookEndpoint",
    )
    async def create(
        self,
        data: JSONBody[EndpointCreate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        state: State,
    ) -> EndpointOut:
        types = service.check_event_types(data.event_types)
        url = await service.check_endpoint_url(data.url, state.settings.webhook_allowlist)
        endpoint, secret = await service.create_endpoint(
            tenant_db,
            _secret_key(state),
            tenant_id=tenant.tenant_id,
            url=url,
            event_types=types,
            description=data.description,
            enabled=data.enabled,
        )
        out = endpoint_out(endpoint)
        await audit.record(
            tenant_db,
            tenant.tenant_id,
            actor=principal,
            action="webhook_endpoint.created",
            target=f"webhook_endpoint:{endpoint.id}",
            after=out,
        )
        return endpoint_out(endpoint, secret)

    @get("/", summary="The firm's webhook endpoints", operation_id="listWebhookEndpoints")
    async def list_(
        self,
        tenant_db: NamedDependency[AsyncSession],
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> EndpointPage:
        rows, next_cursor = await service.list_endpoints(tenant_db, limit, cursor)
        return EndpointPage([endpoint_out(e) for e in rows], next_cursor)

    @get(
        "/{endpoint_id:uuid}",
        summary="One endpoint (with its ETag)",
        operation_id="getWebhookEndpoint",
    )
    async def show(
        self, endpoint_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> Response[EndpointOut]:
        return _with_etag(await service.get_endpoint(tenant_db, endpoint_id))

    @get(
        "/{endpoint_id:uuid}/secret",
        summary="The endpoint's signing secret",
        operation_id="getWebhookEndpointSecret",
    )
    async def secret(
        self,
        endpoint_id: FromPath[uuid.UUID],
        tenant_db: NamedDependency[AsyncSession],
        state: State,
    ) -> EndpointSecret:
        endpoint = await service.get_endpoint(tenant_db, endpoint_id)
        return EndpointSecret(service.endpoint_secret(_secret_key(state), endpoint))

    @patch(
        "/{endpoint_id:uuid}",
        summary="Change the URL, event types, or enable/disable (If-Match guards the change)",
        operation_id="updateWebhookEndpoint",
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        endpoint_id: FromPath[uuid.UUID],
        data: JSONBody[EndpointUpdate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        state: State,
    ) -> Response[EndpointOut]:
        endpoint = await service.get_endpoint(tenant_db, endpoint_id, lock=True)
        check_if_match(request, endpoint.version, "endpoint")
        before = endpoint_out(endpoint)
        if data.url is not None:
            endpoint.url = await service.check_endpoint_url(
                data.url, state.settings.webhook_allowlist
            )
        if data.event_types is not None:
            endpoint.event_types = service.check_event_types(data.event_types)
        if data.description is not None:
            endpoint.description = data.description
        if data.enabled is not None and data.enabled != endpoint.enabled:
            endpoint.enabled = data.enabled
            endpoint.disabled_reason = None if data.enabled else "disabled by a tenant admin"
            endpoint.failing_since = None
        endpoint.version += 1
        endpoint.updated_at = func.now()
        await tenant_db.flush()
        await tenant_db.refresh(endpoint)
        out = endpoint_out(endpoint)
        await audit.record(
            tenant_db,
            tenant.tenant_id,
            actor=principal,
            action="webhook_endpoint.updated",
            target=f"webhook_endpoint:{endpoint.id}",
            before=before,
            after=out,
        )
        return _with_etag(endpoint)

    @delete(
        "/{endpoint_id:uuid}",
        status_code=204,
        summary="Remove an endpoint and its log",
        operation_id="deleteWebhookEndpoint",
    )
    async def remove(
        self,
        endpoint_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> None:
        endpoint = await service.delete_endpoint(tenant_db, endpoint_id)
        await audit.record(
            tenant_db,
            tenant.tenant_id,
            actor=principal,
            action="webhook_endpoint.deleted",
            target=f"webhook_endpoint:{endpoint.id}",
            before=endpoint_out(endpoint),
        )

    @post(
        "/{endpoint_id:uuid}/ping",
        status_code=202,
        summary="Send a test event to it",
        operation_id="pingWebhookEndpoint",
    )
    async def ping(
        self,
        endpoint_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        tenant_db: NamedDependency[AsyncSession],
        state: State,
    ) -> EventQueued:
        await _limited(state, "webhook pings", f"ping:{tenant.tenant_id}", PINGS_PER_MINUTE)
        endpoint = await service.get_endpoint(tenant_db, endpoint_id)
        if not endpoint.enabled:
            raise Problem(409, "endpoint-disabled", "the endpoint is disabled: enable it first")
        event_id = await service.record_event(
            tenant_db, tenant, PING, {"endpoint_id": str(endpoint_id)}, only_endpoint=endpoint_id
        )
        return EventQueued(event_id=str(event_id), webhook_id=service.webhook_id(event_id))


class DeliveriesController(Controller):
    path = "/v1/tenants/{slug:str}/webhooks/deliveries"
    tags = ["webhooks"]
    guards = [TENANT_ADMIN]

    @get(
        "/",
        summary="Deliveries, newest first, with their status",
        operation_id="listWebhookDeliveries",
    )
    async def list_(
        self,
        tenant_db: NamedDependency[AsyncSession],
        endpoint_id: FromQuery[uuid.UUID | None] = None,
        status: FromQuery[DeliveryStatus | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Parameter(max_length=64)] = None,
    ) -> DeliveryPage:
        rows, next_cursor = await service.list_deliveries(
            tenant_db,
            endpoint_id=endpoint_id,
            status=status,
            limit=limit,
            cursor=uuid_cursor(cursor),
        )
        return DeliveryPage(items=[delivery_out(d) for d in rows], next_cursor=next_cursor)

    @get(
        "/{delivery_id:uuid}",
        summary="One delivery with every attempt",
        operation_id="getWebhookDelivery",
    )
    async def show(
        self, delivery_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> DeliveryOut:
        delivery, attempts = await service.get_delivery(tenant_db, delivery_id)
        return delivery_out(delivery, list(attempts))

    @post(
        "/{delivery_id:uuid}/replay",
        status_code=202,
        summary="Attempt it again, now",
        operation_id="replayWebhookDelivery",
    )
    async def replay(
        self,
        delivery_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        state: State,
    ) -> ReplayQueued:
        await _limited(state, "webhook replays", f"replay:{tenant.tenant_id}", REPLAYS_PER_MINUTE)
        delivery = await service.replay_delivery(tenant_db, tenant, delivery_id)
        await audit.record(
            tenant_db,
            tenant.tenant_id,
            actor=principal,
            action="webhook_delivery.replayed",
            target=f"webhook_delivery:{delivery.id}",
        )
        return ReplayQueued(delivery_id=str(delivery.id))


route_handlers: list[ControllerRouterHandler] = [EndpointsController, DeliveriesController]
