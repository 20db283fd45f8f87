"""Ledger APIs under /v1/tenants/{slug}/ledger: the chart, the journal and imports (the
periods, rates, reports and verification are in `books_routes`).

API clients need `ledger:read` / `ledger:write`; a firm's admins and the provider's staff
assigned to it work through the same routes (staff doing a month-end close post, lock and
close). Closing periods and moving the lock date is for admins and staff, not for members
or machine clients; the chart and settings for admins.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem, strict_body
from bpo.core.etags import check_if_match, etag
from bpo.core.sql import RawSql
from bpo.core.tenancy import TenantContext, tenant_connection, tenant_session
from bpo.identity.guards import Principal
from bpo.ledger import (
    accounts,
    books_routes,
    imports,
    outputs,
    reports,
    service,
)
from bpo.ledger.access import ADMIN, READ, WRITE
from bpo.ledger.models import Account, Entry, JournalImport
from bpo.ledger.schemas import (
    AccountBalanceOut,
    AccountIn,
    AccountOut,
    AccountPage,
    AccountType,
    AccountUpdate,
    BatchIn,
    BatchOut,
    ChartIn,
    ChartOut,
    DraftUpdate,
    EntryIn,
    EntryOut,
    EntryPage,
    ImportOut,
    LedgerPage,
    ReverseIn,
    SettingsIn,
    SettingsOut,
)

MAX_PAGE = 200
Page = Annotated[int, Parameter(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Ref = Annotated[str, Parameter(max_length=36)]


def _today() -> date:
    return datetime.now(UTC).date()


def _with_etag(out: AccountOut, version: int, status_code: int = 200) -> Response[AccountOut]:
    return Response(out, status_code=status_code, headers={"ETag": etag(version)})


class AccountsController(Controller):
    path = "/v1/tenants/{slug:str}/ledger"
    tags = ["ledger"]

    @get(
        "/accounts",
        guards=[READ],
        summary="The chart of accounts (code order, cursor pages)",
        operation_id="listLedgerAccounts",
    )
    async def list_accounts(
        self,
        tenant_db: NamedDependency[AsyncSession],
        type: FromQuery[AccountType | None] = None,
        include_closed: FromQuery[bool] = False,
        cursor: Cursor = None,
        limit: Page = 100,
    ) -> AccountPage:
        query = select(Account).order_by(Account.code).limit(limit + 1)
        if type is not None:
            query = query.where(Account.type == type)
        if not include_closed:
            query = query.where(Account.status == "active")
        if cursor is not None:
            query = query.where(Account.code > cursor)
        rows = list(await tenant_db.scalars(query))
        more = len(rows) > limit
        return AccountPage(
            [accounts.account_out(a) for a in rows[:limit]], rows[limit - 1].code if more else None
        )

    @post(
        "/accounts",
        guards=[ADMIN],
        status_code=201,
        summary="Open an account",
        operation_id="createLedgerAccount",
    )
    async def create_account(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[AccountIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[AccountOut]:
        data = await strict_body(request, AccountIn)
        account = await accounts.create_account(tenant_db, tenant, principal, data)
        return _with_etag(accounts.account_out(account, []), account.version, 201)

    @get(
        "/accounts/{account:str}",
        guards=[READ],
        summary="One account (by id or code) with its balance per currency",
        operation_id="getLedgerAccount",
    )
    async def get_account(
        self, account: FromPath[Ref], tenant_db: NamedDependency[AsyncSession]
    ) -> Response[AccountOut]:
        found = await accounts.get_account(tenant_db, account)
        out = accounts.account_out(found, await accounts.balances_of(tenant_db, found))
        return _with_etag(out, found.version)

    @patch(
        "/accounts/{account:str}",
        guards=[ADMIN],
        summary="Rename, move in the tree, set balance conditions, close (If-Match guards)",
        operation_id="updateLedgerAccount",
    )
    async def update_account(
        self,
        request: Request[Any, Any, Any],
        account: FromPath[Ref],
        data: JSONBody[AccountUpdate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[AccountOut]:
        data = await strict_body(request, AccountUpdate)
        found = await accounts.get_account(tenant_db, account, lock=True)
        check_if_match(request, found.version, "account")
        updated = await accounts.update_account(tenant_db, tenant, principal, found, data)
        out = accounts.account_out(updated, await accounts.balances_of(tenant_db, updated))
        return _with_etag(out, updated.version)

    @get(
        "/accounts/{account:str}/ledger",
        guards=[READ],
        summary="The account's general ledger: posted lines in date order with the running balance",
        operation_id="getLedgerAccountLedger",
    )
    async def account_ledger(
        self,
        account: FromPath[Ref],
        tenant_db: NamedDependency[AsyncSession],
        start: Annotated[date | None, QueryParameter(name="from")] = None,
        end: Annotated[date | None, QueryParameter(name="to")] = None,
        cursor: Cursor = None,
        limit: Page = 100,
    ) -> LedgerPage:
        found = await accounts.get_account(tenant_db, account)
        return await reports.account_ledger(tenant_db, found, cursor, limit, start, end)

    @get(
        "/accounts/{account:str}/balance",
        guards=[READ],
        summary="The account's balance per currency at the end of a day",
        operation_id="getLedgerAccountBalance",
    )
    async def account_balance(
        self,
        account: FromPath[Ref],
        tenant_db: NamedDependency[AsyncSession],
        as_of: FromQuery[date | None] = None,
    ) -> AccountBalanceOut:
        found = await accounts.get_account(tenant_db, account)
        return await reports.balance_at(tenant_db, found, as_of or _today())

    @post(
        "/chart/apply",
        guards=[ADMIN],
        status_code=200,
        summary="Apply a starter chart (accounts that exist by code are kept)",
        operation_id="applyLedgerChart",
    )
    async def apply_chart(
        self,
        data: JSONBody[ChartIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> ChartOut:
        created, kept = await accounts.apply_chart(tenant_db, tenant, principal, data.chart)
        return ChartOut(data.chart, created, kept)

    @get(
        "/settings",
        guards=[READ],
        summary="Functional currency, fiscal year, lock date",
        operation_id="getLedgerSettings",
    )
    async def get_settings(self, tenant_db: NamedDependency[AsyncSession]) -> SettingsOut:
        return SettingsOut(**accounts.settings_dict(await accounts.settings_of(tenant_db)))

    @put(
        "/settings",
        guards=[ADMIN],
        summary="Change the books' settings",
        operation_id="updateLedgerSettings",
    )
    async def put_settings(
        self,
        data: JSONBody[SettingsIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> SettingsOut:
        settings = await accounts.update_settings(tenant_db, tenant, principal, data)
        return SettingsOut(**accounts.settings_dict(settings))


class JournalController(Controller):
    path = "/v1/tenants/{slug:str}/ledger"
    tags = ["ledger"]

    @post(
        "/entries",
        guards=[WRITE],
        status_code=201,
        summary="Post an entry (or keep it as a draft); Idempotency-Key makes retries safe",
        operation_id="createLedgerEntry",
    )
    async def create_entry(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[EntryIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        state: State,
    ) -> EntryOut:
        data = await strict_body(request, EntryIn)
        return (await _create(state, tenant, principal, [data], "#"))[0]

    @post(
        "/entries/batch",
        guards=[WRITE],
        status_code=201,
        summary="Post up to 1,000 entries, all or nothing",
        operation_id="createLedgerEntries",
    )
    async def create_batch(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[BatchIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        state: State,
    ) -> BatchOut:
        data = await strict_body(request, BatchIn)
        return BatchOut(await _create(state, tenant, principal, data.entries, "#/entries"))

    @get(
        "/entries",
        guards=[READ],
        summary="The journal in entry-number order (cursor pages)",
        operation_id="listLedgerEntries",
    )
    async def list_entries(
        self,
        tenant_db: NamedDependency[AsyncSession],
        status: FromQuery[str | None] = None,
        reference: Annotated[str | None, Parameter(max_length=200)] = None,
        start: Annotated[date | None, QueryParameter(name="from")] = None,
        end: Annotated[date | None, QueryParameter(name="to")] = None,
        cursor: Cursor = None,
        limit: Page = 50,
    ) -> EntryPage:
        after = _number_cursor(cursor)
        query = select(Entry).order_by(Entry.number).limit(limit + 1)
        if status is not None:
            if status not in ("draft", "posted"):
                raise Problem(400, "validation-error", "status is draft or posted")
            query = query.where(Entry.status == status)
        if reference is not None:
            query = query.where(Entry.reference == reference)
        if start is not None:
            query = query.where(Entry.effective_on >= start)
        if end is not None:
            query = query.where(Entry.effective_on <= end)
        if after is not None:
            query = query.where(Entry.number > after)
        rows = list(await tenant_db.scalars(query))
        more = len(rows) > limit
        items = await outputs.entries_out(tenant_db, rows[:limit])
        return EntryPage(items, str(rows[limit - 1].number) if more else None)

    @get(
        "/entries/{entry_id:uuid}",
        guards=[READ],
        summary="One entry with its lines",
        operation_id="getLedgerEntry",
    )
    async def get_entry(
        self, entry_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> Response[EntryOut]:
        entry = await service.get_entry(tenant_db, entry_id)
        out = await outputs.entry_out(tenant_db, entry)
        return Response(out, headers={"ETag": etag(entry.version)})

    @patch(
        "/entries/{entry_id:uuid}",
        guards=[WRITE],
        summary="Change a draft (If-Match guards)",
        operation_id="updateLedgerDraft",
    )
    async def update_draft(
        self,
        request: Request[Any, Any, Any],
        entry_id: FromPath[uuid.UUID],
        data: JSONBody[DraftUpdate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[EntryOut]:
        data = await strict_body(request, DraftUpdate)
        entry = await service.get_entry(tenant_db, entry_id, lock=True)
        check_if_match(request, entry.version, "entry")
        entry = await service.update_draft(tenant_db, tenant, principal, entry, data)
        return Response(
            await outputs.entry_out(tenant_db, entry), headers={"ETag": etag(entry.version)}
        )

    @delete(
        "/entries/{entry_id:uuid}",
        guards=[WRITE],
        summary="Delete a draft (posted entries are reversed)",
        operation_id="deleteLedgerDraft",
    )
    async def delete_draft(
        self,
        entry_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> None:
        entry = await service.get_entry(tenant_db, entry_id, lock=True)
        await service.delete_draft(tenant_db, tenant, principal, entry)

    @post(
        "/entries/{entry_id:uuid}/post",
        guards=[WRITE],
        status_code=200,
        summary="Post a draft: from now on it is immutable",
        operation_id="postLedgerDraft",
    )
    async def post_draft(
        self,
        entry_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> EntryOut:
        entry = await service.get_entry(tenant_db, entry_id, lock=True)
        return await service.post_draft(tenant_db, tenant, principal, entry)

    @post(
        "/entries/{entry_id:uuid}/reverse",
        guards=[WRITE],
        status_code=201,
        summary="Post the reversal of an entry (once: a second is a 409)",
        operation_id="reverseLedgerEntry",
    )
    async def reverse(
        self,
        entry_id: FromPath[uuid.UUID],
        data: JSONBody[ReverseIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> EntryOut:
        entry = await service.get_entry(tenant_db, entry_id, lock=True)
        return await service.reverse(
            tenant_db, tenant, principal, entry, data.effective_on, data.description
        )


async def _create(
    state: State, tenant: TenantContext, who: Principal, data: list[EntryIn], pointer: str
) -> list[EntryOut]:
    """Postings run on the tenant's bare connection (the hot path: two statements, no ORM);
    anything with drafts goes through a session."""
    if all(e.status == "posted" for e in data):
        async with tenant_connection(state.db.engine, tenant) as conn:
            return await service.post_new(RawSql(conn), tenant, who, data, pointer)
    async with tenant_session(state.db.engine, tenant) as session:
        return await service.create_entries(session, tenant, who, data, pointer)


def _number_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise Problem(400, "invalid-cursor", "the cursor is not one this API gave out")
    return int(cursor)


class ImportsController(Controller):
    path = "/v1/tenants/{slug:str}/ledger/imports"
    tags = ["ledger"]

    @post(
        "/",
        guards=[WRITE],
        status_code=202,
        summary="Upload a CSV journal (text/csv): checked and posted by a job, all or nothing",
        operation_id="importLedgerJournal",
        request_max_body_size=imports.MAX_BYTES,
    )
    async def start(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        filename: Annotated[str | None, Parameter(max_length=200)] = None,
    ) -> Response[ImportOut]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("text/csv", "application/csv", "text/plain"):
            raise Problem(415, "unsupported-media-type", "send the journal as text/csv")
        row = await imports.start(tenant_db, tenant, principal, await request.body(), filename)
        location = f"/v1/tenants/{tenant.slug}/ledger/imports/{row.id}"
        return Response(imports.import_out(row), status_code=202, headers={"Location": location})

    @get(
        "/{import_id:uuid}",
        guards=[READ],
        summary="An import's progress, errors by line number, and result",
        operation_id="getLedgerImport",
    )
    async def show(
        self, import_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> ImportOut:
        row = await tenant_db.get(JournalImport, import_id)
        if row is None:
            raise Problem(404, "not-found", "no such import")
        return imports.import_out(row)


route_handlers: list[ControllerRouterHandler] = [
    AccountsController,
    JournalController,
    ImportsController,
    *books_routes.route_handlers,
]
