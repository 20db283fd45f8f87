"""The journal: entries drafted, posted, reversed, in ones or in batches of 1,000.

Every posting goes through `post`: the lines are checked against the chart, the period and
the lock date (`books.prepare`: a problem naming the field, nothing written), converted to
the functional currency at the rate of the day, and written in one statement
(`posting.write`) with their audit event, their announcements (`ledger.entry.posted`, so
firms get webhooks) and their usage (`ledger_lines`). Other domains post through these
functions, never into the ledger's tables.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of, prepare_append
from bpo.billing.quotas import QUOTA_SQL, quota_params, usage_checked
from bpo.core.errors import Problem
from bpo.core.ids import uuid7
from bpo.core.sql import SessionSql, Sql
from bpo.core.tenancy import TenantContext
from bpo.jobs.outbox import outbox_params, outbox_row
from bpo.ledger.accounts import Who, not_found
from bpo.ledger.accounts import accounts_named as _accounts_named
from bpo.ledger.books import LEDGER_LINES, Books, Usage, books_for, prepare
from bpo.ledger.models import Account, Entry, Line
from bpo.ledger.outputs import entries_out, posted_out
from bpo.ledger.posting import PostedEntry, PostedLine, stamp, write
from bpo.ledger.reports import balance_at as _balance_at
from bpo.ledger.schemas import ClientSource, DraftUpdate, EntryOut
from bpo.ledger.schemas import EntryIn as EntryIn  # re-exported: other domains post these
from bpo.ledger.schemas import LineIn as LineIn
from bpo.webhooks.service import FAN_OUT, event_calls

POSTED = "ledger.entries.posted"  # the audit action of a posting
_CLIENT_SOURCES: dict[str, ClientSource] = {
    "api": "api",
    "adjustment": "adjustment",
    "opening": "opening",
}


async def post(
    sql: Sql,
    tenant: TenantContext,
    who: Who,
    entries: list[PostedEntry],
    *,
    drafts: bool = False,
    usage: Usage | None = None,
) -> list[PostedEntry]:
    """Write checked entries as posted, audited, announced and metered, in one statement.

    The entries are written last: writing them locks the accounts' balance rows, which
    every posting on those accounts waits for until this commits, so nothing but the commit
    follows them. `usage`: the quota was checked with the books' read."""
    actor = actor_of(who)
    if any(e.booked_at is None for e in entries):
        await stamp(sql, entries, actor)
    if usage is None:
        usage = _usage(entries)
        params = quota_params(tenant, LEDGER_LINES, usage.key, usage.at)
        state = await sql.row(QUOTA_SQL, params)
        assert state is not None
        usage.record = usage_checked(params, state[0], usage.lines, usage.at)
    await write(sql, entries, actor, usage.record | _effects(tenant, who, entries), drafts=drafts)
    return entries


def _usage(entries: list[PostedEntry] | list[EntryIn]) -> Usage:
    lines = sum(len(e.lines) for e in entries)
    return Usage(lines, f"ledger:{uuid7()}", datetime.now(UTC))


def _effects(tenant: TenantContext, who: Who, entries: list[PostedEntry]) -> dict[str, Any]:
    """The posting's announcements (`ledger.entry.posted` each) and its audit event, as the
    parameters of the posting statement."""
    _, calls = event_calls([("ledger.entry.posted", _event(e)) for e in entries])
    outbox = [outbox_row(FAN_OUT, args, kwargs, tenant=tenant) for args, kwargs in calls]
    _, audited = prepare_append(
        tenant.tenant_id, who, POSTED, f"ledger.posting:{entries[0].id}", None,
        posting_record(entries),
    )  # fmt: skip
    return {
        **outbox_params(outbox),
        **audited,
    }


def posting_record(entries: list[PostedEntry]) -> dict[str, Any]:
    """What the audit chain keeps of a posting: each entry's id, number and content hash
    (`ledger verify` recomputes it from the lines and checks it against the chain)."""
    ordered = sorted(entries, key=lambda e: e.number)
    return {"entries": [[str(e.id), e.number, e.content_hash().hex()] for e in ordered]}


def _event(e: PostedEntry) -> dict[str, Any]:
    return {
        "entry_id": str(e.id),
        "number": e.number,
        "effective_on": e.effective_on.isoformat(),
        "reference": e.reference,
        "source": e.source,
        "reverses": str(e.reverses_id) if e.reverses_id else None,
        "lines": len(e.lines),
    }


