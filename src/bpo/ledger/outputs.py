"""Entries as the API shows them: posted ones from their lines, drafts from their JSON."""

from __future__ import annotations

import uuid
from collections import defaultdict

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.ledger.accounts import accounts_named
from bpo.ledger.models import Account, Entry, Line
from bpo.ledger.posting import PostedEntry
from bpo.ledger.schemas import EntryLineOut, EntryOut, LineIn


async def entry_out(session: AsyncSession, entry: Entry) -> EntryOut:
    return (await entries_out(session, [entry]))[0]


async def entries_out(session: AsyncSession, entries: list[Entry]) -> list[EntryOut]:
    ids = [e.id for e in entries]
    posted: dict[uuid.UUID, list[EntryLineOut]] = defaultdict(list)
    rows = await session.execute(
        select(Line, Account.code)
        .join(Account, Account.id == Line.account_id)
        .where(Line.entry_id.in_(ids))
        .order_by(Line.entry_id, Line.line_no)
    )
    for ln, code in rows.all():
        posted[ln.entry_id].append(_line_out(ln, code))
    found = await session.execute(
        select(Entry.reverses_id, Entry.id).where(Entry.reverses_id.in_(ids))
    )
    reversals = dict(found.all())
    drafts = await _draft_lines_out(session, [e for e in entries if e.status == "draft"])
    return [
        EntryOut(
            id=str(e.id),
            number=e.number,
            status=e.status,
            effective_on=e.effective_on,
            description=e.description,
            reference=e.reference,
            source=e.source,
            lines=posted[e.id] if e.status == "posted" else drafts[e.id],
            created_by=e.created_by,
            created_at=e.created_at,
            booked_at=e.booked_at,
            reverses=str(e.reverses_id) if e.reverses_id else None,
            reversed_by=str(reversals[e.id]) if e.id in reversals else None,
            hash=e.content_hash.hex() if e.content_hash else None,
        )
        for e in entries
    ]


def posted_out(e: PostedEntry) -> EntryOut:
    """A just-posted entry as the API shows it, without reading it back."""
    assert e.created_at is not None
    lines = [
        EntryLineOut(
            line_no=n,
            account_id=str(ln.account_id),
            account_code=ln.account_code,
            currency=ln.currency,
            debit=max(ln.amount, 0),
            credit=max(-ln.amount, 0),
            functional_debit=max(ln.functional, 0),
            functional_credit=max(-ln.functional, 0),
            memo=ln.memo,
            counterparty=ln.counterparty,
            tags=list(ln.tags),
        )
        for n, ln in enumerate(e.lines, start=1)
    ]
    return EntryOut(
        id=str(e.id),
        number=e.number,
        status="posted",
        effective_on=e.effective_on,
        description=e.description,
        reference=e.reference,
        source=e.source,
        lines=lines,
        created_by=e.created_by,
        created_at=e.created_at,
        booked_at=e.booked_at,
        reverses=str(e.reverses_id) if e.reverses_id else None,
        hash=e.content_hash().hex(),
    )


def _line_out(ln: Line, code: str) -> EntryLineOut:
    return EntryLineOut(
        line_no=ln.line_no,
        account_id=str(ln.account_id),
        account_code=code,
        currency=ln.currency,
        debit=max(ln.amount, 0),
        credit=max(-ln.amount, 0),
        functional_debit=max(ln.functional_amount, 0),
        functional_credit=max(-ln.functional_amount, 0),
        memo=ln.memo,
        counterparty=ln.counterparty,
        tags=list(ln.tags),
    )


async def _draft_lines_out(
    session: AsyncSession, drafts: list[Entry]
) -> dict[uuid.UUID, list[EntryLineOut]]:
    out: dict[uuid.UUID, list[EntryLineOut]] = {}
    parsed = {d.id: msgspec.convert(d.draft_lines or [], list[LineIn]) for d in drafts}
    accounts = await accounts_named(
        session, {ln.account for lines in parsed.values() for ln in lines}
    )
    for entry_id, lines in parsed.items():
        out[entry_id] = [
            EntryLineOut(
                line_no=i,
                account_id=str(accounts[ln.account].id) if ln.account in accounts else "",
                account_code=accounts[ln.account].code if ln.account in accounts else ln.account,
                currency=ln.currency,
                debit=ln.debit or 0,
                credit=ln.credit or 0,
                functional_debit=0,
                functional_credit=0,
                memo=ln.memo,
                counterparty=ln.counterparty,
                tags=list(ln.tags),
            )
            for i, ln in enumerate(lines, start=1)
        ]
    return out
