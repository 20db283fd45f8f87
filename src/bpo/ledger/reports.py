"""Reports from the maintained balances (never from the lines): the trial balance at any
date, the balance sheet, the income statement, an account's balance at a date and its
general ledger with a running balance.

`ledger_balances` holds each account's turnover per currency and day; `ledger_totals` the
running total. A trial balance as of a date is the totals less the days after it, so the
usual question (today, or a recent month end) reads the few rows after the date.
"""

from __future__ import annotations

import base64
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.pagination import bad_cursor
from bpo.core.sql import Sql
from bpo.ledger.accounts import natural, settings_of
from bpo.ledger.models import DEBIT_NORMAL, Account
from bpo.ledger.schemas import (
    AccountBalanceOut,
    BalanceOut,
    LedgerLineOut,
    LedgerPage,
    StatementOut,
    StatementRow,
    TrialBalanceOut,
    TrialRow,
    TrialTotal,
)

_AFTER = """
    WITH after AS (
        SELECT account_id, currency, sum(debit)::bigint AS d, sum(credit)::bigint AS c,
               sum(functional)::bigint AS f
          FROM ledger_balances WHERE on_date > :as_of GROUP BY account_id, currency
    )
"""
_AS_OF_COLUMNS = """
    a.id, a.code, a.name, a.type, a.parent_id, t.currency, t.debit - coalesce(x.d, 0),
    t.credit - coalesce(x.c, 0), t.functional - coalesce(x.f, 0)
"""
_AS_OF_FROM = """
    ledger_totals t JOIN ledger_accounts a ON a.id = t.account_id
    LEFT JOIN after x ON x.account_id = t.account_id AND x.currency = t.currency
"""
_AS_OF_SQL = f"{_AFTER} SELECT {_AS_OF_COLUMNS} FROM {_AS_OF_FROM} ORDER BY a.code, t.currency"  # noqa: S608  # constants
# The trial balance's one statement: the functional currency (settings may not exist yet),
# then each account's balance as of the day (none: one row of NULLs).
_TRIAL_SQL = f"""{_AFTER}
    SELECT s.functional_currency, {_AS_OF_COLUMNS}
      FROM (SELECT 1) AS one LEFT JOIN ledger_settings s ON s.id = 1
      LEFT JOIN ({_AS_OF_FROM}) ON true
     ORDER BY a.code, t.currency
"""  # noqa: S608  # built from the constants above
_AS_OF = text(_AS_OF_SQL)
_BETWEEN = text("""
    SELECT a.id, a.code, a.name, a.type, a.parent_id, b.currency,
           sum(b.debit)::bigint, sum(b.credit)::bigint, sum(b.functional)::bigint
      FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
     WHERE b.on_date BETWEEN :start AND :end AND a.type IN ('income', 'expense')
     GROUP BY a.id, b.currency ORDER BY a.code, b.currency
""")


@dataclass(slots=True)
class Row:
    id: uuid.UUID
    code: str
    name: str
    type: str
    parent_id: uuid.UUID | None
    currency: str
    debit: int  # turnover up to the date
    credit: int
    functional: int  # signed, debit positive


async def _rows(session: AsyncSession, query: object, **params: object) -> list[Row]:
    result = await session.execute(query, params)  # type: ignore[call-overload]
    return [Row(*r) for r in result.all()]


async def trial_balance(sql: Sql, as_of: date) -> TrialBalanceOut:
    """Each account's balance per currency on a side (debit or credit), with the
    functional-currency amounts; both columns total the same. One statement on the hot
    path's bare connection (a read as frequent as postings)."""
    found = await sql.rows(_TRIAL_SQL, {"as_of": as_of})
    currency = (found[0][0] if found else None) or "EUR"  # the default until settings exist
    rows = [
        r
        for r in (Row(*f[1:]) for f in found if f[1] is not None)
        if r.debit or r.credit or r.functional
    ]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    out = []
    for r in rows:
        net = r.debit - r.credit
        out.append(
            TrialRow(
                str(r.id),
                r.code,
                r.name,
                r.type,
                r.currency,
                max(net, 0),
                max(-net, 0),
                max(r.functional, 0),
                max(-r.functional, 0),
            )
        )
        totals[r.currency][0] += max(net, 0)
        totals[r.currency][1] += max(-net, 0)
    functional = [sum(max(r.functional, 0) for r in rows), sum(max(-r.functional, 0) for r in rows)]
    return TrialBalanceOut(
        as_of=as_of,
        functional_currency=currency,
        rows=out,
        totals=[TrialTotal(c, d, cr) for c, (d, cr) in sorted(totals.items())],
        functional_totals=TrialTotal(currency, *functional),
    )


