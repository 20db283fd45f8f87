"""Matches and clearing: the engine's proposals kept as suggestions or confirmed, manual
matches, write-offs, and undo (a reversal of the clearing entry, never a delete).

Confirming posts one entry through the ledger: the lines' amounts out of suspense, the
items' allocations against their control accounts, the difference (a bank fee within the
account's tolerance) to its fee account. The match row is locked while it is confirmed and
keeps the entry's id, so confirming twice posts once. Lines are always cleared whole; an
item may be left partly paid.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext
from bpo.ledger import service as ledger
from bpo.settlements import accounts, books, items
from bpo.settlements.models import BankAccount, BankLine, Match, OpenItem
from bpo.settlements.schemas import MatchIn, MatchOut
from bpo.webhooks.service import record_events


def match_out(m: Match) -> MatchOut:
    return MatchOut(
        id=str(m.id),
        bank_account=str(m.bank_account_id),
        status=m.status,
        rule=m.rule,
        score=m.score,
        reasons=list(m.reasons),
        lines=m.lines,
        items=m.items,
        fee=m.fee,
        write_off_account=str(m.write_off_account_id) if m.write_off_account_id else None,
        entry=str(m.entry_id) if m.entry_id else None,
        reversal_entry=str(m.reversal_entry_id) if m.reversal_entry_id else None,
        auto=m.auto,
        note=m.note,
        created_by=m.created_by,
        created_at=m.created_at,
        decided_by=m.decided_by,
        decided_at=m.decided_at,
    )


def conflict(detail: str) -> Problem:
    return Problem(409, "conflict", detail)


async def get(session: AsyncSession, match_id: uuid.UUID, lock: bool = False) -> Match:
    query = select(Match).where(Match.id == match_id)
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise Problem(404, "not-found", "no such match")
    return found


async def _lines_of(session: AsyncSession, m: Match) -> list[BankLine]:
    ids = [uuid.UUID(str(p["id"])) for p in m.lines]
    rows = await session.scalars(
        select(BankLine).where(BankLine.id.in_(ids)).order_by(BankLine.id).with_for_update()
    )
    return list(rows)


async def _items_of(session: AsyncSession, m: Match) -> list[OpenItem]:
    ids = [uuid.UUID(str(p["id"])) for p in m.items]
    rows = await session.scalars(
        select(OpenItem).where(OpenItem.id.in_(ids)).order_by(OpenItem.id).with_for_update()
    )
    return list(rows)


async def confirm(
    session: AsyncSession, tenant: TenantContext, who: Any, m: Match, *, auto: bool = False
) -> Match:
    """Post the clearing entry of a suggested match (locked by the caller)."""
    if m.status == "confirmed":
        return m  # confirming again changes nothing and posts nothing
    if m.status != "suggested":
        raise conflict(f"a {m.status} match cannot be confirmed")
    account = await accounts.get(session, m.bank_account_id)
    await clear(session, tenant, who, account, [m])
    await _decided(session, tenant, who, m, "confirmed", None if auto else "match.confirmed")
    return m


_OPEN_LINES = text(
    "SELECT id, open_amount, booking_date FROM settlements_lines"
    " WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"
)
_OPEN_ITEMS = text(
    "SELECT id, open_amount, status, control_account_id, number, kind, amount, amount_min,"
    " amount_max FROM settlements_items"
    " WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"
)
_CLEAR_LINES = text(
    "UPDATE settlements_lines AS l SET open_amount = 0,"
    " status = CASE WHEN v.written_off THEN 'written_off' ELSE 'matched' END"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:off AS boolean[])) AS v(id, written_off)"
    " WHERE l.id = v.id"
)
# `settles`: what the item is now taken to be (an expected payment paid within its range is
# paid in full, for the amount that came), else its amount.
_SETTLE_ITEMS = text(
    "UPDATE settlements_items AS i SET amount = v.settles,"
    " open_amount = i.open_amount + v.settles - i.amount - v.amount,"
    " status = CASE WHEN i.open_amount + v.settles - i.amount - v.amount = 0 THEN 'paid'"
    " WHEN i.open_amount - i.amount - v.amount = 0 THEN 'open' ELSE 'partly_paid' END,"
    " updated_at = now()"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:amounts AS bigint[]), CAST(:settles AS bigint[]))"
    " AS v(id, amount, settles) WHERE i.id = v.id"
)


async def clear(
    session: AsyncSession, tenant: TenantContext, who: Any, account: BankAccount, ms: list[Match]
) -> None:
    """Post the clearing entries of `ms` (one each, in batches) and clear their lines and
    items, after checking under lock that every part is still open as the match says."""
    if account.status != "active" or account.suspense_account_id is None:
        raise conflict("confirm the bank account (and name its ledger accounts) before clearing")
    line_ids = [uuid.UUID(str(p["id"])) for m in ms for p in m.lines]
    item_ids = [uuid.UUID(str(p["id"])) for m in ms for p in m.items]
    lines = {r.id: r for r in (await session.execute(_OPEN_LINES, {"ids": line_ids})).all()}
    found = {r.id: r for r in (await session.execute(_OPEN_ITEMS, {"ids": item_ids})).all()}
    postings = [_posting(account, m, lines, found) for m in ms]
    entry_ids = await books.post(session, tenant, who, postings)
    for m, entry_id in zip(ms, entry_ids, strict=True):
        m.entry_id = uuid.UUID(entry_id)
    off = [not m.items for m in ms for _ in m.lines]
    await session.execute(_CLEAR_LINES, {"ids": line_ids, "off": off})
    amounts = [int(p["amount"]) for m in ms for p in m.items]
    settles = [_settles(found[i], a) for i, a in zip(item_ids, amounts, strict=True)]
    if item_ids:
        await session.execute(
            _SETTLE_ITEMS, {"ids": item_ids, "amounts": amounts, "settles": settles}
        )
    for obj in list(session.identity_map.values()):
        if isinstance(obj, BankLine | OpenItem):
            session.expire(obj)  # changed by SQL above: read afresh when next loaded


def _settles(row: Any, amount: int) -> int:
    """The item's amount once `amount` is applied: for an expected payment whose payments
    come to a total within its range, that total (it is paid in full); else unchanged."""
    total = row.amount - row.open_amount + amount
    ranged = row.kind == "expected" and None not in (row.amount_min, row.amount_max)
    return int(total) if ranged and row.amount_min <= total <= row.amount_max else int(row.amount)


def _posting(account: BankAccount, m: Match, lines: dict[Any, Any], found: dict[Any, Any]) -> Any:
    """The clearing entry of one match, its parts checked against the locked rows."""
    assert account.suspense_account_id is not None
    legs: list[tuple[uuid.UUID, int]] = []
    days = []
    for p in m.lines:
        row = lines.get(uuid.UUID(str(p["id"])))
        if row is None or row.open_amount != int(p["amount"]) or row.open_amount == 0:
            raise conflict(f"bank line {p['id']} was cleared by another match meanwhile")
        legs.append((account.suspense_account_id, row.open_amount))
        days.append(row.booking_date)
    numbers = []
    for p in m.items:
        row = found.get(uuid.UUID(str(p["id"])))
        amount = int(p["amount"])
        if row is None or row.status in ("written_off", "cancelled", "paid"):
            raise conflict(f"open item {p['id']} was settled by another match meanwhile")
        if abs(row.open_amount) < abs(amount) and _settles(row, amount) == row.amount:
            raise conflict(f"{row.number} has only {abs(row.open_amount)} open")
        legs.append((row.control_account_id, -amount))
        numbers.append(row.number)
    rest = -sum(amount for _, amount in legs)
    if rest:
        target = m.write_off_account_id or account.fee_account_id
        if target is None:
            raise accounts.invalid(
                "#/items", "the difference is a bank fee, and the bank account has no fee account"
            )
        legs.append((target, rest))
    day = max(days or [date.today()])
    what = ", ".join(numbers) or "bank lines (written off)"
    return books.entry(day, f"Settlement of {what}", f"match:{m.id}", account.currency, legs)


async def _decided(
    session: AsyncSession, tenant: TenantContext, who: Any, m: Match, status: str, event: str | None
) -> None:
    m.status, m.decided_by, m.decided_at = status, actor_of(who)[:200], datetime.now(UTC)
    await session.flush()
    await audit.record(
        session, tenant.tenant_id, actor=who, action=f"settlements.match.{status}",
        target=f"settlements.match:{m.id}",
        after={"lines": m.lines, "items": m.items, "fee": m.fee,
               "entry": str(m.entry_id) if m.entry_id else None},
    )  # fmt: skip
    if event:
        await record_events(session, tenant, [("match.confirmed", event_of(m))])


def event_of(m: Match) -> dict[str, Any]:
    return {
        "match_id": str(m.id),
        "bank_account": str(m.bank_account_id),
        "lines": m.lines,
        "items": m.items,
        "entry_id": str(m.entry_id) if m.entry_id else None,
        "rule": m.rule,
        "auto": m.auto,
    }


async def reject(
    session: AsyncSession, tenant: TenantContext, who: Any, m: Match, note: str
) -> Match:
    if m.status != "suggested":
        raise conflict(f"only a suggestion can be rejected (this match is {m.status})")
    m.note = note or m.note
    await _decided(session, tenant, who, m, "rejected", None)
    return m


async def undo(
    session: AsyncSession, tenant: TenantContext, who: Any, m: Match, note: str
) -> Match:
    """Reverse a confirmed match's entry and reopen its lines and items."""
    if m.status != "confirmed" or m.entry_id is None:
        raise conflict(f"only a confirmed match can be undone (this match is {m.status})")
    lines, open_items = await _lines_of(session, m), await _items_of(session, m)
    reversal = await ledger.reverse_by_id(session, tenant, who, m.entry_id, f"Undo of match {m.id}")
    m.reversal_entry_id = uuid.UUID(reversal.id)
    by_id = {str(p["id"]): int(p["amount"]) for p in [*m.lines, *m.items]}
    for line in lines:
        line.open_amount += by_id[str(line.id)]
        line.status = "unmatched"
    for item in open_items:
        items.settle(item, -by_id[str(item.id)])
    m.note = note or m.note
    await _decided(session, tenant, who, m, "undone", None)
    return m


