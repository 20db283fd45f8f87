"""The audit trail: every admin change appends to the firm's hash chain in its transaction;
one changed byte anywhere, a removed or a cut-off event, and verify names the row."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bpo import audit
from bpo.audit.models import PLATFORM_CHAIN
from bpo.audit.routes import VERIFY_LIMIT
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import admin_of, bearer, staff_admin_token
from tests.support.isolation import assert_cross_tenant_404
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[Client]:
    allow = dataclasses.replace(settings, webhook_allowlist=("127.0.0.1",))
    async with AsyncTestClient(app=build_app(allow)) as client:
        yield client


async def some_changes(api: Client, tenant: TenantContext, headers: dict[str, str]) -> None:
    """API-client changes (a platform connection) and a webhook endpoint (the tenant's role)."""
    base = f"/v1/tenants/{tenant.slug}"
    made = await api.post(
        f"{base}/clients",
        json={"name": "ERP", "scopes": ["ledger:read"]},
        headers={**headers, "X-Request-ID": "req-audit-1"},
    )
    assert made.status_code == 201, made.text
    client_id = made.json()["client_id"]
    rotated = await api.post(
        f"{base}/clients/{client_id}/rotate", json={"overlap_seconds": 0}, headers=headers
    )
    assert rotated.status_code == 200, rotated.text
    hook = await api.post(
        f"{base}/webhooks/endpoints", json={"url": "http://127.0.0.1:9/h"}, headers=headers
    )
    assert hook.status_code == 201, hook.text
    assert (await api.delete(f"{base}/clients/{client_id}", headers=headers)).status_code == 204


async def test_changes_are_listed_newest_first_filtered_and_paged(
    api: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "audit-firm")
    as_admin = await admin_of(db, settings, firm)
    await some_changes(api, firm, as_admin)
    url = f"/v1/tenants/{firm.slug}/audit/events"
    page = (await api.get(url, headers=as_admin)).json()
    actions = [e["action"] for e in page["items"]]
    assert actions == [
        "api_client.deleted",
        "webhook_endpoint.created",
        "api_client.rotated",
        "api_client.created",
    ]
    assert [e["seq"] for e in page["items"]] == [4, 3, 2, 1]
    created = page["items"][-1]
    assert created["request_id"] == "req-audit-1"
    assert created["actor"].startswith("user:")
    assert created["after_digest"] and created["before_digest"] is None
    assert created["prev_hash"] == "00" * 32
    assert page["items"][-2]["prev_hash"] == created["hash"]

    only = (await api.get(url, params={"action": "api_client.rotated"}, headers=as_admin)).json()
    assert [e["seq"] for e in only["items"]] == [2]
    first = (await api.get(url, params={"limit": 3}, headers=as_admin)).json()
    rest = (
        await api.get(url, params={"limit": 3, "cursor": first["next_cursor"]}, headers=as_admin)
    ).json()
    assert [e["seq"] for e in first["items"] + rest["items"]] == [4, 3, 2, 1]
    assert rest["next_cursor"] is None
    bad = await api.get(url, params={"cursor": "x'; drop"}, headers=as_admin)
    assert bad.status_code == 400 and "cursor" in bad.text

    verified = await api.post(f"/v1/tenants/{firm.slug}/audit/verify", headers=as_admin)
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"ok": True, "events_checked": 4, "head_seq": 4, "first_broken": None}


FLIP_FIRST = "overlay({c} placing chr(ascii(left({c}, 1)) # 1) from 1 for 1)"  # always differs
TAMPERING = [
    ("actor", "actor = " + FLIP_FIRST.format(c="actor")),
    ("action", "action = " + FLIP_FIRST.format(c="action")),
    ("target", "target = " + FLIP_FIRST.format(c="target")),
    ("after_digest", "after_digest = " + FLIP_FIRST.format(c="after_digest")),
    ("at", "at = at + interval '1 microsecond'"),
    (
        "id",
        "id = overlay(id::text placing CASE WHEN left(id::text, 1) = 'f' THEN 'e' ELSE 'f' END"
        " from 1 for 1)::uuid",
    ),
    ("prev_hash", "prev_hash = set_byte(prev_hash, 0, get_byte(prev_hash, 0) # 1)"),
    ("hash", "hash = set_byte(hash, 31, get_byte(hash, 31) # 1)"),
]


@pytest.mark.parametrize(("column", "change"), TAMPERING, ids=[c for c, _ in TAMPERING])
async def test_one_changed_byte_is_reported_at_its_row(
    api: Client, db: Database, settings: Settings, column: str, change: str
) -> None:
    firm = await make_tenant(db, "tamper-firm")
    as_admin = await admin_of(db, settings, firm)
    await some_changes(api, firm, as_admin)
    async with db.engine.begin() as conn:  # as the superuser: no application in the way
        await conn.execute(
            text(f"UPDATE platform.audit_events SET {change} WHERE chain_id = :c AND seq = 2"),
            {"c": firm.tenant_id},
        )
    result = (await api.post(f"/v1/tenants/{firm.slug}/audit/verify", headers=as_admin)).json()
    assert result["ok"] is False
    assert result["first_broken"]["seq"] == 2, result
    assert result["first_broken"]["reason"]


