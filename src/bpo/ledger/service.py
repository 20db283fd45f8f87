"""The journal: entries drafted, posted, reversed, in ones or in batches of 1,000.

Every posting goes through `post`: the lines are checked against the chart, the period and
the lock date (a problem naming the field, nothing written), converted to the functional
currency at the rate of the day, written in one statement (`posting.write`), then audited,
announced (`ledger.entry.posted`, so firms get webhooks) and metered (`ledger_lines`).
Other domains post through these functions, never into the ledger's tables.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of, prepare_append
from bpo.billing.quotas import QUOTA_SQL, quota_params, usage_checked
from bpo.core.errors import Problem
from bpo.core.ids import uuid7
from bpo.core.sql import SessionSql, Sql
from bpo.core.tenancy import TenantContext
from bpo.jobs.outbox import outbox_row
from bpo.ledger import money, periods
from bpo.ledger.accounts import Who, account_ref, accounts_named, invalid, not_found, settings_of
from bpo.ledger.models import Account, Entry, Line
from bpo.ledger.posting import PostedEntry, PostedLine, stamp, write
from bpo.ledger.schemas import ClientSource, DraftUpdate, EntryIn, EntryLineOut, EntryOut, LineIn
from bpo.webhooks.service import FAN_OUT, event_calls

LEDGER_LINES = "ledger_lines"  # the usage meter of posted lines
POSTED = "ledger.entries.posted"  # the audit action of a posting
_CLIENT_SOURCES: dict[str, ClientSource] = {
    "api": "api",
    "adjustment": "adjustment",
    "opening": "opening",
}


@dataclass(slots=True)
class BookFacts:
    """The settings a posting is checked against."""

    functional_currency: str
    lock_date: date | None


@dataclass(slots=True)
class AccountFacts:
    """What checking a line needs of its account."""

    id: uuid.UUID
    code: str
    type: str
    currency: str | None
    status: str


@dataclass(slots=True)
class Books:
    """What checking a posting needs of the firm's books, read once per request."""

    settings: BookFacts
    closed: set[date]  # first days of closed periods
    accounts: dict[str, AccountFacts]  # by the reference the request used (code or id)
    rates: dict[tuple[str, date], Decimal]
    now: datetime | None = None  # the transaction's time: the booking time of its postings
    numbers: list[int] = field(default_factory=list)  # entry numbers taken for new postings


# The settings, the closed periods among the entries' months, the accounts named, the
# rates of the day, the transaction's time and the new entries' numbers, in one statement
# (a posting's reads cost one round trip).
_BOOKS = """
    SELECT now(), ARRAY(SELECT nextval(pg_get_serial_sequence('ledger_entries', 'number'))
                          FROM generate_series(1, :new)),
           s.functional_currency, s.lock_date,
           ARRAY(SELECT p.starts_on FROM ledger_periods p
                  WHERE p.starts_on = ANY(CAST(:months AS date[])) AND p.status = 'closed'),
           (SELECT json_agg(json_build_array(a.id, a.code, a.type, a.currency, a.status))
              FROM ledger_accounts a
             WHERE a.id = ANY(CAST(:ids AS uuid[])) OR a.code = ANY(CAST(:codes AS text[]))),
           (SELECT json_agg(json_build_array(u.c, u.d, r.rate::text))
              FROM unnest(CAST(:currencies AS text[]), CAST(:days AS date[])) AS u(c, d)
              JOIN LATERAL (SELECT rate FROM ledger_rates
                             WHERE currency = u.c AND on_date <= u.d
                             ORDER BY on_date DESC LIMIT 1) r ON true
             WHERE u.c <> s.functional_currency)
      FROM ledger_settings s WHERE s.id = 1
"""
_BOOKS_AND_QUOTA = _BOOKS.replace(
    "      FROM ledger_settings s", f"           , ({QUOTA_SQL})\n      FROM ledger_settings s"
)
_SETTINGS = "INSERT INTO ledger_settings (id) VALUES (1) ON CONFLICT (id) DO NOTHING"