async def manual(session: AsyncSession, tenant: TenantContext, who: Any, data: MatchIn) -> Match:
    """A person's match (or write-off), confirmed at once."""
    if not data.lines and not data.items:
        raise accounts.invalid("#/lines", "name at least one bank line or open item")
    lines = [await _line(session, p.id, f"#/lines/{i}") for i, p in enumerate(data.lines)]
    open_items = [await items.get(session, p.id, lock=True) for p in data.items]
    account = await _account_of(session, lines, open_items)
    _one_currency(account, lines, open_items)
    write_off = None
    if data.write_off_account:
        write_off = await _write_off_account(session, data.write_off_account, account.currency)
    line_parts = [
        _part(line.open_amount, p.amount, f"#/lines/{i}")
        for i, (line, p) in enumerate(zip(lines, data.lines, strict=True))
    ]
    if any(part != line.open_amount for part, line in zip(line_parts, lines, strict=True)):
        raise accounts.invalid("#/lines", "a bank line is cleared whole: leave its amount out")
    tolerance = accounts.rules_of(account).fee_tolerance
    allocations = _allocate(sum(line_parts), open_items, data, write_off is not None, tolerance)
    fee = sum(allocations) - sum(line_parts)
    rule = "manual" if write_off is None else "write_off"
    parts = zip(open_items, allocations, strict=True)
    m = Match(
        bank_account_id=account.id, status="suggested", rule=rule, score=1.0,
        reasons=["matched by hand"], fee=abs(fee),
        lines=[{"id": str(line.id), "amount": line.open_amount} for line in lines],
        items=[{"id": str(item.id), "amount": a} for item, a in parts],
        write_off_account_id=write_off, note=data.note, created_by=actor_of(who)[:200],
    )  # fmt: skip
    session.add(m)
    await session.flush()
    return await confirm(session, tenant, who, m)


