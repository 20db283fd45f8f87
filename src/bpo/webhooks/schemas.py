"""Request and response types of the webhook APIs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Url = Annotated[
    str, msgspec.Meta(min_length=8, max_length=2000, examples=["https://hooks.acme.example/bpo"])
]
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=100, examples=["member.updated"])]
EventTypes = Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=500)]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


class EndpointCreate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    event_types: EventTypes = msgspec.field(default_factory=lambda: ["*"])
    description: Description = ""
    enabled: bool = True


class EndpointUpdate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None


class EndpointOut(msgspec.Struct, omit_defaults=True):
    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    # Only when created, or asked for: verify signatures with it (Standard Webhooks).
    secret: str | None = None


class EndpointPage(msgspec.Struct):
    items: list[EndpointOut]
    next_cursor: str | None


class EndpointSecret(msgspec.Struct):
    secret: str


class AttemptOut(msgspec.Struct):
    number: int
    trigger: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    latency_ms: int


class DeliveryOut(msgspec.Struct, omit_defaults=True):
    id: str
    event_id: str
    webhook_id: str
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempt_log: list[AttemptOut] | None = None


class DeliveryPage(msgspec.Struct):
    items: list[DeliveryOut]
    next_cursor: str | None


class EventQueued(msgspec.Struct):
    event_id: str
    webhook_id: str


class ReplayQueued(msgspec.Struct):
    delivery_id: str
    status: str = "queued"