def _rolled_up(rows: list[Row], types: tuple[str, ...]) -> tuple[list[StatementRow], int]:
    """Accounts of `types` in functional currency (natural sign), each with the total of its
    sub-accounts; returns the rows in code order and the section's total."""
    own: dict[uuid.UUID, int] = defaultdict(int)
    info: dict[uuid.UUID, Row] = {}
    for r in rows:
        if r.type in types:
            own[r.id] += r.functional if r.type in DEBIT_NORMAL else -r.functional
            info[r.id] = r
    rolled: dict[uuid.UUID, int] = defaultdict(int)
    for account_id, amount in own.items():
        node: uuid.UUID | None = account_id
        seen: set[uuid.UUID] = set()
        while node is not None and node not in seen:  # up the tree to the root
            seen.add(node)
            rolled[node] += amount
            node = info[node].parent_id if node in info else None
    out = [
        StatementRow(
            str(r.id),
            r.code,
            r.name,
            r.type,
            str(r.parent_id) if r.parent_id else None,
            own[r.id],
            rolled[r.id],
        )
        for r in sorted(info.values(), key=lambda r: r.code)
    ]
    return out, sum(own.values())


async def _with_parents(session: AsyncSession, rows: list[Row]) -> list[Row]:
    """Add (with zero amounts) the ancestors of accounts in `rows`, so reports roll up."""
    have = {r.id for r in rows}
    result = await session.execute(
        text(
            "WITH RECURSIVE up AS (SELECT id, parent_id FROM ledger_accounts WHERE id = ANY(:ids)"
            " UNION SELECT a.id, a.parent_id FROM ledger_accounts a JOIN up ON a.id = up.parent_id)"
            " SELECT a.id, a.code, a.name, a.type, a.parent_id FROM ledger_accounts a"
            " WHERE a.id IN (SELECT id FROM up)"
        ),
        {"ids": list(have)},
    )
    extra = [
        Row(r[0], r[1], r[2], r[3], r[4], currency="", debit=0, credit=0, functional=0)
        for r in result.all()
        if r[0] not in have
    ]
    return rows + extra


async def balance_sheet(session: AsyncSession, as_of: date) -> StatementOut:
    """Assets against liabilities and equity, in functional currency; the year's result not
    yet closed into equity shows as current earnings, so the two sides agree."""
    settings = await settings_of(session)
    rows = await _with_parents(session, await _rows(session, _AS_OF, as_of=as_of))
    assets, total_assets = _rolled_up(rows, ("asset",))
    liabilities, total_liabilities = _rolled_up(rows, ("liability",))
    equity, total_equity = _rolled_up(rows, ("equity",))
    _, income = _rolled_up(rows, ("income",))
    _, expense = _rolled_up(rows, ("expense",))
    earnings = income - expense
    return StatementOut(
        functional_currency=settings.functional_currency,
        as_of=as_of,
        sections={"assets": assets, "liabilities": liabilities, "equity": equity},
        totals={
            "assets": total_assets,
            "liabilities": total_liabilities,
            "equity": total_equity + earnings,
            "current_earnings": earnings,
            "liabilities_and_equity": total_liabilities + total_equity + earnings,
        },
    )


