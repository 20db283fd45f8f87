"""Verify a firm's books: recompute what is maintained and what is chained, report drift.

- Every day's and every running balance, recomputed from the posted lines (in SQL, one
  pass each) and compared with `ledger_balances` and `ledger_totals`.
- Every posted entry balances per currency and in functional currency.
- Every posted entry's content hash, recomputed from its header and lines, matches the one
  stored, and every posting's list of (entry, number, hash) matches the digest its audit
  event carries, whose chain the audit verifier checks. The first entry (by number) where
  this fails is the first broken link.

One REPEATABLE READ snapshot: postings committed meanwhile are not half seen.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bpo.audit.service import digest
from bpo.core.tenancy import TenantContext, tenant_connection
from bpo.ledger.posting import content_hash
from bpo.ledger.schemas import Drift, LedgerVerifyOut

MAX_LISTED = 100
POSTED = "ledger.entries.posted"  # the audit action of a posting (service.POSTED)

_DAYS = """
    WITH lines AS (
        SELECT account_id, currency, effective_on AS on_date,
               sum(greatest(amount, 0))::bigint AS debit,
               sum(greatest(-amount, 0))::bigint AS credit,
               sum(functional_amount)::bigint AS functional
          FROM ledger_lines GROUP BY 1, 2, 3
    )
    SELECT a.code, coalesce(l.currency, b.currency), coalesce(l.on_date, b.on_date),
           l.debit, l.credit, l.functional, b.debit, b.credit, b.functional
      FROM lines l FULL JOIN ledger_balances b USING (account_id, currency, on_date)
      JOIN ledger_accounts a ON a.id = coalesce(l.account_id, b.account_id)
     WHERE (l.debit, l.credit, l.functional) IS DISTINCT FROM (b.debit, b.credit, b.functional)
     ORDER BY 3, 1 LIMIT {limit}
"""
_TOTALS = """
    WITH lines AS (
        SELECT account_id, currency, sum(debit)::bigint AS debit, sum(credit)::bigint AS credit,
               sum(functional)::bigint AS functional
          FROM ledger_balances GROUP BY 1, 2
    )
    SELECT a.code, coalesce(l.currency, t.currency),
           l.debit, l.credit, l.functional, t.debit, t.credit, t.functional
      FROM lines l FULL JOIN ledger_totals t USING (account_id, currency)
      JOIN ledger_accounts a ON a.id = coalesce(l.account_id, t.account_id)
     WHERE (l.debit, l.credit, l.functional) IS DISTINCT FROM (t.debit, t.credit, t.functional)
     ORDER BY 1 LIMIT {limit}
"""
# Entries with their lines in order, one row per line: what the content hash covers.
# Ids and days as text: the canonical form hashes them as text (and a million UUID objects
# would cost more than the hashing).
_ENTRIES = """
    SELECT e.id::text, e.number, e.effective_on::text, e.description, e.reference, e.source,
           e.reverses_id::text, e.content_hash, e.posting_id::text, l.account_id::text,
           l.amount, l.currency, l.functional_amount, l.memo, l.counterparty, l.tags::text
      FROM ledger_entries e JOIN ledger_lines l ON l.entry_id = e.id
     WHERE e.status = 'posted'
     ORDER BY l.entry_id, l.line_no
