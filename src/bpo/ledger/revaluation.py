"""Unrealised FX revaluation at month end (as Odoo's): each asset and liability account's
foreign-currency balance is restated at the month-end rate; the difference in functional
currency goes to the firm's FX gain or loss account, and the entry reverses itself on the
first day of the next month, so realised results are not counted twice.

The revaluation lines carry a zero amount in the foreign currency and the difference in
functional currency (the currency's books do not move, only their value). One entry per
month (reference `fx-revaluation:YYYY-MM`); a month already revalued, closed or locked is
left alone.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.ids import uuid7
from bpo.core.sql import SessionSql
from bpo.core.tenancy import TenantContext
from bpo.ledger import money, periods
from bpo.ledger.accounts import settings_of
from bpo.ledger.books import rates_on
from bpo.ledger.models import Entry
from bpo.ledger.posting import PostedEntry, PostedLine
from bpo.ledger.service import post

ACTOR = "system:fx-revaluation"
_FOREIGN = text("""
    SELECT a.id, a.code, b.currency, sum(b.debit - b.credit)::bigint, sum(b.functional)::bigint
      FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
     WHERE b.on_date <= :end AND b.currency <> :functional AND a.type IN ('asset', 'liability')
     GROUP BY a.id, a.code, b.currency
    HAVING sum(b.debit - b.credit) <> 0 OR sum(b.functional) <> 0
     ORDER BY a.code, b.currency
""")


def reference(month: date) -> str:
    return f"fx-revaluation:{periods.period_id(month)}"


async def revalue(session: AsyncSession, tenant: TenantContext, month: date) -> int | None:
    """Post the month's revaluation and its reversal; returns the revaluation's number, or
    None when there is nothing to do (revalued already, no FX accounts, nothing foreign,
    closed or locked)."""
    first = month.replace(day=1)
    end = periods.next_month(first) - timedelta(days=1)
    settings = await settings_of(session)
    if settings.fx_gain_account_id is None or settings.fx_loss_account_id is None:
        return None
    if await session.scalar(select(Entry.id).where(Entry.reference == reference(first))):
        return None
    closed = await periods.closed_among(session, {first, periods.next_month(first)})
    if closed or (settings.lock_date is not None and settings.lock_date >= end):
        return None
    rows = (
        await session.execute(_FOREIGN, {"end": end, "functional": settings.functional_currency})
    ).all()
    rates = await rates_on(session, {(currency, end) for *_, currency, _, _ in rows})
    lines: list[PostedLine] = []
    for account_id, code, currency, balance, functional in rows:
        if (currency, end) not in rates:
            continue  # no rate known: nothing to restate at
        target = money.convert(
            balance, currency, rates[(currency, end)], settings.functional_currency
        )
        diff = target - functional
        if diff == 0:
            continue
        # The account's value moves by `diff`; the gain or loss takes the other side, in the
        # same currency line (amount zero), so each currency still balances.
        offset = settings.fx_gain_account_id if diff > 0 else settings.fx_loss_account_id
        lines.append(PostedLine(account_id, code, 0, currency, diff))
        lines.append(PostedLine(offset, "", 0, currency, -diff))
    if not lines:
        return None
    description = f"Unrealised FX revaluation {periods.period_id(first)}"
    entry = PostedEntry(uuid7(), end, description, reference(first), "revaluation", lines)
    await post(SessionSql(session), tenant, ACTOR, [entry])
    mirror = PostedEntry(
        uuid7(),
        periods.next_month(first),
        f"Reversal of {description.lower()}",
        reference(first),
        "revaluation",
        [
            PostedLine(ln.account_id, ln.account_code, 0, ln.currency, -ln.functional)
            for ln in lines
        ],
        reverses_id=entry.id,
    )
    await post(SessionSql(session), tenant, ACTOR, [mirror])
    return entry.number
