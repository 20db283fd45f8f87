"""Statement imports: checked at upload, written by a job with progress.

At upload the file is parsed whole (`formats`): a malformed file, a statement whose closing
balance does not add up, or one for another account or currency is a 422 naming the place,
and nothing is kept. Each statement's account is the one named in the file: an account bpo
has not seen is created `unconfirmed` (imported, not posted or matched until an admin
confirms it). The job then writes the lines, skipping those seen before (`fingerprint`),
flags a gap in continuity with the account's previous statement as a warning (banks send
intraday and corrected statements; refusing them would leave the books behind the bank),
and, for a confirmed account, books each day's net movement from the suspense account to
the cash account through the ledger, so the cash account follows the bank.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.billing.quotas import reserve_usage
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext
from bpo.jobs.outbox import enqueue
from bpo.settlements import accounts, books
from bpo.settlements.formats import (
    CsvMapping,
    ParsedLine,
    ParsedStatement,
    StatementError,
    balance_gap,
    parse_statements,
)
from bpo.settlements.models import BankAccount, BankLine, Statement, StatementImport
from bpo.settlements.schemas import BankStatementOut, StatementImportOut, StatementLineOut
from bpo.webhooks.service import record_events

MAX_BYTES = 128 * 1024 * 1024
# A multi-row INSERT carries at most 32,767 bind parameters (PostgreSQL's protocol limit).
BATCH = 32_767 // 19  # lines per INSERT: 19 columns each
IMPORT_JOB = "settlements.import_statement"
MATCH_JOB = "settlements.match"
STATEMENT_LINES = "statement_lines"  # the usage meter
NO_REFERENCE = {"", "NONREF", "NOTPROVIDED", "NONE", "N/A"}


def import_out(row: StatementImport) -> StatementImportOut:
    return StatementImportOut(
        id=str(row.id),
        status=row.status,
        format=row.format,
        filename=row.filename,
        bank_account=str(row.bank_account_id) if row.bank_account_id else None,
        lines_total=row.lines_total,
        lines_done=row.lines_done,
        lines_imported=row.lines_imported,
        lines_skipped=row.lines_skipped,
        statements=list(row.statement_ids),
        warnings=row.warnings,
        errors=row.errors,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def refused(where: str, detail: str, status: int = 422) -> Problem:
    return Problem(
        status,
        "statement-refused",
        f"{where}: {detail}",
        errors=[{"pointer": where, "detail": detail}],
    )


def parse(body: bytes, account: BankAccount | None) -> list[ParsedStatement]:
    """The file's statements, each checked on its own (balances add up, amounts valid)."""
    mapping = None
    if account is not None and account.csv_mapping:
        mapping = CsvMapping(**account.csv_mapping, default_currency=account.currency)
    try:
        statements = parse_statements(
            body,
            mapping=mapping,
            account=account.identity if account else None,
            currency=account.currency if account else None,
        )
    except StatementError as exc:
        raise refused(exc.where, exc.detail) from None
    if not statements:
        raise refused("file", "the file holds no statement")
    for s in statements:
        gap = balance_gap(s)
        if gap:
            raise refused(
                s.position,
                f"opening {s.opening_balance} + lines {sum(ln.amount for ln in s.lines)}"
                f" != closing {s.closing_balance} (off by {gap} minor units of {s.currency})",
            )
        for line in s.lines:
            if line.currency != s.currency:
                raise refused(line.position, f"a {line.currency} line in a {s.currency} statement")
    return statements


def identity_of(s: ParsedStatement) -> str:
    if s.iban:
        return accounts.check_iban(s.iban, s.position)
    if s.account_number:
        return s.account_number.strip()[:34]
    raise refused(s.position, "the statement names no account (IBAN or account number)")


def _same_account(account: BankAccount, s: ParsedStatement, identity: str) -> None:
    names = {account.identity, account.iban, account.account_number} - {None}
    if identity not in names and (s.account_number or "") not in names:
        raise refused(
            s.position, f"the statement is for account {identity}, not {account.identity}"
        )
    if s.currency != account.currency:
        raise refused(
            s.position, f"the statement is in {s.currency}; the account holds {account.currency}"
        )


