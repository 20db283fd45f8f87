"""Ledger APIs of the books as a whole: periods and the lock date (the month-end close),
rates, reports and verification (guards as in `routes`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from litestar import Controller, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.sql import RawSql
from bpo.core.tenancy import TenantContext, tenant_connection
from bpo.identity.guards import Principal
from bpo.ledger import accounts, periods, rates, reports, verify
from bpo.ledger.access import CLOSE, READ, WRITE
from bpo.ledger.schemas import (
    LedgerVerifyOut,
    LockDateIn,
    LockDateOut,
    PeriodOut,
    RateOut,
    RatesIn,
    StatementOut,
    TrialBalanceOut,
)


def _today() -> date:
    return datetime.now(UTC).date()


class PeriodsController(Controller):
    path = "/v1/tenants/{slug:str}/ledger"
    tags = ["ledger"]

    @get(
        "/periods",
        guards=[READ],
        summary="The monthly periods of a fiscal year and their status",
        operation_id="listLedgerPeriods",
    )
    async def list_periods(
        self,
        tenant_db: NamedDependency[AsyncSession],
        fiscal_year: Annotated[int | None, Parameter(ge=1900, le=2999)] = None,
    ) -> list[PeriodOut]:
        return await periods.list_periods(tenant_db, fiscal_year)

    @post(
        "/periods/{period:str}/close",
        guards=[CLOSE],
        status_code=200,
        summary="Close a period: nothing posts into it until it is reopened",
        operation_id="closeLedgerPeriod",
    )
    async def close(
        self,
        period: FromPath[Annotated[str, Parameter(max_length=7)]],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> PeriodOut:
        return await periods.set_status(tenant_db, tenant, principal, period, "closed")

    @post(
        "/periods/{period:str}/reopen",
        guards=[CLOSE],
        status_code=200,
        summary="Reopen a closed period",
        operation_id="reopenLedgerPeriod",
    )
    async def reopen(
        self,
        period: FromPath[Annotated[str, Parameter(max_length=7)]],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> PeriodOut:
        return await periods.set_status(tenant_db, tenant, principal, period, "open")

    @get(
        "/lock-date",
        guards=[READ],
        summary="The lock date: nothing posts on or before it",
        operation_id="getLedgerLockDate",
    )
    async def get_lock_date(self, tenant_db: NamedDependency[AsyncSession]) -> LockDateOut:
        return LockDateOut((await accounts.settings_of(tenant_db)).lock_date)

    @put(
        "/lock-date",
        guards=[CLOSE],
        summary="Move the lock date (null lifts it)",
        operation_id="setLedgerLockDate",
    )
    async def set_lock_date(
        self,
        data: JSONBody[LockDateIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> LockDateOut:
        return LockDateOut(
            await periods.set_lock_date(tenant_db, tenant, principal, data.lock_date)
        )

    @get(
        "/rates",
        guards=[READ],
        summary="Exchange rates into the functional currency",
        operation_id="listLedgerRates",
    )
    async def list_rates(
        self,
        tenant_db: NamedDependency[AsyncSession],
        currency: Annotated[str | None, Parameter(pattern=r"^[A-Z]{3}$")] = None,
        start: Annotated[date | None, QueryParameter(name="from")] = None,
        end: Annotated[date | None, QueryParameter(name="to")] = None,
    ) -> list[RateOut]:
        return await rates.list_rates(tenant_db, currency, start, end)

    @put(
        "/rates",
        guards=[WRITE],
        summary="Load rates (a rate per currency and day; replaces that day's)",
        operation_id="putLedgerRates",
    )
    async def put_rates(
        self,
        data: JSONBody[RatesIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> list[RateOut]:
        return await rates.put_rates(tenant_db, tenant, principal, data.rates)


class ReportsController(Controller):
    path = "/v1/tenants/{slug:str}/ledger"
    tags = ["ledger"]
    guards = [READ]

    @get(
        "/trial-balance",
        summary="Every account's balance at the end of a day, debit and credit",
        operation_id="getTrialBalance",
    )
    async def trial_balance(
        self,
        tenant: NamedDependency[TenantContext],
        state: State,
        as_of: FromQuery[date | None] = None,
    ) -> TrialBalanceOut:
        async with tenant_connection(state.db.engine, tenant) as conn:
            return await reports.trial_balance(RawSql(conn), as_of or _today())

    @get(
        "/balance-sheet",
        summary="Assets, liabilities and equity at the end of a day",
        operation_id="getBalanceSheet",
    )
    async def balance_sheet(
        self, tenant_db: NamedDependency[AsyncSession], as_of: FromQuery[date | None] = None
    ) -> StatementOut:
        return await reports.balance_sheet(tenant_db, as_of or _today())

    @get(
        "/income-statement",
        summary="Income and expenses between two days (inclusive)",
        operation_id="getIncomeStatement",
    )
    async def income_statement(
        self,
        tenant_db: NamedDependency[AsyncSession],
        start: Annotated[date, QueryParameter(name="from")],
        end: Annotated[date, QueryParameter(name="to")],
    ) -> StatementOut:
        if end < start:
            raise Problem(400, "validation-error", "`to` is before `from`")
        return await reports.income_statement(tenant_db, start, end)

    @get(
        "/verify",
        summary="Recompute balances and hashes; name any drift and the first broken link",
        operation_id="verifyLedger",
    )
    async def verify_books(
        self, tenant: NamedDependency[TenantContext], state: State
    ) -> LedgerVerifyOut:
        return await verify.verify(state.db.engine, tenant)


route_handlers: list[ControllerRouterHandler] = [PeriodsController, ReportsController]