async def _line(session: AsyncSession, line_id: str, pointer: str) -> BankLine:
    try:
        key = uuid.UUID(line_id)
    except ValueError:
        raise Problem(404, "not-found", f"{pointer}: no bank line {line_id}") from None
    line = await session.scalar(select(BankLine).where(BankLine.id == key).with_for_update())
    if line is None:
        raise Problem(404, "not-found", f"{pointer}: no bank line {line_id}")
    if line.open_amount == 0:
        raise conflict(f"{pointer}: bank line {line_id} is cleared already")
    return line


async def _account_of(
    session: AsyncSession, lines: list[BankLine], open_items: list[OpenItem]
) -> BankAccount:
    ids = {line.bank_account_id for line in lines} or {
        i.bank_account_id for i in open_items if i.bank_account_id
    }
    if len(ids) > 1:
        raise accounts.invalid("#/lines", "the lines are of different bank accounts")
    if not ids:
        raise accounts.invalid(
            "#/lines", "a write-off of items alone names no bank account: add a line"
        )
    return await accounts.get(session, next(iter(ids)))


def _one_currency(account: BankAccount, lines: list[BankLine], open_items: list[OpenItem]) -> None:
    currencies = {account.currency, *(x.currency for x in lines), *(i.currency for i in open_items)}
    if len(currencies) > 1:
        raise Problem(
            422,
            "currency-mismatch",
            f"a match is in one currency; these are in {', '.join(sorted(currencies))}",
        )


