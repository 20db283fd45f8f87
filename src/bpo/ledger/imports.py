"""CSV journal imports: uploaded, then checked and posted by a job, all or nothing.

The file is UTF-8 CSV with a header row naming these columns (any order; the optional ones
may be left out):

    entry, effective_on, description, account, currency, debit, credit
    [reference, memo, counterparty]

Rows with the same `entry` value make one entry (its date, description and reference from
its first row). Amounts are decimals in the currency's units ("120.50" EUR, "1000" JPY,
"1.005" KWD); a fraction of a minor unit is an error. Every row is checked before anything
posts; errors name the file's line number. Progress (rows checked) is visible while the job
runs; the posting is one transaction.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.core.errors import Problem
from bpo.core.sql import SessionSql
from bpo.core.tenancy import TenantContext
from bpo.jobs.outbox import enqueue
from bpo.ledger import books, money, service
from bpo.ledger.accounts import Who
from bpo.ledger.models import JournalImport
from bpo.ledger.schemas import MAX_AMOUNT, EntryIn, ImportOut, LineIn

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
MAX_ERRORS = 200
REQUIRED = ("entry", "effective_on", "description", "account", "currency")
OPTIONAL = ("debit", "credit", "reference", "memo", "counterparty")
IMPORT_JOB = "import_journal"


def import_out(row: JournalImport) -> ImportOut:
    return ImportOut(
        id=str(row.id),
        status=row.status,
        filename=row.filename,
        rows_total=row.rows_total,
        rows_done=row.rows_done,
        entries_posted=row.entries_posted,
        errors=row.errors,
        created_by=row.created_by,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


async def start(
    session: AsyncSession, tenant: TenantContext, who: Who, body: bytes, filename: str | None
) -> JournalImport:
    """Store the file and queue its job. The header is checked now (a 422 at once)."""
    if len(body) > MAX_BYTES:
        raise Problem(413, "payload-too-large", f"a journal import is at most {MAX_BYTES} bytes")
    try:
        content = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Problem(
            422, "validation-error", f"the file is not UTF-8 (byte {exc.start})"
        ) from None
    header = next(csv.reader(io.StringIO(content)), None)
    missing = [c for c in REQUIRED if c not in (header or [])]
    if missing:
        raise Problem(
            422,
            "validation-error",
            f"line 1: the header lacks {', '.join(missing)}",
            errors=[{"pointer": "#", "detail": f"line 1: missing columns {missing}"}],
        )
    actor = actor_of(who)[:200]
    row = JournalImport(filename=(filename or None), content=content, created_by=actor)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await enqueue(session, IMPORT_JOB, str(row.id), actor, tenant=tenant)
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="ledger.import.started",
        target=f"ledger.import:{row.id}",
        after={"bytes": len(body), "filename": filename},
    )
    return row


@dataclass
class Parsed:
    entries: list[EntryIn] = field(default_factory=list)
    lines_of: list[list[int]] = field(default_factory=list)  # file line numbers per entry
    errors: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0


def _amount(text_value: str, currency: str) -> int | None:
    """A decimal in the currency's units as minor units; None if empty; ValueError if not."""
    value = text_value.strip()
    if not value:
        return None
    try:
        units = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    minor = units.scaleb(money.exponent(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"{value} has more decimals than {currency} has minor units")
    if minor <= 0 or minor > MAX_AMOUNT:
        raise ValueError(f"{value} is not a positive amount")
    return int(minor)


def parse(content: str) -> Parsed:
    """The file as entries, or every error found (line numbers of the file)."""
    out = Parsed()
    groups: dict[str, int] = {}
    reader = csv.DictReader(io.StringIO(content))
    for row in reader:
        line = reader.line_num
        out.rows += 1
        if out.rows > MAX_ROWS:
            out.errors.append({"line": line, "detail": f"more than {MAX_ROWS} rows"})
            break
        try:
            key, draft, ln = _row(row)
        except (ValueError, KeyError) as exc:
            out.errors.append({"line": line, "detail": str(exc).strip("'\"")})
            if len(out.errors) >= MAX_ERRORS:
                break
            continue
        if key not in groups:
            groups[key] = len(out.entries)
            out.entries.append(draft)
            out.lines_of.append([])
        at = groups[key]
        out.entries[at].lines.append(ln)
        out.lines_of[at].append(line)
    return out


def _row(row: dict[str, Any]) -> tuple[str, EntryIn, LineIn]:
    values = {k: (row.get(k) or "").strip() for k in (*REQUIRED, *OPTIONAL)}
    if None in row:
        raise ValueError("the row has more fields than the header")
    for name in REQUIRED:
        if not values[name]:
            raise ValueError(f"{name} is empty")
    currency = values["currency"]
    if not money.is_currency(currency):
        raise ValueError(f"{currency} is not an ISO 4217 currency with minor units")
    debit, credit = _amount(values["debit"], currency), _amount(values["credit"], currency)
    if (debit is None) == (credit is None):
        raise ValueError("give exactly one of debit and credit")
    try:
        day = date.fromisoformat(values["effective_on"])
    except ValueError:
        raise ValueError(
            f"effective_on {values['effective_on']!r} is not a date (YYYY-MM-DD)"
        ) from None
    ln = LineIn(
        values["account"][:36],
        currency,
        debit,
        credit,
        values["memo"][:500] or None,
        values["counterparty"][:200] or None,
    )
    draft = EntryIn(day, values["description"][:500], [], values["reference"][:200] or None)
    return values["entry"], draft, ln


async def run(session_factory: Any, tenant: TenantContext, import_id: Any, actor: str) -> None:
    """The job's work: check every row (progress in short transactions), then post
    everything in one transaction, or record the errors and post nothing."""
    async with session_factory() as session:
        row = await session.get(JournalImport, import_id, with_for_update=True)
        if row is None or row.status not in ("queued", "running"):
            return
        row.status = "running"
        content = row.content or ""
    parsed = parse(content)
    async with session_factory() as session:
        await session.execute(
            update(JournalImport)
            .where(JournalImport.id == import_id)
            .values(rows_total=parsed.rows, rows_done=parsed.rows)
        )
    if parsed.errors:
        await _finish(session_factory, import_id, "failed", parsed.errors, 0)
        return
    try:
        async with session_factory() as session:
            posted = await _post(session, tenant, actor, parsed)
    except _Refused as refused:
        await _finish(session_factory, import_id, "failed", refused.errors, 0)
        return
    except Problem as problem:  # refused by the database (a balance condition, a lock)
        await _finish(session_factory, import_id, "failed", _located(problem, parsed), 0)
        return
    await _finish(session_factory, import_id, "posted", [], posted)


class _Refused(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} errors")
        self.errors = errors


async def _post(session: AsyncSession, tenant: TenantContext, actor: str, parsed: Parsed) -> int:
    """Check every entry against the books (all errors, by line), then post them all."""
    sql = SessionSql(session)
    facts = await books.books_for(sql, parsed.entries)
    prepared, errors = [], []
    for i, data in enumerate(parsed.entries):
        try:
            entry = books.prepare(facts, data, f"#/entries/{i}")
        except Problem as problem:
            errors += _located(problem, parsed)
            continue
        entry.source = "import"
        prepared.append(entry)
    if errors:
        raise _Refused(errors)
    for start_at in range(0, len(prepared), 1000):
        await service.post(sql, tenant, actor, prepared[start_at : start_at + 1000])
    return len(prepared)


def _located(problem: Problem, parsed: Parsed) -> list[dict[str, Any]]:
    """A problem of entry i (line j) as the file's line number."""
    errors = problem.extensions.get("errors") or [{"pointer": "#", "detail": problem.detail}]
    out = []
    for error in errors:
        parts = str(error.get("pointer", "#")).split("/")
        line = None
        if len(parts) > 2 and parts[1] == "entries" and parts[2].isdigit():
            entry = int(parts[2])
            numbers = parsed.lines_of[entry] if entry < len(parsed.lines_of) else []
            if (
                len(parts) > 4
                and parts[3] == "lines"
                and parts[4].isdigit()
                and int(parts[4]) < len(numbers)
            ):
                line = numbers[int(parts[4])]
            elif numbers:
                line = numbers[0]
        out.append({"line": line, "detail": error.get("detail") or problem.detail})
    return out


async def _finish(
    session_factory: Any, import_id: Any, status: str, errors: list[dict[str, Any]], posted: int
) -> None:
    async with session_factory() as session:
        await session.execute(
            update(JournalImport)
            .where(JournalImport.id == import_id)
            .values(
                status=status,
                errors=errors[:MAX_ERRORS],
                entries_posted=posted,
                content=None,
                finished_at=datetime.now(UTC),
            )
        )
