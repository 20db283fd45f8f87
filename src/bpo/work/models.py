"""Work tables: the provider's catalog and staff profiles and the queue index (platform);
requests, tasks, comments, time entries and the business calendar (each tenant's schema).

The queue index (`platform.work_queue`) holds only what routing needs (tenant, service,
skills, priority, status, claim, due times), never a request's payload or comments. A tenant
role writes its own tenant's rows, in the same transaction as the task, and nothing else
(row-level security), so the staff inbox can read one table instead of visiting schemas.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase, TenantBase

FUNCTIONS = ("accounting", "settlements", "records", "compliance", "payroll", "it", "other")
# Stored task statuses. A task in `in_progress` or `in_review` whose lease ran out is
# claimable again (the lease job returns it to the queue within a minute).
TASK_STATUSES = (
    "open",
    "in_progress",
    "waiting_on_client",
    "awaiting_review",
    "in_review",
    "done",
    "canceled",
)
QUEUED = TASK_STATUSES[:5]  # what the queue index holds
REQUEST_STATUSES = (
    "open",
    "in_progress",
    "waiting_on_client",
    "in_review",
    "completed",
    "canceled",
)
COMMENT_KINDS = ("note", "comment", "question", "answer", "review")


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# --- platform ---------------------------------------------------------------------------


class Service(PlatformBase):
    """A service of the provider's catalog: what a client firm can ask for, and its terms."""

    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint(_in("function", FUNCTIONS), name="function"),
        CheckConstraint("warn_fraction > 0 AND warn_fraction < 1", name="warn_fraction"),
        {"info": {"tenant_reads": True}},  # the catalog, read in tenant transactions
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    key: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    function: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, server_default="")
    form: Mapped[dict[str, Any]] = mapped_column(JSONB)  # JSON Schema of a request's payload
    checklist: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    steps: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(60)), server_default="{}")
    sla: Mapped[dict[str, Any]] = mapped_column(JSONB)  # band -> business hours
    # Warn staff when this fraction of a goal's business time has run.
    warn_fraction: Mapped[Decimal] = mapped_column(Numeric(3, 2), server_default=text("0.80"))
    review_required: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    bill_per_task: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    bill_per_minute: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class StaffProfile(PlatformBase):
    """A staff member's skills and capacity (tasks held at once), for routing."""

    __tablename__ = "staff_profiles"
    __table_args__ = (CheckConstraint("capacity BETWEEN 1 AND 1000", name="capacity"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform.users.id", ondelete="CASCADE"), primary_key=True
    )
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(60)), server_default="{}")
    capacity: Mapped[int] = mapped_column(Integer, server_default=text("10"))
    updated_at: Mapped[datetime] = _now()


class QueueEntry(PlatformBase):
    """The queue index: one row per unfinished task, written with the task."""

    __tablename__ = "work_queue"
    __table_args__ = (
        CheckConstraint(_in("status", QUEUED), name="status"),
        CheckConstraint("priority BETWEEN 0 AND 100", name="priority"),
        # The inbox: claimable tasks by urgency, then priority (rank = 100 - priority).
        Index(
            "ix_work_queue_claimable",
            "urgency",
            "rank",
            "task_id",
            postgresql_where=text("status IN ('open', 'awaiting_review')"),
        ),
        Index(
            "ix_work_queue_leases",
            "lease_until",
            postgresql_where=text("status IN ('in_progress', 'in_review')"),
        ),
        Index("ix_work_queue_next_check_at", "next_check_at"),
        Index("ix_work_queue_claimed_by", "claimed_by"),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform.tenants.id", ondelete="CASCADE"), index=True
    )
    service_key: Mapped[str] = mapped_column(String(60))
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(60)))
    priority: Mapped[int] = mapped_column(SmallInteger)
    rank: Mapped[int] = mapped_column(SmallInteger, Computed("100 - priority", persisted=True))
    status: Mapped[str] = mapped_column(String(20))
    claimed_by: Mapped[uuid.UUID | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_by: Mapped[uuid.UUID | None] = mapped_column()
    response_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The nearest goal still running ('infinity' while paused or met): the inbox's order.
    urgency: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        Computed(
            "COALESCE(LEAST(response_due_at, resolution_due_at), 'infinity'::timestamptz)",
            persisted=True,
        ),
    )
    # When the SLA job must look at the task next (a warning or a breach falls due).
    next_check_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- each tenant's schema ---------------------------------------------------------------


