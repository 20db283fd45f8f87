"""The firm's bank accounts: identity checked with schwifty (IBAN check digits and national
formats, BIC), the ledger accounts each mirrors, its matching rules and CSV mapping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext
from bpo.ledger import money
from bpo.ledger import service as ledger
from bpo.settlements.models import BankAccount
from bpo.settlements.schemas import (
    BankAccountIn,
    BankAccountOut,
    BankAccountUpdate,
    CsvMappingIn,
    RulesIn,
)

# Which kinds of ledger account each role may be (a suspense account is a holding account).
ROLES = {
    "cash_account": ("asset",),
    "suspense_account": ("asset", "liability"),
    "fee_account": ("expense",),
}


def invalid(pointer: str, detail: str) -> Problem:
    return Problem(
        422,
        "validation-error",
        f"{pointer}: {detail}",
        errors=[{"pointer": pointer, "detail": detail}],
    )


def check_iban(value: str, pointer: str = "#/iban") -> str:
    try:
        return str(IBAN(value).compact)
    except SchwiftyException as exc:
        raise invalid(pointer, f"not a valid IBAN ({exc})") from None


def check_bic(value: str, pointer: str = "#/bic") -> str:
    try:
        return str(BIC(value).compact)
    except SchwiftyException as exc:
        raise invalid(pointer, f"not a valid BIC ({exc})") from None


def check_currency(code: str, pointer: str = "#/currency") -> str:
    if not money.is_currency(code):
        raise invalid(pointer, f"{code} is not an ISO 4217 currency with minor units")
    return code


def account_out(a: BankAccount, codes: dict[uuid.UUID, str]) -> BankAccountOut:
    def code(account_id: uuid.UUID | None) -> str | None:
        return codes.get(account_id) if account_id else None

    return BankAccountOut(
        id=str(a.id),
        name=a.name,
        iban=a.iban,
        bic=a.bic,
        account_number=a.account_number,
        currency=a.currency,
        status=a.status,
        cash_account=code(a.cash_account_id),
        suspense_account=code(a.suspense_account_id),
        fee_account=code(a.fee_account_id),
        rules=rules_of(a),
        csv_mapping=msgspec.convert(a.csv_mapping, CsvMappingIn) if a.csv_mapping else None,
        created_at=a.created_at,
    )


def rules_of(a: BankAccount) -> RulesIn:
    return msgspec.convert(a.rules or {}, RulesIn)


async def ledger_codes(session: AsyncSession, accounts: list[BankAccount]) -> dict[uuid.UUID, str]:
    ids = {
        str(i)
        for a in accounts
        for i in (a.cash_account_id, a.suspense_account_id, a.fee_account_id)
        if i
    }
    found = await ledger.accounts_named(session, ids)
    return {acc.id: acc.code for acc in found.values()}


async def _ledger_ids(
    session: AsyncSession, currency: str, refs: dict[str, str | None]
) -> dict[str, uuid.UUID]:
    """The ledger accounts named for each role, checked: they exist, are open, of a kind
    the role allows, and hold the bank account's currency."""
    named = {role: ref for role, ref in refs.items() if ref}
    found = await ledger.accounts_named(session, named.values())
    out = {}
    for role, ref in named.items():
        account = found.get(ref)
        pointer = f"#/{role}"
        if account is None:
            raise invalid(pointer, f"no ledger account {ref!r}")
        if account.status != "active":
            raise invalid(pointer, f"ledger account {account.code} is closed")
        if account.type not in ROLES[role]:
            raise invalid(
                pointer, f"ledger account {account.code} is {account.type}, not {ROLES[role][0]}"
            )
        if account.currency not in (None, currency):
            raise invalid(
                pointer, f"ledger account {account.code} holds {account.currency}, not {currency}"
            )
        out[role] = account.id
    return out


async def create(
    session: AsyncSession, tenant: TenantContext, who: Any, data: BankAccountIn
) -> BankAccount:
    currency = check_currency(data.currency)
    iban = check_iban(data.iban) if data.iban else None
    if iban is None and not data.account_number:
        raise invalid("#/iban", "give an IBAN or a local account number")
    refs = {
        "cash_account": data.cash_account,
        "suspense_account": data.suspense_account,
        "fee_account": data.fee_account,
    }
    ids = await _ledger_ids(session, currency, refs)
    identity = iban or (data.account_number or "").strip()
    if await find(session, identity, currency) is not None:
        raise Problem(409, "conflict", f"bank account {identity} ({currency}) exists already")
    bic = check_bic(data.bic) if data.bic else None
    if bic and iban and bic[4:6] != iban[:2]:
        raise invalid("#/bic", f"the BIC is of a bank in {bic[4:6]}, the IBAN of one in {iban[:2]}")
    account = BankAccount(
        name=data.name,
        iban=iban,
        bic=bic,
        account_number=data.account_number,
        identity=identity,
        currency=currency,
        status="active" if {"cash_account", "suspense_account"} <= ids.keys() else "unconfirmed",
        cash_account_id=ids.get("cash_account"),
        suspense_account_id=ids.get("suspense_account"),
        fee_account_id=ids.get("fee_account"),
        rules=msgspec.to_builtins(data.rules or RulesIn()),
        csv_mapping=msgspec.to_builtins(data.csv_mapping) if data.csv_mapping else None,
        created_by=actor_of(who)[:200],
    )
    session.add(account)
    await session.flush()
    await session.refresh(account)
    await _audit(session, tenant, who, "settlements.bank_account.created", account)
    return account


async def update(
    session: AsyncSession,
    tenant: TenantContext,
    who: Any,
    account: BankAccount,
    data: BankAccountUpdate,
) -> bool:
    """Apply a change; True when it confirmed the account (its lines are then posted)."""
    refs = {
        "cash_account": data.cash_account,
        "suspense_account": data.suspense_account,
        "fee_account": data.fee_account,
    }
    for role, account_id in (await _ledger_ids(session, account.currency, refs)).items():
        setattr(account, f"{role}_id", account_id)
    if data.name is not None:
        account.name = data.name
    if data.rules is not None:
        account.rules = msgspec.to_builtins(data.rules)
    if data.csv_mapping is not None:
        account.csv_mapping = msgspec.to_builtins(data.csv_mapping)
    confirmed = data.confirm and account.status == "unconfirmed"
    if confirmed:
        if account.cash_account_id is None or account.suspense_account_id is None:
            raise invalid("#/confirm", "name the cash and suspense ledger accounts to confirm")
        account.status = "active"
    account.updated_at = datetime.now(UTC)
    await session.flush()
    action = "confirmed" if confirmed else "updated"
    await _audit(session, tenant, who, f"settlements.bank_account.{action}", account)
    return confirmed


async def find(session: AsyncSession, identity: str, currency: str) -> BankAccount | None:
    return await session.scalar(
        select(BankAccount).where(
            BankAccount.identity == identity, BankAccount.currency == currency
        )
    )


async def get(
    session: AsyncSession, account_id: str | uuid.UUID, lock: bool = False
) -> BankAccount:
    try:
        key = account_id if isinstance(account_id, uuid.UUID) else uuid.UUID(account_id)
    except ValueError:
        raise Problem(404, "not-found", "no such bank account") from None
    query = select(BankAccount).where(BankAccount.id == key)
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise Problem(404, "not-found", "no such bank account")
    return found


async def _audit(
    session: AsyncSession, tenant: TenantContext, who: Any, action: str, a: BankAccount
) -> None:
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action=action,
        target=f"settlements.bank_account:{a.id}",
        after={"identity": a.identity, "currency": a.currency, "status": a.status},
    )
