"""The tenant admin's lists (members, invites, API clients, webhook endpoints, invoices) page
with the API's cursors like every other list: each row once, in a stable order, and a
cursor the API did not give out is a 4xx problem, not a 500 or an empty page."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from bpo.billing.models import Invoice
from bpo.core.db import Database
from bpo.core.pagination import key_cursor
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import admin_of, make_user
from tests.support.billing import custom_plan
from tests.support.clients import make_client
from tests.support.isolation import assert_cross_tenant_404
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]
LOOPBACK = ("127.0.0.1",)


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[Client]:
    hooks_to_loopback = dataclasses.replace(settings, webhook_allowlist=LOOPBACK)
    async with AsyncTestClient(app=build_app(hooks_to_loopback)) as client:
        yield client


async def every_page(
    api: Client, path: str, headers: dict[str, str], key: str, limit: int = 2
) -> list[list[Any]]:
    """The `key` of each row, page by page, following next_cursor to the end."""
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        answer = await api.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append([row[key] for row in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "the cursor never ran out"


async def test_members_invites_clients_and_endpoints_page_by_cursor(
    api: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "paged-firm")
    as_admin = await admin_of(db, settings, firm)
    base = f"/v1/tenants/{firm.slug}"
    for n in range(4):
        await make_user(db, f"member-{n}@paged.example", tenants={firm: "tenant_member"})
        await make_client(db, firm, f"paged-client-{n}", ["work:read"])
        made = await api.post(f"{base}/users/invites", json={"email": f"new-{n}@paged.example"},
                              headers=as_admin)  # fmt: skip
        assert made.status_code == 201, made.text
        hook = await api.post(f"{base}/webhooks/endpoints", headers=as_admin,
                              json={"url": f"http://127.0.0.1:9/hook-{n}"})  # fmt: skip
        assert hook.status_code == 201, hook.text

    members = await every_page(api, f"{base}/users", as_admin, "email")
    emails = [e for page in members for e in page]
    assert emails == sorted(emails) and len(emails) == len(set(emails)) == 5  # with the admin
    assert [len(p) for p in members] == [2, 2, 1]
    invites = await every_page(api, f"{base}/users/invites", as_admin, "email", limit=3)
    assert [e for p in invites for e in p] == [f"new-{n}@paged.example" for n in range(4)]
    clients = await every_page(api, f"{base}/clients", as_admin, "client_id")
    assert [c for p in clients for c in p] == [f"paged-client-{n}" for n in range(4)]
    assert clients[-1]  # four in pages of two: no empty last page
    endpoints = await every_page(api, f"{base}/webhooks/endpoints", as_admin, "url", limit=4)
    assert endpoints == [[f"http://127.0.0.1:9/hook-{n}" for n in range(4)]]


async def test_invoices_page_newest_period_first(
    api: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "invoiced-firm")
    as_admin = await admin_of(db, settings, firm)
    async with custom_plan(db, "paged-plan", {}) as plan:
        async with db.sessionmaker.begin() as session:
            for month in range(1, 6):
                start = datetime(2026, month, 1, tzinfo=UTC)
                end = datetime(2026, month + 1, 1, tzinfo=UTC)
                session.add(
                    Invoice(tenant_id=firm.tenant_id, period_start=start, period_end=end,
                            plan=plan, currency="usd", lines=[], total=1000 * month)
                )  # fmt: skip
        path = f"/v1/tenants/{firm.slug}/billing/invoices"
        pages = await every_page(api, path, as_admin, "total")
    assert pages == [[5000, 4000], [3000, 2000], [1000]]


@pytest.mark.parametrize(
    "path",
    ["users", "users/invites", "clients", "webhooks/endpoints", "billing/invoices"],
)
async def test_a_cursor_the_api_did_not_give_out_is_refused(
    api: Client, db: Database, settings: Settings, path: str
) -> None:
    firm = await make_tenant(db, "cursor-firm")
    as_admin = await admin_of(db, settings, firm)
    url = f"/v1/tenants/{firm.slug}/{path}"
    forged = [
        "not-a-cursor!",
        key_cursor("x"),  # one part where two or an id are wanted
        key_cursor("someone@x.example", "not-a-uuid"),
        "%%%",
        "x" * 600,  # past the parameter's bound
    ]
    for cursor in forged:
        answer = await api.get(url, params={"cursor": cursor}, headers=as_admin)
        # 400 for a cursor we did not give out, 422 past the parameter's bound
        assert answer.status_code in (400, 422), (cursor, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "cursor" in answer.text
    for limit in ("0", "201", "ten"):
        answer = await api.get(url, params={"limit": limit}, headers=as_admin)
        assert answer.status_code in (400, 422), (limit, answer.text)
        assert "limit" in answer.text


@pytest.mark.parametrize(
    "path",
    ["users", "users/invites", "clients", "webhooks/endpoints", "billing/invoices"],
)
async def test_another_firms_admin_gets_404_on_the_lists(
    api: Client, db: Database, settings: Settings, path: str
) -> None:
    firm, rival = await make_tenant(db, "listed-firm"), await make_tenant(db, "rival-firm")
    as_rival = await admin_of(db, settings, rival)
    await assert_cross_tenant_404(
        api, "GET", f"/v1/tenants/{firm.slug}/{path}?limit=1", headers=as_rival
    )