async def post_new(
    sql: Sql,
    tenant: TenantContext,
    who: Who,
    data: list[EntryIn],
    pointer: str,
    *,
    source: str | None = None,
) -> list[EntryOut]:
    """New posted entries, all or nothing, in two statements (the books, the posting).
    `pointer` prefixes problems' fields: "#" for one entry, "#/entries" for a batch.
    `source`: another domain's postings say whose they are ("settlement")."""
    usage = _usage(data)
    books = await books_for(sql, data, len(data), (tenant, usage))
    prepared = _prepared(books, data, pointer)
    actor = actor_of(who)[:200]
    for entry, number in zip(prepared, books.numbers, strict=True):
        entry.number, entry.booked_at, entry.created_at = number, books.now, books.now
        entry.created_by = actor
        entry.source = source or entry.source
    await post(sql, tenant, who, prepared, usage=usage)
    return [posted_out(p) for p in prepared]


def _prepared(books: Books, data: list[EntryIn], pointer: str) -> list[PostedEntry]:
    one = len(data) == 1 and pointer == "#"
    return [prepare(books, e, pointer if one else f"{pointer}/{i}") for i, e in enumerate(data)]


async def create_entries(
    session: AsyncSession, tenant: TenantContext, who: Who, data: list[EntryIn], pointer: str
) -> list[EntryOut]:
    """New entries, posted or kept as drafts, all or nothing (see `post_new`)."""
    sql = SessionSql(session)
    if all(e.status == "posted" for e in data):
        return await post_new(sql, tenant, who, data, pointer)
    books = await books_for(sql, data)
    prepared = _prepared(books, data, pointer)
    to_post = [p for p, e in zip(prepared, data, strict=True) if e.status == "posted"]
    drafts = [_draft(p, e, who) for p, e in zip(prepared, data, strict=True) if e.status == "draft"]
    if to_post:
        await post(sql, tenant, who, to_post)
    session.add_all(drafts)
    await session.flush()
    for d in drafts:
        await session.refresh(d)
    shown = {str(p.id): posted_out(p) for p in to_post}
    shown |= {o.id: o for o in await entries_out(session, drafts)}
    return [shown[str(p.id)] for p in prepared]


def _draft(p: PostedEntry, data: EntryIn, who: Who) -> Entry:
    return Entry(
        id=p.id,
        status="draft",
        effective_on=p.effective_on,
        description=p.description,
        reference=p.reference,
        source=p.source,
        created_by=actor_of(who)[:200],
        draft_lines=[msgspec.to_builtins(line) for line in data.lines],
    )


async def get_entry(session: AsyncSession, entry_id: uuid.UUID, lock: bool = False) -> Entry:
    query = select(Entry).where(Entry.id == entry_id)
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise not_found("entry")
    return found


def _as_input(entry: Entry, update: DraftUpdate | None = None) -> EntryIn:
    lines = msgspec.convert(entry.draft_lines or [], list[LineIn])
    data = EntryIn(
        entry.effective_on,
        entry.description,
        lines,
        entry.reference,
        "draft",
        _CLIENT_SOURCES.get(entry.source, "api"),
    )
    if update is None:
        return data
    changes = {
        f: getattr(update, f)
        for f in update.__struct_fields__
        if getattr(update, f) is not msgspec.UNSET
    }
    return msgspec.structs.replace(data, **changes)


async def update_draft(
    session: AsyncSession, tenant: TenantContext, who: Who, entry: Entry, data: DraftUpdate
) -> Entry:
    _require_draft(entry)
    changed = _as_input(entry, data)
    books = await books_for(SessionSql(session), [changed])
    prepare(books, changed, "#", entry.id)  # a draft stays postable: checked as if posted
    before = entry_snapshot(entry)
    entry.effective_on, entry.description = changed.effective_on, changed.description
    entry.reference = changed.reference
    entry.draft_lines = [msgspec.to_builtins(line) for line in changed.lines]
    entry.version += 1
    entry.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="ledger.draft.updated",
        target=f"ledger.entry:{entry.id}",
        before=before,
        after=entry_snapshot(entry),
    )
    return entry


async def delete_draft(
    session: AsyncSession, tenant: TenantContext, who: Who, entry: Entry
) -> None:
    _require_draft(entry)
    before = entry_snapshot(entry)
    await session.delete(entry)
    await session.flush()
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="ledger.draft.deleted",
        target=f"ledger.entry:{entry.id}",
        before=before,
    )


def _require_draft(entry: Entry) -> None:
    if entry.status != "draft":
        raise Problem(
            409, "conflict", f"entry {entry.number} is posted: it cannot change (reverse it)"
        )


