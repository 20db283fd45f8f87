"""A matching run: a confirmed bank account's open lines against the open items in its
currency, through the account's cascade (`matching`). Matches at or above the account's
threshold are confirmed (posted) at once; the rest are kept as suggestions with their score
and reasons. Lines and items already in a suggestion are left out, so running again
proposes nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.core.ids import uuid7
from bpo.core.tenancy import TenantContext
from bpo.settlements import accounts, clearing, items, matching
from bpo.settlements.models import BankAccount, BankLine, Match, OpenItem
from bpo.settlements.schemas import RunOut
from bpo.webhooks.service import record_events


async def run(
    session: AsyncSession, tenant: TenantContext, who: Any, bank_account_id: str | None
) -> RunOut:
    if bank_account_id:
        targets = [await accounts.get(session, bank_account_id, lock=True)]
    else:
        query = select(BankAccount).where(BankAccount.status == "active").order_by(BankAccount.id)
        targets = list(await session.scalars(query.with_for_update()))
    await items.pull_ledger_lines(session)
    out = RunOut(0, 0, 0, 0, [])
    for account in targets:
        if account.status == "active":
            await _run_one(session, tenant, who, account, out)
    return out


async def _proposed(session: AsyncSession, account: BankAccount) -> tuple[set[str], set[str]]:
    rows = await session.scalars(
        select(Match).where(Match.bank_account_id == account.id, Match.status == "suggested")
    )
    lines, found_items = set(), set()
    for m in rows:
        lines |= {str(p["id"]) for p in m.lines}
        found_items |= {str(p["id"]) for p in m.items}
    return lines, found_items


async def _run_one(
    session: AsyncSession, tenant: TenantContext, who: Any, account: BankAccount, out: RunOut
) -> None:
    taken_lines, taken_items = await _proposed(session, account)
    lines = [
        matching.BankLine(
            str(r.id),
            r.booking_date,
            r.open_amount,
            r.currency,
            r.end_to_end_id,
            r.creditor_reference,
            r.counterparty_name,
            r.description,
            r.reversal,
        )
        for r in (
            await session.execute(
                select(
                    BankLine.id,
                    BankLine.booking_date,
                    BankLine.open_amount,
                    BankLine.currency,
                    BankLine.end_to_end_id,
                    BankLine.creditor_reference,
                    BankLine.counterparty_name,
                    BankLine.description,
                    BankLine.reversal,
                ).where(BankLine.bank_account_id == account.id, BankLine.open_amount != 0)
            )
        ).all()
        if str(r.id) not in taken_lines
    ]
    open_items = [
        matching.OpenItem(
            str(r.id),
            r.kind,
            r.open_amount,
            r.currency,
            r.due_date,
            r.counterparty,
            r.reference or r.number,
            r.end_to_end_id,
            _range(r.amount_min, r.amount, r.open_amount),
            _range(r.amount_max, r.amount, r.open_amount),
            r.window_days,
        )
        for r in (
            await session.execute(
                select(
                    OpenItem.id,
                    OpenItem.kind,
                    OpenItem.open_amount,
                    OpenItem.currency,
                    OpenItem.due_date,
                    OpenItem.counterparty,
                    OpenItem.reference,
                    OpenItem.number,
                    OpenItem.end_to_end_id,
                    OpenItem.amount_min,
                    OpenItem.amount_max,
                    OpenItem.amount,
                    OpenItem.window_days,
                ).where(
                    OpenItem.currency == account.currency,
                    OpenItem.status.in_(("open", "partly_paid")),
                    or_(OpenItem.bank_account_id.is_(None), OpenItem.bank_account_id == account.id),
                )
            )
        ).all()
        if str(r.id) not in taken_items
    ]
    out.lines_considered += len(lines)
    out.items_considered += len(open_items)
    found = matching.match(lines, open_items, _rules(account))
    owed = {i.id: i.amount for i in open_items}
    line_amounts = {line.id: line.amount for line in lines}
    await _keep(session, tenant, who, account, found, owed, line_amounts, out)


def _range(bound: int | None, amount: int, open_amount: int) -> int | None:
    """An expected payment's range, moved by what was paid of it already."""
    return None if bound is None else bound - (amount - open_amount)


def _settled(m: matching.Match, owed: dict[str, int]) -> list[tuple[str, int]]:
    """What each item of a match settles: its allocation, and the bank's fee added to the
    items it left short (in order), so an item paid less a fee is paid in full."""
    fee, out = m.fee, []
    for item_id, allocation in zip(m.item_ids, m.allocations, strict=True):
        sign = 1 if owed[item_id] > 0 else -1
        extra = min(fee, max(0, abs(owed[item_id]) - abs(allocation)))
        fee -= extra
        out.append((item_id, allocation + sign * extra))
    return out


def _rules(account: BankAccount) -> matching.Rules:
    r = accounts.rules_of(account)
    tolerance = r.fee_tolerance if account.fee_account_id else 0  # a fee needs its account
    return matching.Rules(
        steps=tuple(r.steps), auto_confirm=r.auto_confirm, suggest_min=r.suggest_min,
        date_window_days=r.date_window_days, fee_tolerance=tolerance, max_split=r.max_split,
    )  # fmt: skip


async def _keep(
    session: AsyncSession,
    tenant: TenantContext,
    who: Any,
    account: BankAccount,
    found: list[matching.Match],
    owed: dict[str, int],
    line_amounts: dict[str, int],  # each line's open amount as the run loaded it (locked)
    out: RunOut,
) -> None:
    actor = actor_of(who)[:200]
    rows_out = [
        Match(
            id=uuid7(),
            bank_account_id=account.id,
            status="suggested",
            rule=m.rule,
            score=m.score,
            reasons=list(m.reasons),
            fee=m.fee,
            auto=m.auto,
            created_by=actor,
            lines=[{"id": i, "amount": line_amounts[i]} for i in m.line_ids],
            items=[{"id": i, "amount": a} for i, a in _settled(m, owed)],
        )
        for m in found
    ]
    auto = [row for row in rows_out if row.auto]
    if auto:
        await clearing.clear(session, tenant, who, account, auto)
        now = datetime.now(UTC)
        for row in auto:
            row.status, row.decided_by, row.decided_at = "confirmed", actor, now
    session.add_all(rows_out)
    await session.flush()
    out.matches += [str(row.id) for row in rows_out]
    out.confirmed += len(auto)
    out.suggested += len(rows_out) - len(auto)
    if rows_out:
        await audit.record(
            session, tenant.tenant_id, actor=who, action="settlements.matching.run",
            target=f"settlements.bank_account:{account.id}",
            after={"confirmed": [str(r.id) for r in auto], "suggested": len(rows_out) - len(auto)},
        )  # fmt: skip
    await _announce(session, tenant, account, auto)


async def _announce(
    session: AsyncSession, tenant: TenantContext, account: BankAccount, confirmed: list[Match]
) -> None:
    events = [("match.confirmed", clearing.event_of(m)) for m in confirmed]
    left = await session.scalar(
        select(BankLine.id)
        .where(BankLine.bank_account_id == account.id, BankLine.open_amount != 0)
        .limit(1)
    )
    if left is None:
        events.append(("reconciliation.completed", {"bank_account": str(account.id)}))
    if events:
        await record_events(session, tenant, events)
