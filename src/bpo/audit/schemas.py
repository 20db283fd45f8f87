"""Response types of the audit APIs."""

from __future__ import annotations

from datetime import datetime

import msgspec


class AuditEventOut(msgspec.Struct):
    id: str
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    before_digest: str | None
    after_digest: str | None
    request_id: str | None
    prev_hash: str
    hash: str


class AuditPage(msgspec.Struct):
    items: list[AuditEventOut]
    next_cursor: str | None


class BrokenLink(msgspec.Struct):
    seq: int
    event_id: str | None
    reason: str


class VerifyOut(msgspec.Struct):
    ok: bool
    events_checked: int
    head_seq: int
    first_broken: BrokenLink | None