def entry_snapshot(entry: Entry) -> dict[str, Any]:
    return {
        "effective_on": entry.effective_on.isoformat(),
        "description": entry.description,
        "reference": entry.reference,
        "lines": entry.draft_lines,
    }


async def post_draft(
    session: AsyncSession, tenant: TenantContext, who: Who, entry: Entry
) -> EntryOut:
    _require_draft(entry)
    data = _as_input(entry)
    prepared = prepare(await books_for(SessionSql(session), [data]), data, "#", entry.id)
    prepared.number, prepared.created_at = entry.number, entry.created_at
    prepared.created_by = entry.created_by
    await post(SessionSql(session), tenant, who, [prepared], drafts=True)
    return posted_out(prepared)


async def reverse(
    session: AsyncSession,
    tenant: TenantContext,
    who: Who,
    entry: Entry,
    effective_on: date | None,
    description: str | None,
) -> EntryOut:
    """Post the mirror of a posted entry (same accounts, amounts negated, the same
    functional amounts), linked to it. An entry is reversed once (409 after that)."""
    if entry.status != "posted":
        raise Problem(409, "conflict", "only a posted entry can be reversed (delete a draft)")
    if await session.scalar(select(Entry.id).where(Entry.reverses_id == entry.id)):
        raise Problem(409, "already-reversed", f"entry {entry.number} has been reversed already")
    # A day on or before the lock date, or in a closed period, is refused by the database
    # when the mirror is written (422 period-locked at #/effective_on).
    day = effective_on or entry.effective_on
    rows = await session.execute(
        select(Line, Account.code)
        .join(Account, Account.id == Line.account_id)
        .where(Line.entry_id == entry.id)
        .order_by(Line.line_no)
    )
    lines = [
        PostedLine(
            ln.account_id,
            code,
            -ln.amount,
            ln.currency,
            -ln.functional_amount,
            ln.memo,
            ln.counterparty,
            list(ln.tags),
            "#",
        )
        for ln, code in rows.all()
    ]
    mirror = PostedEntry(
        uuid7(),
        day,
        description or f"Reversal of entry {entry.number}",
        entry.reference,
        "reversal",
        lines,
        reverses_id=entry.id,
    )
    await post(SessionSql(session), tenant, who, [mirror])
    return posted_out(mirror)


# What other domains use of the books (settlements post and reverse through these).
accounts_named = _accounts_named


async def reverse_by_id(
    session: AsyncSession, tenant: TenantContext, who: Who, entry_id: uuid.UUID, description: str
) -> EntryOut:
    """The mirror of posted entry `entry_id` (see `reverse`), dated as the original."""
    return await reverse(
        session, tenant, who, await get_entry(session, entry_id, lock=True), None, description
    )


async def balance_on(session: AsyncSession, account: Account, currency: str, as_of: date) -> int:
    """The account's natural balance in `currency` at the end of `as_of`."""
    out = await _balance_at(session, account, as_of)
    return sum(b.balance for b in out.balances if b.currency == currency)


@dataclass(frozen=True)
class ReconcilableLine:
    """A posted line on an account flagged reconcilable: something the bank should show."""

    id: int
    entry_id: uuid.UUID
    entry_number: int
    line_no: int
    account_id: uuid.UUID
    effective_on: date
    amount: int  # signed, debit positive
    currency: str
    reference: str | None
    counterparty: str | None
    description: str


async def reconcilable_lines(
    session: AsyncSession, after: int, limit: int = 5_000
) -> list[ReconcilableLine]:
    """Lines on reconcilable accounts past line id `after`, oldest first. Reversals and
    settlement postings are left out: they settle items, they are not items themselves."""
    rows = await session.execute(
        select(
            Line.id, Entry.id, Entry.number, Line.line_no, Line.account_id, Line.effective_on,
            Line.amount, Line.currency, Entry.reference, Line.counterparty,
            func.coalesce(Line.memo, Entry.description),
        )
        .join(Account, Account.id == Line.account_id)
        .join(Entry, Entry.id == Line.entry_id)
        .where(
            Line.id > after, Account.reconcilable, Entry.status == "posted",
            Entry.reverses_id.is_(None), Entry.source.not_in(("settlement", "reversal")),
            Line.amount != 0,
        )
        .order_by(Line.id)
        .limit(limit)
    )  # fmt: skip
    return [ReconcilableLine(*row) for row in rows.all()]


async def reversed_among(session: AsyncSession, entry_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of `entry_ids` have been reversed."""
    if not entry_ids:
        return set()
    rows = await session.scalars(select(Entry.reverses_id).where(Entry.reverses_id.in_(entry_ids)))
    return {r for r in rows if r is not None}
