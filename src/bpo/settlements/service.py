"""Settlements as other parts see them: the reconciliation report of a bank account on a
day (statement against books, the difference explained, open items aged), its CSV, and the
bank reconciliation task opened in the work queue from the exceptions.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.tenancy import TenantContext
from bpo.ledger import service as ledger
from bpo.settlements import accounts
from bpo.settlements.models import BankAccount, BankLine, OpenItem, Statement
from bpo.settlements.schemas import Ageing, ReconciliationOut
from bpo.work import service as work

AGEING = ((0, "current"), (30, "days_1_30"), (60, "days_31_60"), (90, "days_61_90"))


async def _ledger_balance(
    session: AsyncSession, account: BankAccount, ref: Any, as_of: date
) -> int:
    if ref is None:
        return 0
    found = (await ledger.accounts_named(session, [str(ref)])).get(str(ref))
    if found is None:
        return 0
    return await ledger.balance_on(session, found, account.currency, as_of)


async def reconciliation(
    session: AsyncSession, account: BankAccount, as_of: date
) -> ReconciliationOut:
    last = await session.scalar(
        select(Statement)
        .where(
            Statement.bank_account_id == account.id,
            Statement.closing_balance.is_not(None),
            Statement.closing_date <= as_of,
        )
        .order_by(Statement.closing_date.desc(), Statement.created_at.desc())
        .limit(1)
    )
    cash = await _ledger_balance(session, account, account.cash_account_id, as_of)
    # Suspense is a holding account: money in sits there as a credit; shown as the bank sees it.
    suspense = -await _ledger_balance(session, account, account.suspense_account_id, as_of)
    lines = (
        BankLine.bank_account_id == account.id,
        BankLine.booking_date <= as_of,
    )
    unposted = await session.scalar(
        select(func.coalesce(func.sum(BankLine.amount), 0)).where(
            *lines, BankLine.posted.is_(False)
        )
    )
    open_in, open_out, count = (
        await session.execute(
            select(
                func.coalesce(func.sum(BankLine.open_amount).filter(BankLine.open_amount > 0), 0),
                func.coalesce(func.sum(BankLine.open_amount).filter(BankLine.open_amount < 0), 0),
                func.count().filter(BankLine.open_amount != 0),
            ).where(*lines, BankLine.posted.is_(True))
        )
    ).one()
    statement_balance = last.closing_balance if last else None
    difference = (statement_balance or 0) - cash
    return ReconciliationOut(
        bank_account=str(account.id), as_of=as_of, currency=account.currency,
        statement_balance=statement_balance, statement_date=last.closing_date if last else None,
        ledger_balance=cash, suspense_balance=suspense, difference=difference,
        unposted_lines=int(unposted or 0), unmatched_in=int(open_in), unmatched_out=int(open_out),
        unmatched_count=int(count), explained=difference == int(unposted or 0),
        receivables=await _ageing(session, account, as_of, 1),
        payables=await _ageing(session, account, as_of, -1),
    )  # fmt: skip


async def _ageing(session: AsyncSession, account: BankAccount, as_of: date, sign: int) -> Ageing:
    """Open items of the account's currency by days past due on `as_of` (positive amounts)."""
    late = func.greatest(0, as_of - OpenItem.due_date)
    rows = await session.execute(
        select(late, func.sum(func.abs(OpenItem.open_amount)))
        .where(
            OpenItem.currency == account.currency,
            OpenItem.status.in_(("open", "partly_paid")),
            OpenItem.issue_date <= as_of,
            (OpenItem.amount > 0) if sign > 0 else (OpenItem.amount < 0),
        )
        .group_by(late)
    )
    buckets = dict.fromkeys(("current", "days_1_30", "days_31_60", "days_61_90", "over_90"), 0)
    for days, total in rows.all():
        name = next((label for limit, label in AGEING if days <= limit), "over_90")
        buckets[name] += int(total)
    return Ageing(**buckets)


async def reconciliation_csv(
    session: AsyncSession, report: ReconciliationOut, account: BankAccount
) -> str:
    """The report as CSV: the summary, then each bank line still open on the day."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "field", "value"])
    for field in ("bank_account", "as_of", "currency", "statement_balance", "statement_date",
                  "ledger_balance", "suspense_balance", "difference", "unposted_lines",
                  "unmatched_in", "unmatched_out", "unmatched_count", "explained"):  # fmt: skip
        writer.writerow(["summary", field, getattr(report, field)])
    for side in ("receivables", "payables"):
        ageing = getattr(report, side)
        for bucket in Ageing.__struct_fields__:
            writer.writerow([side, bucket, getattr(ageing, bucket)])
    writer.writerow([])
    writer.writerow(
        [
            "line_id",
            "booking_date",
            "amount",
            "open_amount",
            "counterparty",
            "reference",
            "description",
        ]
    )
    rows = await session.scalars(
        select(BankLine)
        .where(
            BankLine.bank_account_id == account.id,
            BankLine.booking_date <= report.as_of,
            BankLine.open_amount != 0,
        )
        .order_by(BankLine.booking_date, BankLine.id)
    )
    for line in rows:
        writer.writerow([line.id, line.booking_date, line.amount, line.open_amount,
                         line.counterparty_name or "", line.bank_reference or "",
                         _cell(line.description)])  # fmt: skip
    return out.getvalue()


def _cell(value: str) -> str:
    """A spreadsheet must not run a cell as a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


async def open_task(
    session: AsyncSession, tenant: TenantContext, who: Any, account: BankAccount, period: str
) -> str:
    """A bank reconciliation request in the provider's queue, for the account and month."""
    request = await work.request_service(
        session, tenant, who, "bank-reconciliation",
        {"account": account.identity, "period": period},
        f"Bank reconciliation {account.identity} {period}",
    )  # fmt: skip
    return str(request.id)


get_account = accounts.get
