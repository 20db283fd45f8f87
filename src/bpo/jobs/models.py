"""Tables the job machinery owns: the outbox, failed jobs, and processed message ids."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase, TenantBase


class JobHeartbeat(PlatformBase):
    """One row per processed `ping` job: proof that broker, worker and database connect."""

    __tablename__ = "job_heartbeats"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    token: Mapped[str] = mapped_column(String(200), unique=True)
    worker_pid: Mapped[int] = mapped_column(Integer)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class OutboxMessage(PlatformBase):
    """A job written in the transaction that asked for it; the relay publishes it after commit.

    Tenant roles may INSERT rows for their own tenant only (row-level security, see the
    migration); they cannot read the table. The id is the Dramatiq message id.
    """

    __tablename__ = "outbox"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    tenant_id: Mapped[uuid.UUID | None]
    actor: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(JSONB)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Not before this time: delayed jobs (webhook retries) wait here, durable, not in the broker.
    available_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # W3C trace context of the traced request that enqueued it (core/tracing.py), or NULL.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)

    __table_args__ = (
        # The relay's fetch: only unsent rows, in the order they become due.
        Index("ix_outbox_pending", "available_at", "id", postgresql_where=text("sent_at IS NULL")),
        Index("ix_outbox_sent_at", "sent_at", postgresql_where=text("sent_at IS NOT NULL")),
    )


class FailedJob(PlatformBase):
    """A message that exhausted its retries, with the last error; staff admins replay it."""

    __tablename__ = "failed_jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the message id
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(JSONB)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    error: Mapped[str] = mapped_column(Text)
    retries: Mapped[int] = mapped_column(Integer)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replayed_as: Mapped[uuid.UUID | None]


class ProcessedMessage(PlatformBase):
    """Ids of platform jobs whose effect committed: a redelivered message changes nothing."""

    __tablename__ = "processed_messages"

    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class TenantProcessedMessage(TenantBase):
    """The same, per tenant schema: written in the tenant transaction that holds the effect."""

    __tablename__ = "processed_messages"

    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
