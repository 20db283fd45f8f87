"""Request and response types of the work APIs: catalog, requests, tasks, inbox, reports."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

ServiceKey = Annotated[
    str, msgspec.Meta(min_length=2, max_length=60, pattern=r"^[a-z0-9][a-z0-9-]*$")
]
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Priority = Annotated[int, msgspec.Meta(ge=0, le=100)]
Hours = Annotated[float, msgspec.Meta(gt=0, le=2_000)]  # business hours
Function = Literal["accounting", "settlements", "records", "compliance", "payroll", "it", "other"]
Band = Literal["urgent", "high", "normal", "low"]
RequestStatus = Literal[
    "open", "in_progress", "waiting_on_client", "in_review", "completed", "canceled"
]
TaskStatus = Literal[
    "open", "in_progress", "waiting_on_client", "awaiting_review", "in_review", "done", "canceled"
]
Fraction = Annotated[float, msgspec.Meta(ge=0.01, le=0.99)]  # kept to the hundredth


class Goal(msgspec.Struct, forbid_unknown_fields=True):
    response_hours: Hours  # business hours to the first response (a claim)
    resolution_hours: Hours  # business hours to the result (after review, if any)


class ServiceIn(msgspec.Struct, forbid_unknown_fields=True):
    key: ServiceKey
    name: Name
    function: Function
    sla: dict[Band, Goal]  # every band: urgent 75-100, high 50-74, normal 25-49, low 0-24
    description: Annotated[str, msgspec.Meta(max_length=10_000)] = ""
    form: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})
    checklist: Annotated[list[Name], msgspec.Meta(max_length=100)] = []
    steps: Annotated[list[Name], msgspec.Meta(max_length=20)] = []  # one task each
    skills: Annotated[list[Skill], msgspec.Meta(max_length=20)] = []
    warn_fraction: Fraction = 0.8  # warn when this share of a goal has run
    review_required: bool = False
    bill_per_task: bool = True
    bill_per_minute: bool = False
    active: bool = True


class ServiceUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    description: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    form: dict[str, Any] | None = None
    checklist: Annotated[list[Name], msgspec.Meta(max_length=100)] | None = None
    steps: Annotated[list[Name], msgspec.Meta(max_length=20)] | None = None
    skills: Annotated[list[Skill], msgspec.Meta(max_length=20)] | None = None
    sla: dict[Band, Goal] | None = None
    warn_fraction: Fraction | None = None
    review_required: bool | None = None
    bill_per_task: bool | None = None
    bill_per_minute: bool | None = None
    active: bool | None = None


class ServiceOut(msgspec.Struct):
    key: str
    name: str
    function: str
    description: str
    form: dict[str, Any]
    checklist: list[str]
    steps: list[str]
    skills: list[str]
    sla: dict[str, Any]
    warn_fraction: Decimal
    review_required: bool
    bill_per_task: bool
    bill_per_minute: bool
    active: bool
    version: int
    updated_at: datetime


class StaffProfileIn(msgspec.Struct, forbid_unknown_fields=True):
    skills: Annotated[list[Skill], msgspec.Meta(max_length=50)]
    capacity: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10


class StaffProfileOut(msgspec.Struct):
    user_id: str
    skills: list[str] | None  # None: never set; the member is routed tasks of any skill
    capacity: int


Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class RequestIn(msgspec.Struct, forbid_unknown_fields=True):
    service: ServiceKey
    payload: dict[str, Any] = {}
    priority: Priority = 50
    title: Name | None = None
    attachments: Annotated[list[Reference], msgspec.Meta(max_length=50)] = []


class AnswerIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Text


class CancelIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class CommentOut(msgspec.Struct):
    id: str
    kind: str
    author: str
    body: str
    client_visible: bool
    task_id: str | None
    created_at: datetime


class TaskSummary(msgspec.Struct):
    id: str
    title: str
    status: str
    response_due_at: datetime | None
    resolution_due_at: datetime | None


class RequestOut(msgspec.Struct):
    id: str
    service: str
    title: str
    status: str
    priority: int
    payload: dict[str, Any]
    attachments: list[str]
    result: Any
    requested_by: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    tasks: list[TaskSummary] | None = None
    comments: list[CommentOut] | None = None  # the ones addressed to the client


class RequestPage(msgspec.Struct):
    items: list[RequestOut]
    next_cursor: str | None


class ClaimIn(msgspec.Struct, forbid_unknown_fields=True):
    lease_minutes: Annotated[int, msgspec.Meta(ge=1, le=480)] = 30


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Text
    client_visible: bool = False  # internal note unless addressed to the client


class CompleteIn(msgspec.Struct, forbid_unknown_fields=True):
    result: Any  # the work's result, shown to the client once the task is done


class ReviewIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=10_000)] = ""


class SendBackIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Text


Minutes = Annotated[float, msgspec.Meta(gt=0, le=1440)]  # kept to 0.01


class TimeIn(msgspec.Struct, forbid_unknown_fields=True):
    minutes: Minutes
    worked_at: datetime | None = None  # when the work was done (default: now)
    note: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class TimeUpdate(msgspec.Struct, forbid_unknown_fields=True):
    minutes: Minutes | None = None
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class TimeOut(msgspec.Struct):
    id: str
    task_id: str
    staff_id: str
    minutes: Decimal
    billed_minutes: int
    worked_at: datetime
    note: str
    version: int
    deleted: bool


class TaskOut(msgspec.Struct):
    id: str
    request_id: str
    tenant: str
    title: str
    service: str
    status: str
    priority: int
    skills: list[str]
    checklist: list[str]
    review_required: bool
    claimed_by: str | None
    lease_until: datetime | None
    completed_by: str | None
    reviewed_by: str | None
    result: Any
    response_due_at: datetime | None
    resolution_due_at: datetime | None
    responded_at: datetime | None
    resolved_at: datetime | None
    paused: bool
    response_breached: bool
    resolution_breached: bool
    created_at: datetime
    updated_at: datetime
    comments: list[CommentOut] | None = None
    time_entries: list[TimeOut] | None = None


class TaskPage(msgspec.Struct):
    items: list[TaskOut]
    next_cursor: str | None


class InboxItem(msgspec.Struct):
    task_id: str
    tenant: str
    service: str
    status: str
    priority: int
    due_at: datetime | None  # the nearest SLA goal still running
    response_due_at: datetime | None
    resolution_due_at: datetime | None
    claimed_by: str | None
    lease_until: datetime | None
    escalated: bool
    created_at: datetime


class InboxPage(msgspec.Struct):
    items: list[InboxItem]
    next_cursor: str | None


class CalendarIn(msgspec.Struct, forbid_unknown_fields=True):
    time_zone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"
    working_hours: dict[str, list[str]] | None = None  # "mon": ["09:00", "17:00"]
    country: Annotated[str, msgspec.Meta(min_length=2, max_length=3)] | None = None
    subdivision: Annotated[str, msgspec.Meta(min_length=1, max_length=10)] | None = None
    closed_days: Annotated[list[str], msgspec.Meta(max_length=366)] = []
    open_days: Annotated[list[str], msgspec.Meta(max_length=366)] = []


class ServiceVolume(msgspec.Struct):
    service: str
    requested: int
    completed: int


class StaffMinutes(msgspec.Struct):
    staff_id: str
    minutes: Decimal
    billed_minutes: int


class ReportOut(msgspec.Struct):
    period_start: datetime
    period_end: datetime
    volume: list[ServiceVolume]
    tasks_resolved: int
    sla_attainment_pct: float | None  # resolved within both goals / resolved; None if none
    response_breaches: int
    resolution_breaches: int
    median_resolution_minutes: float | None  # wall-clock, created to resolved
    minutes_by_staff: list[StaffMinutes]
