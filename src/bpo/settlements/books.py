"""What settlements post to the books, always through the ledger's service (source
`settlement`), never into its tables:

- imported bank lines: each day's net movement, cash account against suspense, so the cash
  account follows the bank and suspense holds what is not yet explained;
- an invoice or a bill when issued: receivable against the sale, the expense against payable;
- a confirmed match: suspense against the items' control accounts (a bank fee within the
  account's tolerance to its fee account; a write-off to the account chosen).

Amounts are signed here: positive is a debit.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.sql import SessionSql
from bpo.core.tenancy import TenantContext
from bpo.ledger import service as ledger
from bpo.settlements.models import BankAccount, BankLine

MAX_ENTRIES = 1_000  # per ledger call


def entry(
    day: date,
    description: str,
    reference: str | None,
    currency: str,
    legs: Iterable[tuple[uuid.UUID, int]],
) -> ledger.EntryIn:
    """An entry from signed legs (account id, amount); legs on one account are netted."""
    net: dict[uuid.UUID, int] = defaultdict(int)
    for account_id, amount in legs:
        net[account_id] += amount
    lines = [
        ledger.LineIn(
            str(account_id),
            currency,
            amount if amount > 0 else None,
            -amount if amount < 0 else None,
        )
        for account_id, amount in net.items()
        if amount
    ]
    return ledger.EntryIn(day, description[:500], lines, (reference or "")[:200] or None)


async def post(
    session: AsyncSession, tenant: TenantContext, who: Any, entries: list[ledger.EntryIn]
) -> list[str]:
    """Post `entries` (in batches the ledger takes); their ids, in order."""
    ids: list[str] = []
    sql = SessionSql(session)
    for at in range(0, len(entries), MAX_ENTRIES):
        batch = entries[at : at + MAX_ENTRIES]
        posted = await ledger.post_new(sql, tenant, who, batch, "#/entries", source="settlement")
        ids += [p.id for p in posted]
    return ids


async def post_lines(
    session: AsyncSession,
    tenant: TenantContext,
    who: Any,
    account: BankAccount,
    lines: list[tuple[uuid.UUID, date, int]],
) -> None:
    """Book new bank lines of a confirmed account: one entry per booking day."""
    assert account.cash_account_id and account.suspense_account_id
    days: dict[date, int] = defaultdict(int)
    for _, day, amount in lines:
        days[day] += amount
    entries = [
        entry(
            day,
            f"Bank {account.identity}: statement lines of {day.isoformat()}",
            f"bank:{account.identity}:{day.isoformat()}",
            account.currency,
            [(account.cash_account_id, net), (account.suspense_account_id, -net)],
        )
        for day, net in sorted(days.items())
        if net
    ]
    await post(session, tenant, who, entries)
    ids = [line_id for line_id, _, _ in lines]
    for at in range(0, len(ids), 10_000):
        await session.execute(
            update(BankLine).where(BankLine.id.in_(ids[at : at + 10_000])).values(posted=True)
        )
