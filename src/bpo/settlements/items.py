"""Open items: customer invoices and supplier bills (a minimal AR/AP, each posted to its
control account when issued), expected payments (posted only when they arrive), and the
lines posted on ledger accounts flagged reconcilable (pulled in before each matching run).

An item's amounts are stored signed like the bank line that settles it (an invoice and
money expected in are positive, a bill and money expected out negative); the API shows them
positive with a direction.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.core.errors import Problem
from bpo.core.ids import uuid7
from bpo.core.tenancy import TenantContext
from bpo.ledger import service as ledger
from bpo.settlements import accounts, books
from bpo.settlements.models import BankAccount, OpenItem
from bpo.settlements.references import is_rf
from bpo.settlements.schemas import ExpectedIn, InvoiceIn, ItemOut

# The ledger account kinds each item may post to (control, counter).
KINDS = {
    "invoice": (("asset",), ("income",)),
    "bill": (("liability",), ("expense", "asset")),
}


def item_out(i: OpenItem) -> ItemOut:
    sign = 1 if i.amount > 0 else -1
    return ItemOut(
        id=str(i.id),
        kind=i.kind,
        number=i.number,
        counterparty=i.counterparty,
        reference=i.reference,
        issue_date=i.issue_date,
        due_date=i.due_date,
        amount=abs(i.amount),
        direction="in" if sign > 0 else "out",
        currency=i.currency,
        open_amount=sign * i.open_amount,
        status=i.status,
        amount_min=abs(i.amount_min) if i.amount_min is not None else None,
        amount_max=abs(i.amount_max) if i.amount_max is not None else None,
        entry=str(i.entry_id) if i.entry_id else None,
        created_at=i.created_at,
    )


async def _ledger_account(
    session: AsyncSession, ref: str, kinds: tuple[str, ...], currency: str, pointer: str
) -> Any:
    found = (await ledger.accounts_named(session, [ref])).get(ref)
    if found is None:
        raise accounts.invalid(pointer, f"no ledger account {ref!r}")
    if found.type not in kinds:
        raise accounts.invalid(
            pointer, f"ledger account {found.code} is {found.type}, not {kinds[0]}"
        )
    if found.currency not in (None, currency):
        raise accounts.invalid(pointer, f"ledger account {found.code} holds {found.currency}")
    return found


def _check_reference(reference: str | None) -> None:
    if reference and reference.upper().startswith("RF") and not is_rf(reference):
        raise accounts.invalid(
            "#/reference", f"{reference} is not a valid ISO 11649 (RF) reference"
        )


async def _unique(session: AsyncSession, kind: str, number: str) -> None:
    if await session.scalar(
        select(OpenItem.id).where(OpenItem.kind == kind, OpenItem.number == number)
    ):
        raise Problem(409, "conflict", f"{kind} {number} exists already")


async def issue(
    session: AsyncSession, tenant: TenantContext, who: Any, kind: str, data: InvoiceIn
) -> OpenItem:
    """A new invoice or bill, posted to the books as issued."""
    accounts.check_currency(data.currency)
    if data.due_date < data.issue_date:
        raise accounts.invalid("#/due_date", "the due date is before the issue date")
    _check_reference(data.reference)
    await _unique(session, kind, data.number)
    control_kinds, counter_kinds = KINDS[kind]
    control = await _ledger_account(
        session, data.control_account, control_kinds, data.currency, "#/control_account"
    )
    counter = await _ledger_account(
        session, data.account, counter_kinds, data.currency, "#/account"
    )
    sign = 1 if kind == "invoice" else -1
    what = "Invoice" if kind == "invoice" else "Bill"
    posting = books.entry(
        data.issue_date, f"{what} {data.number} {data.counterparty}", data.number, data.currency,
        [(control.id, sign * data.amount), (counter.id, -sign * data.amount)],
    )  # fmt: skip
    [entry_id] = await books.post(session, tenant, who, [posting])
    item = OpenItem(
        kind=kind, number=data.number, counterparty=data.counterparty, reference=data.reference,
        issue_date=data.issue_date, due_date=data.due_date, amount=sign * data.amount,
        currency=data.currency, open_amount=sign * data.amount, control_account_id=control.id,
        counter_account_id=counter.id, entry_id=uuid.UUID(entry_id),
        description=data.description, created_by=actor_of(who)[:200],
    )  # fmt: skip
    return await _added(session, tenant, who, item)


async def expect(
    session: AsyncSession, tenant: TenantContext, who: Any, data: ExpectedIn
) -> OpenItem:
    """A payment the firm expects; nothing is posted until it arrives and is matched."""
    accounts.check_currency(data.currency)
    _check_reference(data.reference)
    low, high = data.amount_min or data.amount, data.amount_max or data.amount
    if not low <= data.amount <= high:
        raise accounts.invalid(
            "#/amount_min", "the range must hold the amount (min <= amount <= max)"
        )
    bank: BankAccount | None = None
    if data.bank_account:
        bank = await accounts.get(session, data.bank_account)
        if bank.currency != data.currency:
            raise accounts.invalid("#/currency", f"the bank account holds {bank.currency}")
    number = data.number or f"EXP-{uuid.uuid4().hex[:12].upper()}"
    await _unique(session, "expected", number)
    kinds = ("asset", "liability", "equity", "income", "expense")
    account = await _ledger_account(session, data.account, kinds, data.currency, "#/account")
    sign = 1 if data.direction == "in" else -1
    item = OpenItem(
        kind="expected", number=number, counterparty=data.counterparty, reference=data.reference,
        end_to_end_id=data.end_to_end_id, issue_date=data.expected_on, due_date=data.expected_on,
        amount=sign * data.amount, amount_min=sign * (low if sign > 0 else high),
        amount_max=sign * (high if sign > 0 else low), window_days=data.window_days,
        currency=data.currency, open_amount=sign * data.amount, control_account_id=account.id,
        bank_account_id=bank.id if bank else None, description=data.description,
        created_by=actor_of(who)[:200],
    )  # fmt: skip
    return await _added(session, tenant, who, item)


async def _added(
    session: AsyncSession, tenant: TenantContext, who: Any, item: OpenItem
) -> OpenItem:
    session.add(item)
    await session.flush()
    await session.refresh(item)
    await audit.record(
        session, tenant.tenant_id, actor=who, action=f"settlements.{item.kind}.created",
        target=f"settlements.item:{item.id}",
        after={"number": item.number, "amount": item.amount, "currency": item.currency},
    )  # fmt: skip
    return item


async def get(session: AsyncSession, item_id: str, lock: bool = False) -> OpenItem:
    try:
        key = uuid.UUID(item_id)
    except ValueError:
        raise Problem(404, "not-found", f"no open item {item_id}") from None
    query = select(OpenItem).where(OpenItem.id == key)
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise Problem(404, "not-found", f"no open item {item_id}")
    return found


def settle(item: OpenItem, amount: int) -> None:
    """Apply `amount` (signed like the item) to the item: paid, or partly paid."""
    item.open_amount -= amount
    item.status = "paid" if item.open_amount == 0 else "partly_paid"
    if item.open_amount == item.amount:
        item.status = "open"


async def pull_ledger_lines(session: AsyncSession) -> int:
    """Make open items of the lines posted on reconcilable ledger accounts since the last
    pull (each line once), and cancel the untouched ones whose entry has been reversed.
    The number of items added."""
    added = 0
    after = await session.scalar(select(func.max(OpenItem.ledger_line_id))) or 0
    while batch := await ledger.reconcilable_lines(session, after, limit=2_000):  # 15 columns
        rows = [_ledger_item(line) for line in batch]
        done = await session.execute(
            insert(OpenItem).values(rows).on_conflict_do_nothing().returning(OpenItem.id)
        )
        added += len(done.all())
        after = batch[-1].id
    untouched = await session.execute(
        select(OpenItem.id, OpenItem.entry_id).where(
            OpenItem.kind == "ledger", OpenItem.status == "open"
        )
    )
    by_entry = {entry: item for item, entry in untouched.all()}
    gone = await ledger.reversed_among(session, [e for e in by_entry if e is not None])
    if gone:
        await session.execute(
            update(OpenItem)
            .where(OpenItem.id.in_([by_entry[e] for e in gone]))
            .values(status="cancelled", updated_at=func.now())
        )
    return added


def _ledger_item(line: ledger.ReconcilableLine) -> dict[str, Any]:
    return {
        "id": uuid7(), "kind": "ledger", "number": f"{line.entry_number}/{line.line_no}",
        "counterparty": (line.counterparty or "")[:200], "reference": (line.reference or "")[:100]
        or None, "issue_date": line.effective_on, "due_date": line.effective_on,
        "amount": line.amount, "open_amount": line.amount, "currency": line.currency,
        "control_account_id": line.account_id, "entry_id": line.entry_id,
        "ledger_line_id": line.id, "description": line.description, "created_by": "ledger",
    }  # fmt: skip
