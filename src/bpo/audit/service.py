"""Appending to, reading and verifying the audit chains.

Each event stores the SHA-256 of its canonical form, and the canonical form includes the
previous event's hash, so changing, removing or reordering any row breaks the chain from
there on; the head row catches events cut off the end. Appends to one chain serialise on
its head row (`INSERT ... ON CONFLICT DO UPDATE` locks it and returns the newest committed
values), so concurrent transactions never fork the chain.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import structlog
from sqlalchemy import Select, delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from bpo.audit.models import PLATFORM_CHAIN, AuditEvent, AuditHead
from bpo.core.ids import uuid7
from bpo.core.pagination import bad_cursor

GENESIS = bytes(32)  # the "previous hash" of a chain's first event
_encode = msgspec.json.Encoder(order="sorted").encode


def digest(value: Any) -> str | None:
    """SHA-256 (hex) of a value's canonical JSON; None stays None (nothing before a create)."""
    if value is None:
        return None
    return hashlib.sha256(_encode(value)).hexdigest()


def canonical(
    chain_id: uuid.UUID,
    seq: int,
    event_id: uuid.UUID,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    before: str | None,
    after: str | None,
    request_id: str | None,
    prev_hash: bytes,
) -> bytes:
    """The bytes an event's hash covers: a JSON array in a fixed order, times in UTC µs."""
    stamp = at.astimezone(UTC).isoformat(timespec="microseconds")
    fields = [str(chain_id), seq, str(event_id), stamp, actor, action, target, before, after]
    fields.append(request_id)
    return msgspec.json.encode([*fields, prev_hash.hex()])


class Actor(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def subject(self) -> str: ...


def actor_of(who: str | Actor) -> str:
    """ "user:<id>", "staff:<id>", "client:<client_id>" (as the token said), or as given."""
    return who if isinstance(who, str) else f"{who.kind}:{who.subject}"


def _request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value) if value is not None else None


# An append is one insert; the deferred trigger `link_at_commit` numbers and hashes the event
# into its chain when the transaction commits (PostgreSQL hashes the same canonical bytes,
# with the number and the previous hash it finds under the head's lock). A caller can fold
# this insert into a statement of its own (the claim path writes all it does in one).
APPEND_SQL = (
    "INSERT INTO platform.audit_events (chain_id, id, at, actor, action, target,"
    " before_digest, after_digest, request_id, link_before, link_after)"
    " VALUES (:chain, :id, :at, :actor, :action, :target, :before, :after, :request_id,"
    " :before_seq, :after_seq)"
)
_APPEND = text(APPEND_SQL)


async def record(
    session: AsyncSession,
    chain_id: uuid.UUID,
    *,
    actor: str | Actor,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
) -> AuditEvent:
    """Append one event to `chain_id`'s chain in the caller's transaction (linked at its
    commit); `actor` is the request's principal or a name such as "system:worker"."""
    event, params = prepare_append(chain_id, actor, action, target, before, after)
    await session.execute(_APPEND, params)
    return event  # numbered and linked when the transaction commits


def prepare_append(
    chain_id: uuid.UUID,
    actor: str | Actor,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
) -> tuple[AuditEvent, dict[str, Any]]:
    """The event and the parameters of `APPEND_SQL`: the canonical bytes before and after
    the sequence number, which the commit assigns."""
    event = AuditEvent(
        chain_id=chain_id,
        id=uuid7(),
        at=datetime.now(UTC),
        actor=actor_of(actor)[:200],
        action=action[:100],
        target=target[:300],
        before_digest=digest(before),
        after_digest=digest(after),
        request_id=(_request_id() or "")[:200] or None,
    )
    return event, append_params(event)


def append_params(event: Any) -> dict[str, Any]:
    """`APPEND_SQL`'s parameters for an event (its chain, id, time, actor, action, target,
    digests and request id): the canonical bytes before and after the sequence number, which
    the commit assigns. A restore re-appends an exported chain's events with them, so the
    trigger recomputes every number and hash by the formula that made them."""
    rest = canonical(event.chain_id, 0, event.id, event.at, event.actor, event.action,
                     event.target, event.before_digest, event.after_digest, event.request_id,
                     b"")  # fmt: skip
    # rest is ["<chain>",0,...,"<request id>",""]: split around the 0 and the final "".
    head_part, tail = rest.split(b",0,", 1)
    return {
        "chain": event.chain_id, "id": event.id, "at": event.at, "actor": event.actor,
        "action": event.action, "target": event.target, "before": event.before_digest,
        "after": event.after_digest, "request_id": event.request_id,
        "before_seq": (head_part + b",").decode(), "after_seq": ("," + tail[:-4].decode() + ',"'),
    }  # fmt: skip


