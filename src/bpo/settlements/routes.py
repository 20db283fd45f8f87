"""Settlement APIs under /v1/tenants/{slug}/settlements: bank accounts, statement imports,
statements and lines, open items, matching and matches, the reconciliation report.

API clients need `settlements:read` / `settlements:write`; bank accounts (their ledger
accounts, rules and CSV mapping, confirming one first seen in a file) are for the firm's
admins (and staff admins).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.pagination import uuid_cursor
from bpo.core.tenancy import TenantContext
from bpo.identity.guards import Principal
from bpo.settlements import accounts, clearing, imports, item_routes, runs, service
from bpo.settlements.access import ADMIN, BASE, READ, WRITE, Cursor, Page
from bpo.settlements.models import (
    BankAccount,
    BankLine,
    Match,
    Statement,
    StatementImport,
)
from bpo.settlements.schemas import (
    BankAccountIn,
    BankAccountOut,
    BankAccountPage,
    BankAccountUpdate,
    BankStatementOut,
    DecisionIn,
    MatchIn,
    MatchOut,
    MatchPage,
    ReconciliationOut,
    RunIn,
    RunOut,
    StatementImportOut,
    StatementLinePage,
    TaskIn,
)

Filename = Annotated[str | None, Parameter(max_length=200)]


class BankAccountsController(Controller):
    path = f"{BASE}/bank-accounts"
    tags = ["settlements"]

    @get("/", guards=[READ], operation_id="listBankAccounts", summary="The firm's bank accounts")
    async def list_accounts(
        self, tenant_db: NamedDependency[AsyncSession], limit: Page = 100, cursor: Cursor = None
    ) -> BankAccountPage:
        query = select(BankAccount).order_by(BankAccount.id).limit(limit + 1)
        if cursor:
            query = query.where(BankAccount.id > uuid_cursor(cursor))
        rows = list(await tenant_db.scalars(query))
        more, rows = len(rows) > limit, rows[:limit]
        codes = await accounts.ledger_codes(tenant_db, rows)
        out = [accounts.account_out(a, codes) for a in rows]
        return BankAccountPage(out, str(rows[-1].id) if more else None)

    @post(
        "/",
        guards=[ADMIN],
        status_code=201,
        operation_id="createBankAccount",
        summary=(
            "Add a bank account (IBAN/BIC or a local number; its ledger cash and suspense accounts)"
        ),
    )
    async def create(
        self,
        data: JSONBody[BankAccountIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[BankAccountOut]:
        account = await accounts.create(tenant_db, tenant, principal, data)
        codes = await accounts.ledger_codes(tenant_db, [account])
        location = f"/v1/tenants/{tenant.slug}/settlements/bank-accounts/{account.id}"
        return Response(
            accounts.account_out(account, codes), status_code=201, headers={"Location": location}
        )

    @get(
        "/{account_id:uuid}", guards=[READ], operation_id="getBankAccount", summary="A bank account"
    )
    async def show(
        self, account_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> BankAccountOut:
        account = await accounts.get(tenant_db, account_id)
        return accounts.account_out(account, await accounts.ledger_codes(tenant_db, [account]))

    @patch(
        "/{account_id:uuid}",
        guards=[ADMIN],
        operation_id="updateBankAccount",
        summary=(
            "Change a bank account; `confirm` activates one first seen in a statement (its lines "
            "are then posted and matched)"
        ),
    )
    async def update(
        self,
        account_id: FromPath[uuid.UUID],
        data: JSONBody[BankAccountUpdate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> BankAccountOut:
        account = await accounts.get(tenant_db, account_id, lock=True)
        if await accounts.update(tenant_db, tenant, principal, account, data):
            await imports.post_unposted(tenant_db, tenant, principal, account)
        return accounts.account_out(account, await accounts.ledger_codes(tenant_db, [account]))

    @post(
        "/{account_id:uuid}/statements",
        guards=[WRITE],
        status_code=202,
        operation_id="importBankAccountStatement",
        summary=(
            "Import a statement of this account (camt, MT940/942, OFX, BAI2, or CSV with its "
            "mapping)"
        ),
        request_max_body_size=imports.MAX_BYTES,
    )
    async def import_for(
        self,
        account_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        filename: Filename = None,
    ) -> Response[StatementImportOut]:
        account = await accounts.get(tenant_db, account_id)
        return await _start(request, tenant, principal, tenant_db, filename, account)


async def _file(request: Request[Any, Any, Any], filename: str | None) -> tuple[bytes, str | None]:
    """The statement file: the raw body, or the `file` part of a multipart form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        return await request.body(), filename
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise Problem(
            422,
            "validation-error",
            "the form has no `file` part",
            errors=[{"pointer": "#/file", "detail": "missing"}],
        )
    return await upload.read(), filename or upload.filename


