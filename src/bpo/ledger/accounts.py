"""The chart of accounts and the firm's ledger settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from msgspec import UNSET
from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import Actor
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext
from bpo.ledger import chart, money
from bpo.ledger.models import DEBIT_NORMAL, Account, LedgerSettings, Total
from bpo.ledger.schemas import AccountIn, AccountOut, AccountUpdate, BalanceOut, SettingsIn

Who = str | Actor


def invalid(
    pointer: str, detail: str, status: int = 422, slug: str = "validation-error"
) -> Problem:
    return Problem(
        status, slug, f"{pointer}: {detail}", errors=[{"pointer": pointer, "detail": detail}]
    )


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", f"no such {what}")


async def settings_of(session: AsyncSession, lock: bool = False) -> LedgerSettings:
    """The firm's ledger settings (made with the defaults on first use)."""
    await session.execute(
        text("INSERT INTO ledger_settings (id) VALUES (1) ON CONFLICT (id) DO NOTHING")
    )
    query = select(LedgerSettings).where(LedgerSettings.id == 1)
    found = await session.scalar(query.with_for_update() if lock else query)
    assert found is not None
    return found


def account_ref(ref: str) -> uuid.UUID | str:
    """An account named by id (a UUID) or by its code."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        return ref


async def accounts_named(session: AsyncSession, refs: Iterable[str]) -> dict[str, Account]:
    """The accounts `refs` name (ids or codes), keyed by the ref as given."""
    wanted = {ref: account_ref(ref) for ref in set(refs)}
    ids = [v for v in wanted.values() if isinstance(v, uuid.UUID)]
    codes = [v for v in wanted.values() if isinstance(v, str)]
    if not wanted:
        return {}
    rows = await session.scalars(
        select(Account).where(or_(Account.id.in_(ids), Account.code.in_(codes)))
    )
    by_key: dict[Any, Account] = {}
    for account in rows:
        by_key[account.id] = by_key[account.code] = account
    return {ref: by_key[key] for ref, key in wanted.items() if key in by_key}


async def get_account(session: AsyncSession, ref: str, lock: bool = False) -> Account:
    key = account_ref(ref)
    column = Account.id if isinstance(key, uuid.UUID) else Account.code
    query = select(Account).where(column == key)
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise not_found("account")
    return found


def natural(account_type: str, debit: int, credit: int) -> int:
    return debit - credit if account_type in DEBIT_NORMAL else credit - debit


async def balances_of(session: AsyncSession, account: Account) -> list[BalanceOut]:
    rows = await session.execute(
        select(Total.currency, Total.debit, Total.credit, Total.functional)
        .where(Total.account_id == account.id)
        .order_by(Total.currency)
    )
    sign = 1 if account.type in DEBIT_NORMAL else -1
    return [
        BalanceOut(c, d, cr, natural(account.type, d, cr), sign * f) for c, d, cr, f in rows.all()
    ]


def account_out(a: Account, balances: list[BalanceOut] | None = None) -> AccountOut:
    return AccountOut(
        id=str(a.id),
        code=a.code,
        name=a.name,
        type=a.type,
        parent_id=str(a.parent_id) if a.parent_id else None,
        currency=a.currency,
        status=a.status,
        min_balance=a.min_balance,
        max_balance=a.max_balance,
        description=a.description,
        reconcilable=a.reconcilable,
        created_at=a.created_at,
        updated_at=a.updated_at,
        balances=balances,
    )


def _check_currency(code: str | None, pointer: str) -> None:
    if code is not None and not money.is_currency(code):
        raise invalid(pointer, f"{code} is not an ISO 4217 currency with minor units")


async def _parent(session: AsyncSession, ref: str | None, account_type: str) -> uuid.UUID | None:
    if ref is None:
        return None
    try:
        parent = await get_account(session, ref)
    except Problem:
        raise invalid("#/parent", f"no account {ref}") from None
    if parent.type != account_type:
        raise invalid("#/parent", f"the parent is an {parent.type} account, not {account_type}")
    return parent.id


async def create_account(
    session: AsyncSession, tenant: TenantContext, who: Who, data: AccountIn
) -> Account:
    _check_currency(data.currency, "#/currency")
    if await session.scalar(select(Account.id).where(Account.code == data.code)):
        raise invalid("#/code", f"an account with code {data.code} exists", 409, "conflict")
    _check_limits(data.min_balance, data.max_balance)
    account = Account(
        code=data.code,
        name=data.name,
        type=data.type,
        currency=data.currency,
        parent_id=await _parent(session, data.parent, data.type),
        description=data.description,
        min_balance=data.min_balance,
        max_balance=data.max_balance,
        reconcilable=data.reconcilable,
        status="active",
    )
    session.add(account)
    await session.flush()
    await session.refresh(account)
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="ledger.account.created",
        target=f"ledger.account:{account.id}",
        after=account_out(account),
    )
    return account


def _check_limits(low: int | None, high: int | None) -> None:
    if low is not None and high is not None and low > high:
        raise invalid("#/min_balance", "min_balance is above max_balance")


async def _ancestors(session: AsyncSession, account_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await session.execute(
        text(
            "WITH RECURSIVE up(id) AS (SELECT parent_id FROM ledger_accounts WHERE id = :id"
            " UNION SELECT a.parent_id FROM ledger_accounts a JOIN up ON a.id = up.id"
            " WHERE a.parent_id IS NOT NULL) SELECT id FROM up WHERE id IS NOT NULL"
        ),
        {"id": account_id},
    )
    return {row[0] for row in rows}


async def update_account(
    session: AsyncSession, tenant: TenantContext, who: Who, account: Account, data: AccountUpdate
) -> Account:
    before = account_out(account)
    if data.name is not UNSET:
        account.name = data.name
    if data.description is not UNSET:
        account.description = data.description
    if data.reconcilable is not UNSET:
        account.reconcilable = data.reconcilable
    if data.parent is not UNSET:
        parent = await _parent(session, data.parent, account.type)
        if parent is not None and (
            parent == account.id or account.id in await _ancestors(session, parent)
        ):
            raise invalid("#/parent", "an account cannot sit under itself or its own sub-account")
        account.parent_id = parent
    low = account.min_balance if data.min_balance is UNSET else data.min_balance
    high = account.max_balance if data.max_balance is UNSET else data.max_balance
    if (low, high) != (account.min_balance, account.max_balance):
        _check_limits(low, high)
        await _check_condition_holds(session, account, low, high)
        account.min_balance, account.max_balance = low, high
    if data.status is not UNSET and data.status != account.status:
        if data.status == "closed":
            await _check_empty(session, account)
        account.status = data.status
    if account_out(account) == before:
        return account  # nothing changed: no new version, nothing to audit
    account.version += 1
    account.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="ledger.account.updated",
        target=f"ledger.account:{account.id}",
        before=before,
        after=account_out(account),
    )
    return account


async def _locked_totals(session: AsyncSession, account: Account) -> list[Total]:
    """The account's running balances, locked: postings on it wait until this commits."""
    rows = await session.scalars(
        select(Total)
        .where(Total.account_id == account.id)
        .order_by(Total.currency)
        .with_for_update()
    )
    return list(rows)