def _canonical_of(event: Any) -> bytes:
    return canonical(
        event.chain_id,
        event.seq,
        event.id,
        event.at,
        event.actor,
        event.action,
        event.target,
        event.before_digest,
        event.after_digest,
        event.request_id,
        event.prev_hash,
    )


@dataclass(frozen=True)
class EventFilter:
    action: str | None = None
    actor: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


__all__ = [
    "PLATFORM_CHAIN", "actor_of", "append_params", "forget_chain", "list_events", "record",
    "verify", "verify_in",
]  # fmt: skip


async def forget_chain(conn: AsyncConnection, chain_id: uuid.UUID) -> None:
    """Delete a whole chain: only when its tenant is deleted (its export keeps the chain)."""
    await conn.execute(delete(AuditEvent).where(AuditEvent.chain_id == chain_id))
    await conn.execute(delete(AuditHead).where(AuditHead.chain_id == chain_id))


async def list_events(
    session: AsyncSession,
    chain_id: uuid.UUID,
    filters: EventFilter,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[AuditEvent], str | None]:
    """Newest first; the cursor is the sequence number to continue below."""
    query: Select[AuditEvent] = select(AuditEvent).where(AuditEvent.chain_id == chain_id)
    if cursor is not None:
        query = query.where(AuditEvent.seq < _decode_cursor(cursor))
    if filters.action:
        query = query.where(AuditEvent.action == filters.action)
    if filters.actor:
        query = query.where(AuditEvent.actor == filters.actor)
    if filters.target:
        query = query.where(AuditEvent.target == filters.target)
    if filters.since:
        query = query.where(AuditEvent.at >= filters.since)
    if filters.until:
        query = query.where(AuditEvent.at < filters.until)
    rows = (await session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    return rows[:limit], (str(rows[limit - 1].seq) if more else None)


def _decode_cursor(cursor: str) -> int:
    if not cursor.isdigit() or len(cursor) > 18:
        raise bad_cursor()
    return int(cursor)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    events_checked: int
    head_seq: int
    first_broken_seq: int | None = None
    first_broken_id: uuid.UUID | None = None
    reason: str | None = None


_CHAIN_ROWS = (
    "SELECT seq, id, at, actor, action, target, before_digest, after_digest, request_id,"
    " prev_hash, hash FROM platform.audit_events WHERE chain_id = $1 ORDER BY seq"
)
_PREFETCH = 20_000


async def verify(engine: AsyncEngine, chain_id: uuid.UUID) -> Verdict:
    """Walk the chain from its first event; report the first link that does not hold.

    One REPEATABLE READ snapshot, so events appended meanwhile are neither half seen nor
    taken for a cut-off end."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            return await _walk(conn, chain_id)


async def verify_in(conn: AsyncConnection, chain_id: uuid.UUID) -> Verdict:
    """`verify` inside the caller's transaction: a restore checks the chain it loaded before
    it commits (the caller chooses the isolation)."""
    return await _walk(conn, chain_id)


async def _walk(conn: AsyncConnection, chain_id: uuid.UUID) -> Verdict:
    # Rows stream through an asyncpg cursor, no ORM objects (see benchmarks/jobs.py).
    head = (
        await conn.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.chain_id == chain_id)
        )
    ).one_or_none()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    raw: Any = (await conn.get_raw_connection()).driver_connection
    expected, prev, checked = 1, GENESIS, 0
    sha256 = hashlib.sha256
    async for row in raw.cursor(_CHAIN_ROWS, chain_id, prefetch=_PREFETCH):
        seq, ident, at, actor, action, target, before, after, request_id, prev_hash, hash_ = row
        checked += 1
        if seq != expected:  # reported at the first missing number
            reason = f"event {expected} is missing (the next one found is {seq})"
            return Verdict(False, checked, head_seq, expected, None, reason)
        if prev_hash != prev:
            reason = "its previous-hash does not match the event before it"
            return Verdict(False, checked, head_seq, seq, ident, reason)
        fields = (ident, at, actor, action, target, before, after, request_id)
        form = canonical(chain_id, seq, *fields, prev)
        if sha256(form).digest() != hash_:
            reason = "its contents do not match its hash (the row was changed)"
            return Verdict(False, checked, head_seq, seq, ident, reason)
        expected, prev = seq + 1, hash_
    last = expected - 1
    if last != head_seq:
        reason = f"the chain ends at event {last} but its head records event {head_seq}"
        return Verdict(False, checked, head_seq, last + 1, None, reason)
    if prev != head_hash:
        reason = "the last event's hash differs from the one its head records"
        return Verdict(False, checked, head_seq, last, None, reason)
    return Verdict(True, checked, head_seq)