@dataclass(slots=True)
class Usage:
    """A posting's lines to meter, checked against the quota with the books' read."""

    lines: int
    key: str
    at: datetime
    record: dict[str, Any] = field(default_factory=dict)  # USAGE_SQL's parameters, once checked


async def books_for(
    sql: Sql,
    entries: list[EntryIn],
    new: int = 0,
    usage: tuple[TenantContext, Usage] | None = None,
) -> Books:
    """The books as `entries` need them, numbers for `new` entries to be posted, and (given
    `usage`) the quota checked for their lines (a 402 problem)."""
    refs = {line.account for e in entries for line in e.lines}
    keys = {ref: account_ref(ref) for ref in refs}
    wanted = sorted({(line.currency, e.effective_on) for e in entries for line in e.lines})
    params: dict[str, Any] = {
        "months": sorted({e.effective_on.replace(day=1) for e in entries}),
        "ids": [k for k in keys.values() if isinstance(k, uuid.UUID)],
        "codes": [k for k in keys.values() if isinstance(k, str)],
        "currencies": [c for c, _ in wanted],
        "days": [d for _, d in wanted],
        "new": new,
    }
    statement = _BOOKS
    if usage is not None:
        tenant, metered = usage
        params |= quota_params(tenant, LEDGER_LINES, metered.key, metered.at)
        statement = _BOOKS_AND_QUOTA
    row = await sql.row(statement, params)
    if row is None:  # the firm's first posting: its settings are made with the defaults
        await sql.row(_SETTINGS, {})
        row = await sql.row(statement, params)
        assert row is not None
    now, numbers, functional, lock_date, closed, found, rates, *quota = row
    if usage is not None:
        usage[1].record = usage_checked(params, quota[0], usage[1].lines, usage[1].at)
    by_key: dict[Any, AccountFacts] = {}
    for ident, code, kind, currency, status in found or []:
        facts = AccountFacts(uuid.UUID(ident), code, kind, currency, status)
        by_key[facts.id] = by_key[code] = facts
    return Books(
        BookFacts(functional, lock_date),
        set(closed),
        {ref: by_key[key] for ref, key in keys.items() if key in by_key},
        {(c, date.fromisoformat(d)): Decimal(r) for c, d, r in rates or []},
        now,
        sorted(numbers),
    )


async def rates_on(
    session: AsyncSession, wanted: set[tuple[str, date]]
) -> dict[tuple[str, date], Decimal]:
    """The rate of each (currency, day): the latest set on or before the day."""
    if not wanted:
        return {}
    pairs = sorted(wanted)
    rows = await session.execute(
        text(
            "SELECT c, d, (SELECT rate FROM ledger_rates WHERE currency = c AND on_date <= d"
            " ORDER BY on_date DESC LIMIT 1) FROM unnest(CAST(:cs AS text[]),"
            " CAST(:ds AS date[])) AS u(c, d)"
        ),
        {"cs": [c for c, _ in pairs], "ds": [d for _, d in pairs]},
    )
    return {(c, d): r for c, d, r in rows.all() if r is not None}


def _checked_line(books: Books, line: LineIn, at: str, day: date) -> tuple[AccountFacts, int]:
    """The line's account and signed amount, or a problem naming the field."""
    if (line.debit is None) == (line.credit is None):
        raise invalid(
            at, "give exactly one of debit and credit (a positive integer of minor units)"
        )
    if not money.is_currency(line.currency):
        raise invalid(
            f"{at}/currency", f"{line.currency} is not an ISO 4217 currency with minor units"
        )
    account = books.accounts.get(line.account)
    if account is None:
        raise invalid(f"{at}/account", f"no account {line.account}")
    if account.status != "active":
        raise invalid(f"{at}/account", f"account {account.code} is closed")
    if account.currency is not None and account.currency != line.currency:
        raise invalid(f"{at}/currency", f"account {account.code} holds {account.currency} only")
    if (
        line.currency != books.settings.functional_currency
        and (line.currency, day) not in books.rates
    ):
        raise invalid(
            f"{at}/currency", f"no {line.currency} rate on or before {day} (PUT /ledger/rates)"
        )
    amount = line.debit if line.debit is not None else -(line.credit or 0)
    return account, amount