async def _start(
    request: Request[Any, Any, Any],
    tenant: TenantContext,
    principal: Principal,
    tenant_db: AsyncSession,
    filename: str | None,
    account: BankAccount | None,
) -> Response[StatementImportOut]:
    body, name = await _file(request, filename)
    row = await imports.start(
        tenant_db, tenant, principal, body, (name or "")[:200] or None, account
    )
    location = f"/v1/tenants/{tenant.slug}/settlements/imports/{row.id}"
    return Response(imports.import_out(row), status_code=202, headers={"Location": location})


class StatementsController(Controller):
    path = BASE
    tags = ["settlements"]

    @post(
        "/statements",
        guards=[WRITE],
        status_code=202,
        operation_id="importStatement",
        summary=(
            "Import a statement file; its account is found from the file (a new one is created "
            "unconfirmed)"
        ),
        request_max_body_size=imports.MAX_BYTES,
    )
    async def import_any(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
        filename: Filename = None,
    ) -> Response[StatementImportOut]:
        return await _start(request, tenant, principal, tenant_db, filename, None)

    @get(
        "/imports/{import_id:uuid}",
        guards=[READ],
        operation_id="getStatementImport",
        summary="An import's progress and result",
    )
    async def show_import(
        self, import_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> StatementImportOut:
        row = await tenant_db.get(StatementImport, import_id)
        if row is None:
            raise Problem(404, "not-found", "no such import")
        return imports.import_out(row)

    @get(
        "/statements/{statement_id:uuid}",
        guards=[READ],
        operation_id="getStatement",
        summary="A statement",
    )
    async def show_statement(
        self, statement_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> BankStatementOut:
        return imports.statement_out(await _statement(tenant_db, statement_id))

    @get(
        "/statements/{statement_id:uuid}/lines",
        guards=[READ],
        operation_id="listStatementLines",
        summary="A statement's lines, in the bank's order",
    )
    async def lines(
        self,
        statement_id: FromPath[uuid.UUID],
        tenant_db: NamedDependency[AsyncSession],
        limit: Page = 100,
        cursor: Cursor = None,
    ) -> StatementLinePage:
        await _statement(tenant_db, statement_id)
        after = _seq_cursor(cursor)
        rows = list(
            await tenant_db.scalars(
                select(BankLine)
                .where(BankLine.statement_id == statement_id, BankLine.seq > after)
                .order_by(BankLine.seq)
                .limit(limit + 1)
            )
        )
        more, rows = len(rows) > limit, rows[:limit]
        return StatementLinePage(
            [imports.line_out(r) for r in rows], str(rows[-1].seq) if more else None
        )


def _seq_cursor(cursor: str | None) -> int:
    if cursor is None:
        return -1
    if not cursor.isdigit() or len(cursor) > 9:
        raise Problem(
            400,
            "malformed-request",
            "cursor is not one this API gave out",
            errors=[{"parameter": "cursor", "location": "query", "detail": "unknown cursor"}],
        )
    return int(cursor)


async def _statement(session: AsyncSession, statement_id: uuid.UUID) -> Statement:
    row = await session.get(Statement, statement_id)
    if row is None:
        raise Problem(404, "not-found", "no such statement")
    return row


MatchStatus = Annotated[
    Literal["suggested", "confirmed", "rejected", "undone"] | None, QueryParameter(name="status")
]


class MatchesController(Controller):
    path = BASE
    tags = ["settlements"]

    @post(
        "/matching/run",
        guards=[WRITE],
        status_code=200,
        operation_id="runMatching",
        summary=(
            "Match open bank lines to open items: confirmed above the threshold, suggested below"
        ),
    )
    async def run(
        self,
        data: JSONBody[RunIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> RunOut:
        return await runs.run(tenant_db, tenant, principal, data.bank_account)

    @get(
        "/matches",
        guards=[READ],
        operation_id="listMatches",
        summary="Matches (suggestions with their score and reasons first)",
    )
    async def list_matches(
        self,
        tenant_db: NamedDependency[AsyncSession],
        match_status: MatchStatus = None,
        bank_account: FromQuery[uuid.UUID | None] = None,
        limit: Page = 100,
        cursor: Cursor = None,
    ) -> MatchPage:
        query = select(Match).order_by(Match.id).limit(limit + 1)
        if match_status:
            query = query.where(Match.status == match_status)
        if bank_account:
            query = query.where(Match.bank_account_id == bank_account)
        if cursor:
            query = query.where(Match.id > uuid_cursor(cursor))
        rows = list(await tenant_db.scalars(query))
        more, rows = len(rows) > limit, rows[:limit]
        return MatchPage([clearing.match_out(m) for m in rows], str(rows[-1].id) if more else None)

    @post(
        "/matches",
        guards=[WRITE],
        status_code=201,
        operation_id="matchByHand",
        summary="Match lines and items by hand, or write them off (confirmed and posted at once)",
    )
    async def manual(
        self,
        data: JSONBody[MatchIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[MatchOut]:
        m = await clearing.manual(tenant_db, tenant, principal, data)
        location = f"/v1/tenants/{tenant.slug}/settlements/matches/{m.id}"
        return Response(clearing.match_out(m), status_code=201, headers={"Location": location})

    @get("/matches/{match_id:uuid}", guards=[READ], operation_id="getMatch", summary="A match")
    async def show(
        self, match_id: FromPath[uuid.UUID], tenant_db: NamedDependency[AsyncSession]
    ) -> MatchOut:
        return clearing.match_out(await clearing.get(tenant_db, match_id))

    @post(
        "/matches/{match_id:uuid}/confirm",
        guards=[WRITE],
        status_code=200,
        operation_id="confirmMatch",
        summary="Confirm a suggestion: the clearing entry is posted (once)",
    )
    async def confirm(
        self,
        match_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> MatchOut:
        m = await clearing.get(tenant_db, match_id, lock=True)
        return clearing.match_out(await clearing.confirm(tenant_db, tenant, principal, m))

    @post(
        "/matches/{match_id:uuid}/reject",
        guards=[WRITE],
        status_code=200,
        operation_id="rejectMatch",
        summary="Reject a suggestion",
    )
    async def reject(
        self,
        match_id: FromPath[uuid.UUID],
        data: JSONBody[DecisionIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> MatchOut:
        m = await clearing.get(tenant_db, match_id, lock=True)
        return clearing.match_out(await clearing.reject(tenant_db, tenant, principal, m, data.note))

    @post(
        "/matches/{match_id:uuid}/undo",
        guards=[WRITE],
        status_code=200,
        operation_id="undoMatch",
        summary="Undo a confirmed match: its entry is reversed, its lines and items reopened",
    )
    async def undo(
        self,
        match_id: FromPath[uuid.UUID],
        data: JSONBody[DecisionIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> MatchOut:
        m = await clearing.get(tenant_db, match_id, lock=True)
        return clearing.match_out(await clearing.undo(tenant_db, tenant, principal, m, data.note))


class ReconciliationController(Controller):
    path = f"{BASE}/reconciliation"
    tags = ["settlements"]

    @get(
        "/",
        guards=[READ],
        operation_id="getReconciliation",
        summary="Statement against books on a day, the difference explained, open items aged",
    )
    async def report(
        self,
        tenant_db: NamedDependency[AsyncSession],
        bank_account: FromQuery[uuid.UUID],
        as_of: FromQuery[date],
    ) -> ReconciliationOut:
        account = await service.get_account(tenant_db, bank_account)
        return await service.reconciliation(tenant_db, account, as_of)

    @get(
        "/csv",
        guards=[READ],
        operation_id="exportReconciliation",
        summary="The reconciliation report as CSV, with each bank line still open on the day",
        media_type="text/csv; charset=utf-8",
    )
    async def export(
        self,
        tenant_db: NamedDependency[AsyncSession],
        bank_account: FromQuery[uuid.UUID],
        as_of: FromQuery[date],
    ) -> Response[str]:
        account = await service.get_account(tenant_db, bank_account)
        out = await service.reconciliation(tenant_db, account, as_of)
        body = await service.reconciliation_csv(tenant_db, out, account)
        name = f"reconciliation-{account.identity}-{as_of.isoformat()}.csv"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)

    @post(
        "/tasks",
        guards=[WRITE],
        status_code=201,
        operation_id="openReconciliationTask",
        summary="Open a bank reconciliation request in the provider's queue for the exceptions",
    )
    async def task(
        self,
        data: JSONBody[TaskIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> dict[str, str]:
        account = await service.get_account(tenant_db, data.bank_account)
        return {
            "request_id": await service.open_task(
                tenant_db, tenant, principal, account, data.period
            )
        }


route_handlers: list[ControllerRouterHandler] = [
    BankAccountsController,
    StatementsController,
    item_routes.ItemsController,
    MatchesController,
    ReconciliationController,
]
