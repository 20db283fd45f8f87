"""What checking a posting needs of the firm's books, read in one statement, and the
check itself: each line against the chart, the period, the lock date and the rates (a 422
naming the field, nothing written), converted to the functional currency."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.billing.quotas import QUOTA_SQL, quota_params, usage_checked
from bpo.core.ids import uuid7
from bpo.core.sql import Sql
from bpo.core.tenancy import TenantContext
from bpo.ledger import money, periods
from bpo.ledger.accounts import account_ref, invalid
from bpo.ledger.posting import PostedEntry, PostedLine
from bpo.ledger.schemas import EntryIn, LineIn

LEDGER_LINES = "ledger_lines"  # the usage meter of posted lines


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