def prepare(
    books: Books, data: EntryIn, at: str = "#", entry_id: uuid.UUID | None = None
) -> PostedEntry:
    """A checked entry, in functional currency too, ready to write (or a 422 problem)."""
    periods.check_open(books.settings, books.closed, data.effective_on, f"{at}/effective_on")
    checked = [
        _checked_line(books, line, f"{at}/lines/{i}", data.effective_on)
        for i, line in enumerate(data.lines)
    ]
    per_currency: dict[str, int] = defaultdict(int)
    for (_, amount), line in zip(checked, data.lines, strict=True):
        per_currency[line.currency] += amount
    off = {c: s for c, s in per_currency.items() if s}
    if off:
        detail = ", ".join(
            f"{c} debits exceed credits by {s}" if s > 0 else f"{c} credits exceed debits by {-s}"
            for c, s in off.items()
        )
        raise invalid(f"{at}/lines", f"the entry does not balance: {detail}")
    functional = _functional(books, data, [amount for _, amount in checked])
    lines = [
        PostedLine(
            account.id,
            account.code,
            amount,
            line.currency,
            fun,
            line.memo,
            line.counterparty,
            list(line.tags),
            f"{at}/lines/{i}/account",
        )
        for i, ((account, amount), line, fun) in enumerate(
            zip(checked, data.lines, functional, strict=True)
        )
    ]
    return PostedEntry(
        entry_id or uuid7(),
        data.effective_on,
        data.description,
        data.reference,
        data.source,
        lines,
        pointer=at,
    )


def _functional(books: Books, data: EntryIn, amounts: list[int]) -> list[int]:
    """Each line in the functional currency: per currency and side, the side's total is
    converted once and shared out in proportion, so the entry balances in both."""
    target = books.settings.functional_currency
    out = [0] * len(amounts)
    groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
    for i, (line, amount) in enumerate(zip(data.lines, amounts, strict=True)):
        groups[(line.currency, amount > 0)].append(i)
    for (currency, debit), members in groups.items():
        total = sum(abs(amounts[i]) for i in members)
        rate = Decimal(1) if currency == target else books.rates[(currency, data.effective_on)]
        converted = money.convert(total, currency, rate, target)
        shares = money.allocate(converted, [abs(amounts[i]) for i in members])
        for i, share in zip(members, shares, strict=True):
            out[i] = share if debit else -share
    return out


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
    encode = msgspec.json.encode
    return {
        "ev_ids": [r["id"] for r in outbox],
        "ev_tenants": [r["tenant_id"] for r in outbox],
        "ev_actors": [r["actor"] for r in outbox],
        "ev_queues": [r["queue"] for r in outbox],
        "ev_args": [encode(r["args"]).decode() for r in outbox],
        "ev_kwargs": [encode(r["kwargs"]).decode() for r in outbox],
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
    sql: Sql, tenant: TenantContext, who: Who, data: list[EntryIn], pointer: str
) -> list[EntryOut]:
    """New posted entries, all or nothing, in two statements (the books, the posting).
    `pointer` prefixes problems' fields: "#" for one entry, "#/entries" for a batch."""
    usage = _usage(data)
    books = await books_for(sql, data, len(data), (tenant, usage))
    prepared = _prepared(books, data, pointer)
    actor = actor_of(who)[:200]
    for entry, number in zip(prepared, books.numbers, strict=True):
        entry.number, entry.booked_at, entry.created_at = number, books.now, books.now
        entry.created_by = actor
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
    day = effective_on or entry.effective_on
    settings = await settings_of(session)
    periods.check_open(
        settings, await periods.closed_among(session, {day.replace(day=1)}), day, "#/effective_on"
    )
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


async def entry_out(session: AsyncSession, entry: Entry) -> EntryOut:
    return (await entries_out(session, [entry]))[0]