class WorkRequest(TenantBase):
    """What the client firm asked for: a service, a payload that satisfies its form."""

    __tablename__ = "work_requests"
    __table_args__ = (
        CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),
        CheckConstraint("priority BETWEEN 0 AND 100", name="priority"),
        Index("ix_work_requests_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    service_key: Mapped[str] = mapped_column(String(60))
    service_version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    priority: Mapped[int] = mapped_column(SmallInteger)
    attachments: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    status: Mapped[str] = mapped_column(String(20), server_default="open")
    result: Mapped[Any] = mapped_column(JSONB, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    cancel_reason: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Task(TenantBase):
    """One piece of work in the tenant's queue, with its claim, SLA clocks and review."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(_in("status", TASK_STATUSES), name="status"),
        CheckConstraint("priority BETWEEN 0 AND 100", name="priority"),
        CheckConstraint("reviewed_by IS NULL OR reviewed_by <> completed_by", name="four_eyes"),
        Index("ix_tasks_request_id", "request_id"),
        Index("ix_tasks_resolved_at", "resolved_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.work_requests.id"))
    step: Mapped[int] = mapped_column(SmallInteger, server_default=text("1"))
    title: Mapped[str] = mapped_column(String(200))
    service_key: Mapped[str] = mapped_column(String(60))
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(60)), server_default="{}")
    checklist: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    priority: Mapped[int] = mapped_column(SmallInteger)
    review_required: Mapped[bool] = mapped_column(Boolean)
    bill_per_task: Mapped[bool] = mapped_column(Boolean)
    bill_per_minute: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20), server_default="open")
    claimed_by: Mapped[uuid.UUID | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_by: Mapped[uuid.UUID | None] = mapped_column()
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column()
    result: Mapped[Any] = mapped_column(JSONB, nullable=True)
    # SLA goals in business minutes, and their clocks (due and warning instants).
    response_goal_min: Mapped[int] = mapped_column(Integer)
    resolution_goal_min: Mapped[int] = mapped_column(Integer)
    response_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    response_warn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_warn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    response_met: Mapped[bool | None] = mapped_column(Boolean)
    resolution_met: Mapped[bool | None] = mapped_column(Boolean)
    response_warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    response_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _now()


class TaskComment(TenantBase):
    """A note (internal), a comment or question for the client, or the client's answer."""

    __tablename__ = "task_comments"
    __table_args__ = (
        CheckConstraint(_in("kind", COMMENT_KINDS), name="kind"),
        Index("ix_task_comments_request_id", "request_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.work_requests.id"))
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenant.tasks.id"))
    kind: Mapped[str] = mapped_column(String(20))
    client_visible: Mapped[bool] = mapped_column(Boolean)
    author: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class TimeEntry(TenantBase):
    """Minutes a staff member worked on a task; billed as `staff_minutes` when the service
    bills per minute, each entry rounded up to the whole minute."""

    __tablename__ = "time_entries"
    __table_args__ = (
        CheckConstraint("minutes > 0 AND minutes <= 1440", name="minutes"),
        Index("ix_time_entries_task_id", "task_id"),
        Index("ix_time_entries_worked_at", "worked_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.tasks.id"))
    staff_id: Mapped[uuid.UUID] = mapped_column()
    minutes: Mapped[Decimal] = mapped_column(Numeric(7, 2))
    billed_minutes: Mapped[int] = mapped_column(Integer)
    worked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(String(1000), server_default="")
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class WorkCalendar(TenantBase):
    """The firm's business calendar (one row): time zone, hours, holidays."""

    __tablename__ = "work_calendar"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=1)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    updated_at: Mapped[datetime] = _now()
