"""Open-item APIs under /v1/tenants/{slug}/settlements: customer invoices, supplier bills,
expected payments, and the items pulled from reconcilable ledger accounts."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.pagination import page_of, uuid_cursor
from bpo.core.tenancy import TenantContext
from bpo.identity.guards import Principal
from bpo.settlements import items
from bpo.settlements.access import BASE, READ, WRITE, Cursor, Page
from bpo.settlements.models import OpenItem
from bpo.settlements.schemas import ExpectedIn, InvoiceIn, ItemOut, ItemPage


async def _items_page(
    session: AsyncSession, kind: str, limit: int, cursor: str | None, status: str | None
) -> ItemPage:
    query = select(OpenItem).where(OpenItem.kind == kind).order_by(OpenItem.id).limit(limit + 1)
    if status:
        query = query.where(OpenItem.status == status)
    if cursor:
        query = query.where(OpenItem.id > uuid_cursor(cursor))
    rows = list(await session.scalars(query))
    rows, after = page_of(rows, limit)
    return ItemPage([items.item_out(i) for i in rows], after)


ItemStatus = Annotated[
    Literal["open", "partly_paid", "paid", "written_off", "cancelled"] | None,
    QueryParameter(name="status"),
]


class ItemsController(Controller):
    path = BASE
    tags = ["settlements"]

    @get(
        "/invoices", guards=[READ], operation_id="listCustomerInvoices", summary="Customer invoices"
    )
    async def invoices(
        self,
        tenant_db: NamedDependency[AsyncSession],
        limit: Page = 100,
        cursor: Cursor = None,
        item_status: ItemStatus = None,
    ) -> ItemPage:
        return await _items_page(tenant_db, "invoice", limit, cursor, item_status)

    @get("/bills", guards=[READ], operation_id="listSupplierBills", summary="Supplier bills")
    async def bills(
        self,
        tenant_db: NamedDependency[AsyncSession],
        limit: Page = 100,
        cursor: Cursor = None,
        item_status: ItemStatus = None,
    ) -> ItemPage:
        return await _items_page(tenant_db, "bill", limit, cursor, item_status)

    @get(
        "/expected-payments",
        guards=[READ],
        operation_id="listExpectedPayments",
        summary="Expected payments",
    )
    async def expected(
        self,
        tenant_db: NamedDependency[AsyncSession],
        limit: Page = 100,
        cursor: Cursor = None,
        item_status: ItemStatus = None,
    ) -> ItemPage:
        return await _items_page(tenant_db, "expected", limit, cursor, item_status)

    @get(
        "/ledger-items",
        guards=[READ],
        operation_id="listLedgerItems",
        summary="Open items from lines on reconcilable ledger accounts (pulled at each run)",
    )
    async def ledger_items(
        self,
        tenant_db: NamedDependency[AsyncSession],
        limit: Page = 100,
        cursor: Cursor = None,
        item_status: ItemStatus = None,
    ) -> ItemPage:
        return await _items_page(tenant_db, "ledger", limit, cursor, item_status)

    @post(
        "/invoices",
        guards=[WRITE],
        status_code=201,
        operation_id="issueCustomerInvoice",
        summary="Issue a customer invoice (posted to the receivable account)",
    )
    async def issue_invoice(
        self,
        data: JSONBody[InvoiceIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[ItemOut]:
        return _created(
            tenant, "invoices", await items.issue(tenant_db, tenant, principal, "invoice", data)
        )

    @post(
        "/bills",
        guards=[WRITE],
        status_code=201,
        operation_id="recordSupplierBill",
        summary="Record a supplier bill (posted to the payable account)",
    )
    async def record_bill(
        self,
        data: JSONBody[InvoiceIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[ItemOut]:
        return _created(
            tenant, "bills", await items.issue(tenant_db, tenant, principal, "bill", data)
        )

    @post(
        "/expected-payments",
        guards=[WRITE],
        status_code=201,
        operation_id="expectPayment",
        summary="Expect a payment (an amount or a range, in a date window)",
    )
    async def expect(
        self,
        data: JSONBody[ExpectedIn],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        tenant_db: NamedDependency[AsyncSession],
    ) -> Response[ItemOut]:
        return _created(
            tenant, "expected-payments", await items.expect(tenant_db, tenant, principal, data)
        )


def _created(tenant: TenantContext, kind: str, item: OpenItem) -> Response[ItemOut]:
    location = f"/v1/tenants/{tenant.slug}/settlements/{kind}/{item.id}"
    return Response(items.item_out(item), status_code=201, headers={"Location": location})