async def income_statement(session: AsyncSession, start: date, end: date) -> StatementOut:
    settings = await settings_of(session)
    rows = await _with_parents(session, await _rows(session, _BETWEEN, start=start, end=end))
    income, total_income = _rolled_up(rows, ("income",))
    expenses, total_expenses = _rolled_up(rows, ("expense",))
    return StatementOut(
        functional_currency=settings.functional_currency,
        start=start,
        end=end,
        sections={"income": income, "expenses": expenses},
        totals={
            "income": total_income,
            "expenses": total_expenses,
            "net_income": total_income - total_expenses,
        },
    )


async def balance_at(session: AsyncSession, account: Account, as_of: date) -> AccountBalanceOut:
    result = await session.execute(
        text(
            "SELECT currency, sum(debit)::bigint, sum(credit)::bigint, sum(functional)::bigint"
            " FROM ledger_balances WHERE account_id = :a AND on_date <= :d"
            " GROUP BY currency ORDER BY currency"
        ),
        {"a": account.id, "d": as_of},
    )
    sign = 1 if account.type in DEBIT_NORMAL else -1
    balances = [
        BalanceOut(c, d, cr, natural(account.type, d, cr), sign * f) for c, d, cr, f in result.all()
    ]
    return AccountBalanceOut(str(account.id), account.code, as_of, balances)


class _Cursor(msgspec.Struct, array_like=True):
    on: date
    line: int


def _cursor(on: date, line: int) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(_Cursor(on, line))).decode().rstrip("=")


def _after(cursor: str | None) -> _Cursor | None:
    if cursor is None:
        return None
    try:
        return msgspec.json.decode(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), type=_Cursor
        )
    except (ValueError, msgspec.DecodeError):
        raise bad_cursor() from None


_PAGE = text("""
    SELECT l.id, l.effective_on, e.id, e.number, e.description, e.reference, l.currency,
           l.amount, l.functional_amount, l.memo, l.counterparty
      FROM ledger_lines l JOIN ledger_entries e ON e.id = l.entry_id
     WHERE l.account_id = :a AND (l.effective_on, l.id) > (:on, :line)
       AND l.effective_on BETWEEN :start AND :end
     ORDER BY l.effective_on, l.id LIMIT :n
""")
# The balance before a position: whole days from the balances, the same day from its lines.
_OPENING = text("""
    SELECT currency, sum(s)::bigint FROM (
        SELECT currency, debit - credit AS s FROM ledger_balances
         WHERE account_id = :a AND on_date < :on
        UNION ALL
        SELECT currency, amount FROM ledger_lines
         WHERE account_id = :a AND effective_on = :on AND id <= :line
    ) x GROUP BY currency
""")


async def account_ledger(
    session: AsyncSession,
    account: Account,
    cursor: str | None,
    limit: int,
    start: date | None,
    end: date | None,
) -> LedgerPage:
    """The account's posted lines in date order, each with the balance after it (natural
    sign, per currency). Pages continue from a cursor; the balance carries across pages."""
    after = _after(cursor)
    first = start or date(1, 1, 1)
    position = after or _Cursor(first, 0)
    result = await session.execute(
        _PAGE,
        {
            "a": account.id,
            "on": position.on,
            "line": position.line,
            "start": first,
            "end": end or date(9999, 12, 31),
            "n": limit + 1,
        },
    )
    rows = result.all()
    opening_at = after or _Cursor(first, 0)
    opened = await session.execute(
        _OPENING, {"a": account.id, "on": opening_at.on, "line": opening_at.line}
    )
    running: dict[str, int] = {c: int(s) for c, s in opened.all()}
    sign = 1 if account.type in DEBIT_NORMAL else -1
    items = []
    for (
        line_id,
        on,
        entry_id,
        number,
        description,
        reference,
        currency,
        amount,
        fun,
        memo,
        cp,
    ) in rows[:limit]:
        running[currency] = running.get(currency, 0) + amount
        items.append(
            LedgerLineOut(
                line_id,
                on,
                str(entry_id),
                number,
                description,
                reference,
                currency,
                max(amount, 0),
                max(-amount, 0),
                sign * running[currency],
                fun,
                memo,
                cp,
            )
        )
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return LedgerPage(items, _cursor(last[1], last[0]) if last else None)