async def start(
    session: AsyncSession,
    tenant: TenantContext,
    who: Any,
    body: bytes,
    filename: str | None,
    account: BankAccount | None,
) -> StatementImport:
    """Check the file, find (or create, unconfirmed) its accounts, and queue the job."""
    if len(body) > MAX_BYTES:
        raise refused("file", f"a statement file is at most {MAX_BYTES} bytes", 413)
    statements = parse(body, account)
    found = set()
    for s in statements:
        identity = identity_of(s)
        if account is not None:
            _same_account(account, s, identity)
            found.add(account.id)
        else:
            found.add((await _account_for(session, tenant, who, s, identity)).id)
    actor = actor_of(who)[:200]
    row = StatementImport(
        bank_account_id=next(iter(found)) if len(found) == 1 else None,
        format=statements[0].format[:20],
        filename=filename,
        sha256=hashlib.sha256(body).hexdigest(),
        content=body,
        lines_total=sum(len(s.lines) for s in statements),
        created_by=actor,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await enqueue(session, IMPORT_JOB, str(row.id), actor, tenant=tenant)
    await audit.record(
        session, tenant.tenant_id, actor=who, action="settlements.import.started",
        target=f"settlements.import:{row.id}",
        after={"bytes": len(body), "sha256": row.sha256, "format": row.format},
    )  # fmt: skip
    return row


async def _account_for(
    session: AsyncSession, tenant: TenantContext, who: Any, s: ParsedStatement, identity: str
) -> BankAccount:
    known = await accounts.find(session, identity, s.currency)
    if known is None and s.account_number and s.iban:
        known = await accounts.find(session, s.account_number, s.currency)
    if known is not None:
        return known
    from bpo.settlements.schemas import BankAccountIn

    data = BankAccountIn(
        name=f"{identity} ({s.currency})",
        currency=s.currency,
        iban=identity if s.iban else None,
        bic=s.bic if s.bic and len(s.bic) in (8, 11) else None,
        account_number=None if s.iban else identity,
    )
    try:
        return await accounts.create(session, tenant, who, data)
    except Problem as problem:
        raise refused(s.position, str(problem.detail)) from None


@dataclass
class Outcome:
    imported: int = 0
    skipped: int = 0
    statement_ids: list[str] | None = None
    warnings: list[dict[str, Any]] | None = None


async def run(
    session_factory: Any, tenant: TenantContext, import_id: uuid.UUID, actor: str
) -> None:
    """The job: write the statements and their new lines, post them, in one transaction;
    progress (lines done) is written in short transactions beside it."""
    async with session_factory() as session:
        row = await session.get(StatementImport, import_id, with_for_update=True)
        if row is None or row.status not in ("queued", "running") or row.content is None:
            return
        row.status = "running"
        body, account_id = row.content, row.bank_account_id
    try:
        async with session_factory() as session:
            account = await accounts.get(session, account_id) if account_id else None
            outcome = await _write(
                session, session_factory, tenant, import_id, actor, body, account
            )
    except Problem as problem:  # the ledger refused (a closed period, a quota)
        error = {"pointer": "#", "detail": str(problem.detail or problem.slug)}
        await _finish(session_factory, import_id, "failed", Outcome(), [error])
        return
    await _finish(session_factory, import_id, "done", outcome, [])


async def _write(
    session: AsyncSession,
    session_factory: Any,
    tenant: TenantContext,
    import_id: uuid.UUID,
    actor: str,
    body: bytes,
    account: BankAccount | None,
) -> Outcome:
    out = Outcome(statement_ids=[], warnings=[])
    done, to_match = 0, set()
    for s in parse(body, account):
        target = account or await accounts.find(session, identity_of(s), s.currency)
        assert target is not None  # created at upload
        statement, warning = await _statement(session, target, import_id, s)
        out.statement_ids.append(str(statement.id))  # type: ignore[union-attr]
        if warning:
            out.warnings.append(warning)  # type: ignore[union-attr]
        report = _reporter(session_factory, import_id, done)
        new = await _lines(session, target, statement, s, report)
        out.imported += len(new)
        zero = sum(1 for line in s.lines if line.amount == 0)  # nothing moved: not a line
        out.skipped += len(s.lines) - zero - len(new)
        if zero:
            detail = f"{zero} lines of zero amount not imported"
            out.warnings.append({"pointer": s.position, "code": "zero-amount", "detail": detail})  # type: ignore[union-attr]
        done += len(s.lines)
        await _progress(session_factory, import_id, done)
        if target.status == "active" and new:
            await books.post_lines(session, tenant, actor, target, new)
            to_match.add(target.id)
    if out.imported:
        await reserve_usage(
            session, tenant, STATEMENT_LINES, out.imported, f"statements:{import_id}"
        )
    await record_events(session, tenant, [("statement.imported", {
        "import_id": str(import_id), "statements": out.statement_ids,
        "lines_imported": out.imported, "lines_skipped": out.skipped,
    })])  # fmt: skip
    for bank_account_id in to_match:
        await enqueue(session, MATCH_JOB, str(bank_account_id), actor, tenant=tenant)
    return out


def statement_fingerprint(identity: str, s: ParsedStatement) -> str:
    basis = "|".join(
        str(v)
        for v in (identity, s.currency, s.statement_id, s.opening_date, s.opening_balance,
                  s.closing_date, s.closing_balance, len(s.lines), s.format)
    )  # fmt: skip
    return hashlib.sha256(basis.encode()).hexdigest()


async def _statement(
    session: AsyncSession, account: BankAccount, import_id: uuid.UUID, s: ParsedStatement
) -> tuple[Statement, dict[str, Any] | None]:
    """The statement's row (the same one when it was imported before) and a warning when
    it does not follow on from the account's previous statement."""
    fingerprint = statement_fingerprint(account.identity, s)
    known = await session.scalar(
        select(Statement).where(
            Statement.bank_account_id == account.id, Statement.fingerprint == fingerprint
        )
    )
    if known is not None:
        return known, None
    continuity, warning = await _continuity(session, account, s)
    row = Statement(
        bank_account_id=account.id, import_id=import_id, fingerprint=fingerprint,
        format=s.format[:20], bank_statement_id=(s.statement_id or "")[:100] or None,
        currency=s.currency, opening_balance=s.opening_balance, opening_date=s.opening_date,
        closing_balance=s.closing_balance, closing_date=s.closing_date,
        line_count=len(s.lines), continuity=continuity,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    return row, warning


async def _continuity(
    session: AsyncSession, account: BankAccount, s: ParsedStatement
) -> tuple[str, dict[str, Any] | None]:
    if s.opening_balance is None or s.opening_date is None:
        return "unchecked", None  # camt.054 and MT942 carry no balances
    previous = await session.scalar(
        select(Statement)
        .where(
            Statement.bank_account_id == account.id,
            Statement.closing_balance.is_not(None),
            Statement.closing_date <= s.opening_date,
        )
        .order_by(Statement.closing_date.desc(), Statement.created_at.desc())
        .limit(1)
    )
    if previous is None:
        return "first", None
    if previous.closing_balance == s.opening_balance:
        return "continuous", None
    detail = (
        f"opening balance {s.opening_balance} on {s.opening_date} does not follow the closing"
        f" balance {previous.closing_balance} on {previous.closing_date} of the previous"
        " statement: imported, flagged as a gap"
    )
    return "gap", {"pointer": s.position, "code": "continuity-gap", "detail": detail}


def line_fingerprint(line: ParsedLine, seen: Counter[str]) -> str:
    """The bank's reference when it gives one, else the line's content; either way with
    its place among identical lines, so two equal card payments on a day stay two."""
    ref = (line.bank_reference or "").strip()
    if ref.upper() not in NO_REFERENCE:
        basis = f"ref|{ref}|{line.booking_date}|{line.amount}|{line.reversal}"
    else:
        basis = "|".join(
            str(v)
            for v in ("content", line.booking_date, line.value_date, line.amount, line.currency,
                      line.end_to_end_id, line.creditor_reference, line.counterparty_name,
                      line.counterparty_account, line.description, line.reversal)
        )  # fmt: skip
    seen[basis] += 1
    return hashlib.sha256(f"{basis}|{seen[basis]}".encode()).hexdigest()


def _clip(value: str | None, size: int) -> str | None:
    return value[:size] if value else None


async def _lines(
    session: AsyncSession,
    account: BankAccount,
    statement: Statement,
    s: ParsedStatement,
    progress: Callable[[int], Awaitable[None]],
) -> list[tuple[uuid.UUID, date, int]]:
    """Insert the statement's lines not seen before; returns (id, booking date, amount).
    `progress` hears how many of the statement's lines are written, every few thousand."""
    seen: Counter[str] = Counter()
    rows = [
        {
            "id": uuid.uuid4(),
            "bank_account_id": account.id,
            "statement_id": statement.id,
            "seq": i,
            "fingerprint": line_fingerprint(line, seen),
            "booking_date": line.booking_date,
            "value_date": line.value_date,
            "amount": line.amount,
            "currency": line.currency,
            "open_amount": line.amount,
            "bank_reference": _clip(line.bank_reference, 100),
            "end_to_end_id": _clip(line.end_to_end_id, 100),
            "creditor_reference": _clip(line.creditor_reference, 100),
            "counterparty_name": _clip(line.counterparty_name, 200),
            "counterparty_account": _clip(line.counterparty_account, 100),
            "description": (line.description or "")[:4000],
            "reversal": line.reversal,
            "return_code": _clip(line.return_code, 35),
            "bank_code": _clip(line.bank_code, 60),
        }
        for i, line in enumerate(s.lines)
        if line.amount != 0
    ]
    new: list[tuple[uuid.UUID, date, int]] = []
    for at in range(0, len(rows), BATCH):
        stmt = (
            insert(BankLine)
            .values(rows[at : at + BATCH])
            .on_conflict_do_nothing(index_elements=["bank_account_id", "fingerprint"])
            .returning(BankLine.id, BankLine.booking_date, BankLine.amount)
        )
        new += [(r[0], r[1], r[2]) for r in (await session.execute(stmt)).all()]
        if at and at % (4 * BATCH) == 0:
            await progress(at)
    return new


def _reporter(
    session_factory: Any, import_id: uuid.UUID, before: int
) -> Callable[[int], Awaitable[None]]:
    async def report(n: int) -> None:
        await _progress(session_factory, import_id, before + n)

    return report


async def _progress(session_factory: Any, import_id: uuid.UUID, done: int) -> None:
    async with session_factory() as session:
        await session.execute(
            update(StatementImport).where(StatementImport.id == import_id).values(lines_done=done)
        )


async def _finish(
    session_factory: Any,
    import_id: uuid.UUID,
    status: str,
    outcome: Outcome,
    errors: list[dict[str, Any]],
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "errors": errors,
        "content": None,
        "finished_at": datetime.now(UTC),
        "lines_imported": outcome.imported,
        "lines_skipped": outcome.skipped,
        "statement_ids": outcome.statement_ids or [],
        "warnings": outcome.warnings or [],
    }
    if status == "done":
        values["lines_done"] = StatementImport.lines_total
    async with session_factory() as session:
        await session.execute(
            update(StatementImport).where(StatementImport.id == import_id).values(**values)
        )


async def post_unposted(
    session: AsyncSession, tenant: TenantContext, who: Any, account: BankAccount
) -> None:
    """Book the lines imported while the account was unconfirmed, then match them."""
    rows = await session.execute(
        select(BankLine.id, BankLine.booking_date, BankLine.amount).where(
            BankLine.bank_account_id == account.id, BankLine.posted.is_(False)
        )
    )
    lines = [(r[0], r[1], r[2]) for r in rows.all()]
    if lines:
        await books.post_lines(session, tenant, who, account, lines)
    await enqueue(session, MATCH_JOB, str(account.id), actor_of(who)[:200], tenant=tenant)


def statement_out(s: Statement) -> BankStatementOut:
    return BankStatementOut(
        id=str(s.id), bank_account=str(s.bank_account_id), format=s.format,
        bank_statement_id=s.bank_statement_id, currency=s.currency,
        opening_balance=s.opening_balance, opening_date=s.opening_date,
        closing_balance=s.closing_balance, closing_date=s.closing_date,
        line_count=s.line_count, continuity=s.continuity, created_at=s.created_at,
    )  # fmt: skip


def line_out(r: BankLine) -> StatementLineOut:
    return StatementLineOut(
        id=str(r.id), statement=str(r.statement_id), booking_date=r.booking_date,
        value_date=r.value_date, amount=r.amount, currency=r.currency, open_amount=r.open_amount,
        bank_reference=r.bank_reference, end_to_end_id=r.end_to_end_id,
        creditor_reference=r.creditor_reference, counterparty_name=r.counterparty_name,
        counterparty_account=r.counterparty_account, description=r.description,
        reversal=r.reversal, return_code=r.return_code, bank_code=r.bank_code, status=r.status,
    )  # fmt: skip
