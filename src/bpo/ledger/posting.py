"""Writing posted entries: one statement for any number of entries (a single posting, a
batch of 1,000, an import, a revaluation), the invariants checked at its end.

The statement inserts the entries and their lines and adds their turnover to the day's and
the running balances, each in (account, currency, day) order so concurrent postings take
row locks in one order and never deadlock; in the same statement go the posting's
announcements (the outbox), its audit event and its usage, so a posting holds the balance
rows it locks for one statement and the commit. The database's triggers then hold the rules
(`ledger/ddl.py`); their errors come back as problems here.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg
import msgspec
from sqlalchemy.exc import DBAPIError

from bpo.audit.service import APPEND_SQL
from bpo.billing.quotas import USAGE_SQL
from bpo.core.errors import Problem
from bpo.core.sql import Sql
from bpo.jobs.outbox import OUTBOX_SQL
from bpo.ledger import ddl


@dataclass(slots=True)
class PostedLine:
    account_id: uuid.UUID
    account_code: str
    amount: int  # signed minor units: debit positive
    currency: str
    functional: int  # signed, in the functional currency
    memo: str | None = None
    counterparty: str | None = None
    tags: list[str] = field(default_factory=list)
    pointer: str = "#"  # where the line came from in the request, for problems


@dataclass(slots=True)
class PostedEntry:
    id: uuid.UUID
    effective_on: date
    description: str
    reference: str | None
    source: str
    lines: list[PostedLine]
    reverses_id: uuid.UUID | None = None
    number: int = 0
    pointer: str = "#"
    booked_at: datetime | None = None
    created_at: datetime | None = None
    created_by: str = ""
    _hash: bytes | None = None

    def content_hash(self) -> bytes:
        if self._hash is None:
            self._hash = self._compute_hash()
        return self._hash

    def _compute_hash(self) -> bytes:
        return content_hash(
            str(self.id),
            self.effective_on.isoformat(),
            self.description,
            self.reference,
            self.source,
            str(self.reverses_id) if self.reverses_id else None,
            [
                [
                    str(ln.account_id),
                    ln.amount,
                    ln.currency,
                    ln.functional,
                    ln.memo,
                    ln.counterparty,
                    list(ln.tags),
                ]
                for ln in self.lines
            ],
        )


def content_hash(
    entry_id: str,
    effective_on: str,
    description: str,
    reference: str | None,
    source: str,
    reverses_id: str | None,
    lines: list[list[Any]],
) -> bytes:
    """SHA-256 of a posted entry's canonical JSON: ids and the day as text (as PostgreSQL
    writes them), each line [account id, amount, currency, functional amount, memo,
    counterparty, tags] in order. Posting records it; verify recomputes it from the rows."""
    doc = [entry_id, effective_on, description, reference, source, reverses_id, lines]
    return hashlib.sha256(msgspec.json.encode(doc)).digest()


_ENTRIES_NEW = """
    INSERT INTO ledger_entries (id, number, status, effective_on, booked_at, description,
                                reference, source, reverses_id, content_hash, posting_id,
                                created_by)
    SELECT i, n, 'posted', d, now(), ds, r, s, rv, h, CAST(:posting AS uuid), :who
      FROM unnest(CAST(:ids AS uuid[]), CAST(:numbers AS bigint[]), CAST(:dates AS date[]),
                  CAST(:descriptions AS text[]), CAST(:references AS text[]),
                  CAST(:sources AS text[]), CAST(:reverses AS uuid[]), CAST(:hashes AS bytea[]))
           AS u(i, n, d, ds, r, s, rv, h)
    RETURNING id
"""
# A draft being posted: the same entry row turns posted (its lines leave the draft).
_ENTRIES_DRAFT = """
    UPDATE ledger_entries e SET status = 'posted', booked_at = now(), content_hash = u.h,
           draft_lines = NULL,
           posting_id = CAST(:posting AS uuid),
           version = e.version + 1, updated_at = now()
      FROM unnest(CAST(:ids AS uuid[]), CAST(:hashes AS bytea[])) AS u(i, h)
     WHERE e.id = u.i AND e.status = 'draft'
    RETURNING e.id