"""
_EXTRA = " SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;"


async def verify(engine: AsyncEngine, tenant: TenantContext) -> LedgerVerifyOut:
    """Everything above, for one firm; `ok` only if nothing differs."""
    async with tenant_connection(engine, tenant, purpose="worker") as conn:
        await conn.execute(_EXTRA.strip())
        differences = await _balances(conn)
        chained, broken, lines, entries = await _entries(conn)
    recorded = await _recorded_postings(engine, tenant.tenant_id)
    posting_drift = _postings(chained, recorded)
    # Entries are read in id order: the first broken link is the lowest entry number.
    links = sorted(broken + posting_drift, key=_number)
    first_broken = links[0] if links else None
    differences += links
    return LedgerVerifyOut(
        not differences, lines, entries, len(chained), differences[:MAX_LISTED], first_broken
    )


def _number(d: Drift) -> int:
    return d.entry_number if d.entry_number is not None else 1 << 62


async def _balances(conn: asyncpg.Connection) -> list[Drift]:
    out = []
    for code, cur, on, *pair in await conn.fetch(_DAYS.format(limit=MAX_LISTED)):
        out.append(
            Drift(
                "balance",
                f"the lines make {pair[:3]}, the balance says {pair[3:]}"
                " (debit, credit, functional)",
                code,
                cur,
                on,
            )
        )
    for code, cur, *pair in await conn.fetch(_TOTALS.format(limit=MAX_LISTED)):
        out.append(
            Drift(
                "total",
                f"the days make {pair[:3]}, the running total says {pair[3:]}"
                " (debit, credit, functional)",
                code,
                cur,
            )
        )
    return out


async def _entries(
    conn: asyncpg.Connection,
) -> tuple[dict[str, list[list[Any]]], list[Drift], int, int]:
    """Each entry's balance and hash recomputed (`posting.content_hash`); returns the
    postings (posting id → [[entry, number, hash]]), the problems, and how many lines and
    entries were read."""
    postings: dict[str, list[list[Any]]] = {}
    broken: list[Drift] = []
    head: Any = None
    lines: list[list[Any]] = []
    sums: dict[str, int] = {}
    functional = 0
    decode = msgspec.json.decode
    read = entries = 0
    async for row in conn.cursor(_ENTRIES, prefetch=50_000):
        read += 1
        if head is None or row[0] != head[0]:
            if head is not None:
                _check_entry(head, lines, sums, functional, postings, broken)
            head, lines, sums, functional = row, [], {}, 0
            entries += 1
        tags = row[15]
        lines.append(
            [
                row[9],
                row[10],
                row[11],
                row[12],
                row[13],
                row[14],
                [] if tags == "[]" else decode(tags),
            ]
        )
        sums[row[11]] = sums.get(row[11], 0) + row[10]
        functional += row[12]
    if head is not None:
        _check_entry(head, lines, sums, functional, postings, broken)
    return postings, broken, read, entries


def _check_entry(
    head: Any,
    lines: list[list[Any]],
    sums: dict[str, int],
    functional: int,
    postings: dict[str, list[list[Any]]],
    broken: list[Drift],
) -> None:
    entry_id, number, on, description, reference, source, reverses, stored, posting = head[:9]
    if functional or any(sums.values()):
        broken.append(Drift("entry", "the entry does not balance", entry_number=number))
    if content_hash(entry_id, on, description, reference, source, reverses, lines) != stored:
        broken.append(
            Drift(
                "entry",
                "its content no longer matches the hash recorded at posting"
                " (a line or the header was changed)",
                entry_number=number,
            )
        )
    postings.setdefault(posting, []).append([entry_id, number, stored.hex()])


async def _recorded_postings(engine: AsyncEngine, chain_id: uuid.UUID) -> dict[str, str | None]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT target, after_digest FROM platform.audit_events"
                " WHERE chain_id = :c AND action = :a"
            ),
            {"c": chain_id, "a": POSTED},
        )
        return dict(rows.all())


def _postings(chained: dict[str, list[list[Any]]], recorded: dict[str, str | None]) -> list[Drift]:
    """Each posting's entries and hashes against its audit event; audit events whose
    entries are gone."""
    out = []
    for posting, found in chained.items():
        entries = sorted(found, key=lambda e: e[1])  # by number, as the audit event lists them
        target = f"ledger.posting:{posting}"
        if target not in recorded:
            out.append(
                Drift("posting", "no audit event records this posting", entry_number=entries[0][1])
            )
        elif digest({"entries": entries}) != recorded[target]:
            out.append(
                Drift(
                    "posting",
                    "the entries or hashes differ from those the audit chain recorded at posting",
                    entry_number=entries[0][1],
                )
            )
    present = {f"ledger.posting:{p}" for p in chained}
    for target in sorted(set(recorded) - present):
        out.append(Drift("posting", f"the audit chain records {target}, whose entries are gone"))
    return out
