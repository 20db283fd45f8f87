"""Response types of the job APIs (staff admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class FailedJobOut(msgspec.Struct):
    id: str
    tenant_id: str | None
    actor: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    error: str
    retries: int
    failed_at: datetime
    replayed_at: datetime | None
    replayed_as: str | None


class FailedJobPage(msgspec.Struct):
    items: list[FailedJobOut]
    next_cursor: str | None


class ReplayOut(msgspec.Struct):
    failed_job_id: str
    message_id: str