"""
_WRITE = """
WITH entries AS ({entries}),
lines AS (
    INSERT INTO ledger_lines (entry_id, line_no, account_id, effective_on, amount, currency,
                              functional_amount, memo, counterparty, tags)
    SELECT e, n, a, d, m, c, f, memo, cp, CAST(t AS jsonb)
      FROM unnest(CAST(:l_entries AS uuid[]), CAST(:l_numbers AS int[]),
                  CAST(:l_accounts AS uuid[]), CAST(:l_dates AS date[]),
                  CAST(:l_amounts AS bigint[]), CAST(:l_currencies AS text[]),
                  CAST(:l_functional AS bigint[]), CAST(:l_memos AS text[]),
                  CAST(:l_counterparties AS text[]), CAST(:l_tags AS text[]))
           AS u(e, n, a, d, m, c, f, memo, cp, t)
),
days AS (
    INSERT INTO ledger_balances AS b (account_id, currency, on_date, debit, credit, functional)
    SELECT a, c, d, sum(greatest(m, 0)), sum(greatest(-m, 0)), sum(f)
      FROM unnest(CAST(:l_accounts AS uuid[]), CAST(:l_currencies AS text[]),
                  CAST(:l_dates AS date[]), CAST(:l_amounts AS bigint[]),
                  CAST(:l_functional AS bigint[])) AS u(a, c, d, m, f)
     GROUP BY a, c, d ORDER BY a, c, d
    ON CONFLICT (account_id, currency, on_date) DO UPDATE
       SET debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
           functional = b.functional + excluded.functional
),
totals AS (
    INSERT INTO ledger_totals AS t (account_id, currency, debit, credit, functional)
    SELECT a, c, sum(greatest(m, 0)), sum(greatest(-m, 0)), sum(f)
      FROM unnest(CAST(:l_accounts AS uuid[]), CAST(:l_currencies AS text[]),
                  CAST(:l_amounts AS bigint[]), CAST(:l_functional AS bigint[])) AS u(a, c, m, f)
     GROUP BY a, c ORDER BY a, c
    ON CONFLICT (account_id, currency) DO UPDATE
       SET debit = t.debit + excluded.debit, credit = t.credit + excluded.credit,
           functional = t.functional + excluded.functional
),
announced AS ({outbox}),
audited AS ({audit}),
metered AS ({usage})
SELECT count(*) FROM entries
"""
_EFFECTS = {"outbox": OUTBOX_SQL, "audit": APPEND_SQL, "usage": USAGE_SQL}
WRITE_NEW = _WRITE.format(entries=_ENTRIES_NEW, **_EFFECTS)
WRITE_DRAFTS = _WRITE.format(entries=_ENTRIES_DRAFT, **_EFFECTS)
# The entry numbers of a posting, and the transaction's time (the booking time the database
# stamps), taken before anything is locked: the audit event and the announcements carry
# them, and are written before the balances' rows are locked (see `service.post`).
_STAMP = (
    "SELECT now(), ARRAY(SELECT nextval(pg_get_serial_sequence('ledger_entries', 'number'))"
    " FROM generate_series(1, :n))"
)


async def stamp(sql: Sql, entries: list[PostedEntry], who: str) -> None:
    """Give new entries their numbers, and all of them their booking time and author."""
    new = [e for e in entries if not e.number]
    row = await sql.row(_STAMP, {"n": len(new)})
    assert row is not None
    now, numbers = row
    for entry, number in zip(new, sorted(numbers), strict=True):
        entry.number = number
    for entry in entries:
        entry.booked_at = now
        entry.created_at = entry.created_at or now
        entry.created_by = entry.created_by or who


async def write(
    sql: Sql,
    entries: list[PostedEntry],
    who: str,
    effects: dict[str, Any],
    *,
    drafts: bool = False,
) -> None:
    """Post `entries` (stamped: new ones, or drafts turning posted) in one statement with
    their `effects` (the outbox's announcements `ev_*`, the audit event, the usage), whose
    end runs the database's checks (balance, lines, lock, conditions)."""
    lines = [(e, n, ln) for e in entries for n, ln in enumerate(e.lines, start=1)]
    params: dict[str, Any] = {
        **effects,
        "posting": entries[0].id,
        "ids": [e.id for e in entries],
        "hashes": [e.content_hash() for e in entries],
        "l_entries": [e.id for e, _, _ in lines],
        "l_numbers": [n for _, n, _ in lines],
        "l_accounts": [ln.account_id for _, _, ln in lines],
        "l_dates": [e.effective_on for e, _, _ in lines],
        "l_amounts": [ln.amount for _, _, ln in lines],
        "l_currencies": [ln.currency for _, _, ln in lines],
        "l_functional": [ln.functional for _, _, ln in lines],
        "l_memos": [ln.memo for _, _, ln in lines],
        "l_counterparties": [ln.counterparty for _, _, ln in lines],
        "l_tags": [msgspec.json.encode(ln.tags).decode() for _, _, ln in lines],
    }
    if not drafts:
        params |= {
            "who": who[:200],
            "numbers": [e.number for e in entries],
            "dates": [e.effective_on for e in entries],
            "descriptions": [e.description for e in entries],
            "references": [e.reference for e in entries],
            "sources": [e.source for e in entries],
            "reverses": [e.reverses_id for e in entries],
        }
    try:
        row = await sql.row(WRITE_DRAFTS if drafts else WRITE_NEW, params)
    except (DBAPIError, asyncpg.PostgresError) as exc:
        raise refused(exc, entries) from None
    written = row[0] if row else 0
    if written != len(entries):  # a draft posted meanwhile by someone else
        raise Problem(409, "conflict", "the draft was posted or deleted meanwhile; reload it")


def sqlstate(exc: DBAPIError | asyncpg.PostgresError) -> str | None:
    orig: Any = exc.orig if isinstance(exc, DBAPIError) else exc
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None)
        if code:
            return str(code)
    return None


def _message(exc: DBAPIError | asyncpg.PostgresError) -> tuple[str, str | None]:
    orig: Any = exc.orig if isinstance(exc, DBAPIError) else exc
    cause: Any = getattr(orig, "__cause__", None) or orig
    return str(getattr(cause, "message", None) or cause), getattr(cause, "detail", None)


def refused(exc: DBAPIError | asyncpg.PostgresError, entries: list[PostedEntry]) -> Exception:
    """The problem a trigger's or constraint's refusal means (anything else stays an error)."""
    code = sqlstate(exc)
    message, detail = _message(exc)
    if code == ddl.CONDITION:
        pointer = next(
            (ln.pointer for e in entries for ln in e.lines if ln.account_code == detail), "#"
        )
        return Problem(
            422, "balance-condition", message, errors=[{"pointer": pointer, "detail": message}]
        )
    if code == ddl.LOCKED:
        which: dict[str, Any] = {"lock_date" if detail and len(detail) == 10 else "period": detail}
        return Problem(
            422,
            "period-locked",
            message,
            **which,
            errors=[{"pointer": entries[0].pointer + "/effective_on", "detail": message}],
        )
    if code in (ddl.UNBALANCED, ddl.IMMUTABLE, ddl.LINE_JOIN, ddl.BOOKED):
        return Problem(422, "validation-error", message)
    if code == "23505" and "reverses_id" in message + str(detail):
        return Problem(409, "already-reversed", "the entry has been reversed already")
    return exc