async def _check_condition_holds(
    session: AsyncSession, account: Account, low: int | None, high: int | None
) -> None:
    for total in await _locked_totals(session, account):
        now = natural(account.type, total.debit, total.credit)
        if (low is not None and now < low) or (high is not None and now > high):
            raise invalid(
                "#/min_balance" if low is not None and now < low else "#/max_balance",
                f"the balance is {now} {total.currency} now, outside the condition",
            )


async def _check_empty(session: AsyncSession, account: Account) -> None:
    for total in await _locked_totals(session, account):
        if total.debit != total.credit or total.functional != 0:
            held = natural(account.type, total.debit, total.credit)
            detail = f"the account holds {held} {total.currency}: close it once it is zero"
            raise invalid("#/status", detail, 422, "account-not-empty")


async def apply_chart(
    session: AsyncSession, tenant: TenantContext, who: Who, name: str
) -> tuple[int, int]:
    """Create the chart's accounts that do not exist yet (by code). Returns (created, kept)."""
    rows = chart.CHARTS[name]
    existing = await accounts_named(session, [code for code, *_ in rows])
    ids = {code: a.id for code, a in existing.items()}
    created = 0
    for code, title, kind, parent in rows:
        if code in ids:
            continue
        account = Account(
            code=code,
            name=title,
            type=kind,
            status="active",
            parent_id=ids.get(parent) if parent else None,
        )
        session.add(account)
        await session.flush()
        ids[code] = account.id
        created += 1
    settings = await settings_of(session, lock=True)
    gain, loss = chart.FX_ACCOUNTS[name]
    settings.fx_gain_account_id = settings.fx_gain_account_id or ids[gain]
    settings.fx_loss_account_id = settings.fx_loss_account_id or ids[loss]
    await session.flush()
    if created == 0:
        return 0, len(rows)  # nothing changed: nothing to audit
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="ledger.chart.applied",
        target=f"ledger.chart:{name}",
        after={"created": created},
    )
    return created, len(rows) - created


async def update_settings(
    session: AsyncSession, tenant: TenantContext, who: Who, data: SettingsIn
) -> LedgerSettings:
    settings = await settings_of(session, lock=True)
    before = settings_dict(settings)
    if (
        data.functional_currency is not UNSET
        and data.functional_currency != settings.functional_currency
    ):
        _check_currency(data.functional_currency, "#/functional_currency")
        if await session.scalar(text("SELECT EXISTS (SELECT 1 FROM ledger_lines)")):
            raise invalid(
                "#/functional_currency",
                "the books hold postings: the functional currency is fixed",
                409,
                "conflict",
            )
        settings.functional_currency = data.functional_currency
    if data.fiscal_year_start is not UNSET:
        settings.fiscal_year_start = data.fiscal_year_start
    for field, column in (
        ("fx_gain_account", "fx_gain_account_id"),
        ("fx_loss_account", "fx_loss_account_id"),
    ):
        ref = getattr(data, field)
        if ref is UNSET:
            continue
        found = None if ref is None else (await accounts_named(session, [ref])).get(ref)
        if ref is not None and found is None:
            raise invalid(f"#/{field}", f"no account {ref}")
        setattr(settings, column, found.id if found else None)
    settings.version += 1
    settings.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="ledger.settings.updated",
        target="ledger.settings",
        before=before,
        after=settings_dict(settings),
    )
    return settings


def settings_dict(s: LedgerSettings) -> dict[str, Any]:
    return {
        "functional_currency": s.functional_currency,
        "fiscal_year_start": s.fiscal_year_start,
        "lock_date": s.lock_date.isoformat() if s.lock_date else None,
        "fx_gain_account_id": str(s.fx_gain_account_id) if s.fx_gain_account_id else None,
        "fx_loss_account_id": str(s.fx_loss_account_id) if s.fx_loss_account_id else None,
    }