async def _write_off_account(session: AsyncSession, ref: str, currency: str) -> uuid.UUID:
    found = (await ledger.accounts_named(session, [ref])).get(ref)
    if found is None or found.status != "active":
        raise accounts.invalid("#/write_off_account", f"no open ledger account {ref!r}")
    if found.currency not in (None, currency):
        raise accounts.invalid(
            "#/write_off_account", f"ledger account {found.code} holds {found.currency}"
        )
    return found.id


def _part(open_amount: int, asked: int | None, pointer: str) -> int:
    if asked is None:
        return open_amount
    if asked > abs(open_amount):
        raise accounts.invalid(pointer, f"{asked} is more than the {abs(open_amount)} open")
    return asked if open_amount > 0 else -asked


def _allocate(
    total: int, open_items: list[OpenItem], data: MatchIn, write_off: bool, tolerance: int
) -> list[int]:
    """What each item takes of the lines' `total`: all that is open (or the amount asked)
    when the lines cover it, or differ by a bank fee within `tolerance`, or the rest is
    written off; when the lines fall short, the items in order (the last left partly paid)."""
    full = [
        _part(i.open_amount, p.amount, f"#/items/{n}")
        for n, (i, p) in enumerate(zip(open_items, data.items, strict=True))
    ]
    for n, item in enumerate(open_items):
        if total and (item.open_amount > 0) != (total > 0):
            raise accounts.invalid(
                f"#/items/{n}", f"{item.kind} {item.number} is paid the other way"
            )
    short = abs(sum(full)) - abs(total)
    if write_off or not total or abs(short) <= tolerance:
        return full
    if short < 0:
        raise accounts.invalid(
            "#/lines", f"the lines exceed the items by {-short}: add items, or write the rest off"
        )
    out, left = [], total
    for want in full:
        take = want if abs(left) >= abs(want) else left
        out.append(take)
        left -= take
    return out