async def test_removed_and_cut_off_events_are_reported(
    api: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "cut-firm")
    as_admin = await admin_of(db, settings, firm)
    await some_changes(api, firm, as_admin)
    verify = f"/v1/tenants/{firm.slug}/audit/verify"
    async with db.engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM platform.audit_events WHERE chain_id = :c AND seq = 4"),
            {"c": firm.tenant_id},
        )
    cut = (await api.post(verify, headers=as_admin)).json()
    assert (cut["ok"], cut["first_broken"]["seq"]) == (False, 4)
    assert "head" in cut["first_broken"]["reason"]
    async with db.engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM platform.audit_events WHERE chain_id = :c AND seq = 2"),
            {"c": firm.tenant_id},
        )
    gap = (await api.post(verify, headers=as_admin)).json()
    assert (gap["ok"], gap["first_broken"]["seq"]) == (False, 2)
    assert "missing" in gap["first_broken"]["reason"]


async def test_concurrent_appends_keep_one_linear_chain(db: Database) -> None:
    firm = await make_tenant(db, "busy-firm")

    async def append(n: int) -> None:
        async with tenant_session(db.engine, firm) as session:  # the tenant role's path
            await audit.record(
                session, firm.tenant_id, actor="system:test", action="x.done", target=f"x:{n}"
            )

    await asyncio.gather(*(append(n) for n in range(30)))
    verdict = await audit.service.verify(db.engine, firm.tenant_id)
    assert (verdict.ok, verdict.events_checked, verdict.head_seq) == (True, 30, 30)


async def test_an_open_append_holds_up_no_other_and_is_linked_in_commit_order(
    db: Database,
) -> None:
    """Appends are linked into the chain at commit: one transaction still open after its
    append makes no other wait, and the numbers follow the commits (a rolled-back append
    leaves no gap)."""
    firm = await make_tenant(db, "open-firm")

    async def append(session: Any, target: str) -> None:
        await audit.record(session, firm.tenant_id, actor="system:test", action="x.done",
                           target=target)  # fmt: skip

    async with tenant_session(db.engine, firm) as slow:
        await append(slow, "x:slow")
        async with asyncio.timeout(5):  # before, this waited for the slow one's commit
            async with tenant_session(db.engine, firm) as quick:
                await append(quick, "x:quick")

        async def rolled_back() -> None:
            async with tenant_session(db.engine, firm) as session:
                await append(session, "x:rolled-back")
                raise RuntimeError("changed my mind")

        with pytest.raises(RuntimeError):
            await rolled_back()
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT seq, target, link_before IS NULL AND link_after IS NULL"
                    " FROM platform.audit_events WHERE chain_id = :c ORDER BY seq"
                ),
                {"c": firm.tenant_id},
            )
        ).all()
    assert [tuple(r) for r in rows] == [(1, "x:quick", True), (2, "x:slow", True)]
    verdict = await audit.service.verify(db.engine, firm.tenant_id)
    assert (verdict.ok, verdict.head_seq) == (True, 2)


async def test_other_tenants_get_404_and_the_database_refuses_their_sql(
    api: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "owner-firm")
    rival = await make_tenant(db, "nosy-firm")
    as_admin = await admin_of(db, settings, firm)
    as_rival = await admin_of(db, settings, rival)
    await some_changes(api, firm, as_admin)

    async def unchanged() -> Any:
        return (await api.get(f"/v1/tenants/{firm.slug}/audit/events", headers=as_admin)).json()

    for method, path in [
        ("GET", f"/v1/tenants/{firm.slug}/audit/events"),
        ("POST", f"/v1/tenants/{firm.slug}/audit/verify"),
    ]:
        await assert_cross_tenant_404(api, method, path, headers=as_rival, unchanged=unchanged)

    # The rival's role may append to its own chain only, and read none.
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(db.engine, rival) as session:
            await audit.record(session, firm.tenant_id, actor="x", action="forged", target="x")
    with pytest.raises(DBAPIError, match="permission denied"):
        async with tenant_session(db.engine, rival) as session:
            await session.execute(text("SELECT count(*) FROM platform.audit_events"))
    assert (await audit.service.verify(db.engine, firm.tenant_id)).ok


async def test_staff_admin_actions_go_to_the_platform_chain(
    api: Client, db: Database, settings: Settings
) -> None:
    as_staff_admin = bearer(await staff_admin_token(db, settings))
    made = await api.post(
        "/v1/tenants", json={"slug": "fresh-firm", "name": "Fresh"}, headers=as_staff_admin
    )
    assert made.status_code == 201, made.text
    listed = (await api.get("/v1/staff/audit/events", headers=as_staff_admin)).json()
    assert [(e["action"], e["target"]) for e in listed["items"]] == [
        ("tenant.created", "tenant:fresh-firm")
    ]
    verified = await api.post("/v1/staff/audit/verify", headers=as_staff_admin)
    assert verified.json()["ok"] is True
    assert (await audit.service.verify(db.engine, PLATFORM_CHAIN)).head_seq == 1
    assert uuid.UUID(listed["items"][0]["id"])


async def test_verification_is_rate_limited_per_chain(
    api: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "verify-often-firm")
    other = await make_tenant(db, "verify-once-firm")
    as_admin = await admin_of(db, settings, firm)
    url = f"/v1/tenants/{firm.slug}/audit/verify"
    statuses = [(await api.post(url, headers=as_admin)).status_code for _ in range(8)]
    assert statuses == [200] * VERIFY_LIMIT + [429] * 2
    limited = await api.post(url, headers=as_admin)
    assert limited.json()["type"].endswith("/rate-limited")
    assert int(limited.headers["retry-after"]) >= 1
    # Another firm's chain has its own allowance.
    as_other = await admin_of(db, settings, other)
    fine = await api.post(f"/v1/tenants/{other.slug}/audit/verify", headers=as_other)
    assert fine.status_code == 200