async def entries_out(session: AsyncSession, entries: list[Entry]) -> list[EntryOut]:
    ids = [e.id for e in entries]
    posted: dict[uuid.UUID, list[EntryLineOut]] = defaultdict(list)
    rows = await session.execute(
        select(Line, Account.code)
        .join(Account, Account.id == Line.account_id)
        .where(Line.entry_id.in_(ids))
        .order_by(Line.entry_id, Line.line_no)
    )
    for ln, code in rows.all():
        posted[ln.entry_id].append(_line_out(ln, code))
    found = await session.execute(
        select(Entry.reverses_id, Entry.id).where(Entry.reverses_id.in_(ids))
    )
    reversals = dict(found.all())
    drafts = await _draft_lines_out(session, [e for e in entries if e.status == "draft"])
    return [
        EntryOut(
            id=str(e.id),
            number=e.number,
            status=e.status,
            effective_on=e.effective_on,
            description=e.description,
            reference=e.reference,
            source=e.source,
            lines=posted[e.id] if e.status == "posted" else drafts[e.id],
            created_by=e.created_by,
            created_at=e.created_at,
            booked_at=e.booked_at,
            reverses=str(e.reverses_id) if e.reverses_id else None,
            reversed_by=str(reversals[e.id]) if e.id in reversals else None,
            hash=e.content_hash.hex() if e.content_hash else None,
        )
        for e in entries
    ]


def posted_out(e: PostedEntry) -> EntryOut:
    """A just-posted entry as the API shows it, without reading it back."""
    assert e.created_at is not None
    lines = [
        EntryLineOut(
            line_no=n,
            account_id=str(ln.account_id),
            account_code=ln.account_code,
            currency=ln.currency,
            debit=max(ln.amount, 0),
            credit=max(-ln.amount, 0),
            functional_debit=max(ln.functional, 0),
            functional_credit=max(-ln.functional, 0),
            memo=ln.memo,
            counterparty=ln.counterparty,
            tags=list(ln.tags),
        )
        for n, ln in enumerate(e.lines, start=1)
    ]
    return EntryOut(
        id=str(e.id),
        number=e.number,
        status="posted",
        effective_on=e.effective_on,
        description=e.description,
        reference=e.reference,
        source=e.source,
        lines=lines,
        created_by=e.created_by,
        created_at=e.created_at,
        booked_at=e.booked_at,
        reverses=str(e.reverses_id) if e.reverses_id else None,
        hash=e.content_hash().hex(),
    )


def _line_out(ln: Line, code: str) -> EntryLineOut:
    return EntryLineOut(
        line_no=ln.line_no,
        account_id=str(ln.account_id),
        account_code=code,
        currency=ln.currency,
        debit=max(ln.amount, 0),
        credit=max(-ln.amount, 0),
        functional_debit=max(ln.functional_amount, 0),
        functional_credit=max(-ln.functional_amount, 0),
        memo=ln.memo,
        counterparty=ln.counterparty,
        tags=list(ln.tags),
    )


async def _draft_lines_out(
    session: AsyncSession, drafts: list[Entry]
) -> dict[uuid.UUID, list[EntryLineOut]]:
    out: dict[uuid.UUID, list[EntryLineOut]] = {}
    parsed = {d.id: msgspec.convert(d.draft_lines or [], list[LineIn]) for d in drafts}
    accounts = await accounts_named(
        session, {ln.account for lines in parsed.values() for ln in lines}
    )
    for entry_id, lines in parsed.items():
        out[entry_id] = [
            EntryLineOut(
                line_no=i,
                account_id=str(accounts[ln.account].id) if ln.account in accounts else "",
                account_code=accounts[ln.account].code if ln.account in accounts else ln.account,
                currency=ln.currency,
                debit=ln.debit or 0,
                credit=ln.credit or 0,
                functional_debit=0,
                functional_credit=0,
                memo=ln.memo,
                counterparty=ln.counterparty,
                tags=list(ln.tags),
            )
            for i, ln in enumerate(lines, start=1)
        ]
    return out
