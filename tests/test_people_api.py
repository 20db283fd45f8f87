"""Tenant admins manage members, invites and API clients; staff admins manage staff and
their assignments. Every route refuses another tenant's token with 404 and changes nothing."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pyotp
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from bpo.core.db import Database
from bpo.identity.models import ApiClient, Membership, User
from bpo.people.models import Invite
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import (
    PASSWORD,
    admin_of,
    bearer,
    client_token,
    make_user,
    staff_admin_token,
    user_token,
)
from tests.support.isolation import assert_cross_tenant_404
from tests.support.jobs import running_worker, wait_for
from tests.support.smtp import smtp_server
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def dev_client(settings: Settings, db: Database) -> AsyncIterator[Client]:
    """The API as `bpo up` runs it locally: invite tokens are also shown to the inviter."""
    local = dataclasses.replace(settings, environment="development")
    async with AsyncTestClient(app=build_app(local)) as test_client:
        yield test_client


async def rows(db: Database, model: Any) -> int:
    async with db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_an_invite_is_mailed_to_the_invited_address_and_never_shown(
    client: Client, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db, "mail-firm")
    as_admin = await admin_of(db, settings, tenant)
    with smtp_server() as mailbox:
        mailing = dataclasses.replace(settings, smtp_url=mailbox.url)
        async with running_worker(mailing):
            made = await client.post(
                f"/v1/tenants/{tenant.slug}/users/invites",
                json={"email": "dee@mail.example"},
                headers=as_admin,
            )
            assert made.status_code == 201, made.text
            assert "token" not in made.json()  # not to the inviter, outside development

            async def mailed() -> bool:
                return bool(mailbox.to("dee@mail.example"))

            await wait_for(mailed)
    (message,) = mailbox.to("dee@mail.example")
    assert message["To"] == "dee@mail.example"
    text = message.get_payload(decode=True).decode()
    token = re.search(r"^ +(\S{40,})\s*$", text, re.MULTILINE)
    assert token is not None, text
    accepted = await client.post(
        "/v1/invites/accept", json={"token": token.group(1), "password": PASSWORD}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["tenant"] == tenant.slug


async def test_invite_accept_and_manage_a_member(
    dev_client: Client, db: Database, settings: Settings
) -> None:
    client = dev_client
    tenant = await make_tenant(db, "acme-firm")
    as_admin = await admin_of(db, settings, tenant)
    made = await client.post(
        f"/v1/tenants/{tenant.slug}/users/invites",
        json={"email": "Bo@Acme.example", "role": "tenant_member"},
        headers=as_admin,
    )
    assert made.status_code == 201, made.text
    invite = made.json()
    assert invite["email"] == "bo@acme.example" and invite["status"] == "pending"
    listed = await client.get(f"/v1/tenants/{tenant.slug}/users/invites", headers=as_admin)
    assert "token" not in listed.json()["items"][0]  # shown once only

    short = await client.post(
        "/v1/invites/accept", json={"token": invite["token"], "password": "short"}
    )
    assert short.status_code == 422
    accepted = await client.post(
        "/v1/invites/accept", json={"token": invite["token"], "password": PASSWORD, "name": "Bo"}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["tenant"] == tenant.slug
    again = await client.post(
        "/v1/invites/accept", json={"token": invite["token"], "password": PASSWORD}
    )
    assert again.status_code == 409  # one time only

    members = (await client.get(f"/v1/tenants/{tenant.slug}/users", headers=as_admin)).json()
    bo = next(m for m in members["items"] if m["email"] == "bo@acme.example")
    assert bo["role"] == "tenant_member" and bo["status"] == "active"
    promoted = await client.patch(
        f"/v1/tenants/{tenant.slug}/users/{bo['user_id']}",
        json={"role": "tenant_admin"},
        headers=as_admin,
    )
    assert promoted.json()["role"] == "tenant_admin"
    bad = await client.patch(
        f"/v1/tenants/{tenant.slug}/users/{bo['user_id']}",
        json={"role": "owner", "extra": 1},
        headers=as_admin,
    )
    assert bad.status_code == 422


async def test_an_invite_expires_and_can_be_revoked(
    dev_client: Client, db: Database, settings: Settings
) -> None:
    client = dev_client
    tenant = await make_tenant(db, "acme-firm")
    as_admin = await admin_of(db, settings, tenant)
    path = f"/v1/tenants/{tenant.slug}/users/invites"
    first = (await client.post(path, json={"email": "cy@acme.example"}, headers=as_admin)).json()
    revoked = await client.delete(f"{path}/{first['id']}", headers=as_admin)
    assert revoked.status_code == 204
    gone = await client.post(
        "/v1/invites/accept", json={"token": first["token"], "password": PASSWORD}
    )
    assert gone.status_code == 404
    second = (await client.post(path, json={"email": "cy@acme.example"}, headers=as_admin)).json()
    async with db.sessionmaker.begin() as session:
        invite = await session.get_one(Invite, uuid.UUID(second["id"]))
        invite.expires_at = invite.created_at
    expired = await client.post(
        "/v1/invites/accept", json={"token": second["token"], "password": PASSWORD}
    )
    assert expired.status_code == 410
    assert await rows(db, Membership) == 1  # the admin only


async def test_api_clients_create_rotate_delete(
    client: Client, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db, "acme-firm")
    as_admin = await admin_of(db, settings, tenant)
    path = f"/v1/tenants/{tenant.slug}/clients"
    refused = await client.post(
        path, json={"name": "ERP", "scopes": ["ledger:read", "admin"]}, headers=as_admin
    )
    assert refused.status_code == 422 and "admin" in refused.json()["detail"]
    made = await client.post(
        path, json={"name": "ERP", "scopes": ["ledger:read"]}, headers=as_admin
    )
    assert made.status_code == 201, made.text
    created = made.json()
    secret, client_id = created["client_secret"], created["client_id"]
    assert len(secret) >= 43  # 256 bits, URL-safe

    async def token(with_secret: str) -> int:
        response = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, with_secret),
        )
        return response.status_code

    assert await token(secret) == 200
    listed = (await client.get(path, headers=as_admin)).json()["items"]
    assert [c["client_id"] for c in listed] == [client_id] and "client_secret" not in listed[0]
    rotated = await client.post(
        f"{path}/{client_id}/rotate", json={"overlap_seconds": 3600}, headers=as_admin
    )
    new_secret = rotated.json()["client_secret"]
    assert await token(new_secret) == 200 and await token(secret) == 200  # the overlap
    await client.post(f"{path}/{client_id}/rotate", json={"overlap_seconds": 0}, headers=as_admin)
    assert await token(new_secret) == 401  # no overlap asked: the old one stops now

    as_client = bearer(await client_token(db, settings, tenant))
    assert (await client.get(path, headers=as_client)).status_code == 403  # clients: no role
    assert (await client.delete(f"{path}/{client_id}", headers=as_admin)).status_code == 204
    assert (await client.delete(f"{path}/{client_id}", headers=as_admin)).status_code == 404


async def test_a_deleted_clients_tokens_stop_at_once(
    client: Client, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db, "acme-firm")
    as_admin = await admin_of(db, settings, tenant)
    as_client = bearer(await client_token(db, settings, tenant))
    assert (await client.get("/v1/me", headers=as_client)).status_code == 200
    client_id = (await client.get("/v1/me", headers=as_client)).json()["client_id"]
    deleted = await client.delete(
        f"/v1/tenants/{tenant.slug}/clients/{client_id}", headers=as_admin
    )
    assert deleted.status_code == 204
    assert (await client.get("/v1/me", headers=as_client)).status_code == 401


async def test_another_tenants_admin_gets_404_everywhere_and_changes_nothing(
    client: Client, db: Database, settings: Settings
) -> None:
    a, b = await make_tenant(db, "alpha-firm"), await make_tenant(db, "beta-firm")
    as_a = await admin_of(db, settings, a)
    as_b = await admin_of(db, settings, b)
    b_client = (
        await client.post(
            f"/v1/tenants/{b.slug}/clients", json={"name": "B", "scopes": ["work:read"]},
            headers=as_b,
        )
    ).json()["client_id"]  # fmt: skip
    b_invite = (
        await client.post(
            f"/v1/tenants/{b.slug}/users/invites", json={"email": "x@b.example"}, headers=as_b
        )
    ).json()["id"]
    listed = (await client.get(f"/v1/tenants/{b.slug}/users", headers=as_b)).json()
    b_member = listed["items"][0]["user_id"]

    async def state() -> tuple[int, int, int]:
        return await rows(db, ApiClient), await rows(db, Invite), await rows(db, Membership)

    # B's resources through B's path with A's token, and through A's path.
    for slug in (b.slug, a.slug):
        base = f"/v1/tenants/{slug}"
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("PATCH", f"{base}/users/{b_member}", {"json": {"status": "deactivated"}}),
            ("DELETE", f"{base}/users/invites/{b_invite}", {}),
            ("POST", f"{base}/clients/{b_client}/rotate", {"json": {}}),
            ("DELETE", f"{base}/clients/{b_client}", {}),
        ]
        if slug == b.slug:
            calls += [
                ("GET", f"{base}/users", {}),
                ("GET", f"{base}/users/invites", {}),
                ("GET", f"{base}/clients", {}),
                ("POST", f"{base}/users/invites", {"json": {"email": "y@b.example"}}),
                ("POST", f"{base}/clients", {"json": {"name": "x", "scopes": ["work:read"]}}),
            ]
        for method, path, kwargs in calls:
            await assert_cross_tenant_404(
                client, method, path, headers=as_a, unchanged=state, **kwargs
            )


async def test_staff_admins_manage_staff_and_assignments(
    dev_client: Client, db: Database, settings: Settings
) -> None:
    client = dev_client
    tenant = await make_tenant(db, "acme-firm")
    as_boss = bearer(await staff_admin_token(db, settings))
    invited = await client.post(
        "/v1/staff/invites", json={"email": "sam@provider.example"}, headers=as_boss
    )
    assert invited.status_code == 201, invited.text
    accepted = await client.post(
        "/v1/invites/accept", json={"token": invited.json()["token"], "password": PASSWORD}
    )
    sam_id = accepted.json()["user_id"]
    as_sam = bearer(await user_token(db, settings, uuid.UUID(sam_id), staff_role="staff"))
    assert (await client.get("/v1/staff/tenants", headers=as_sam)).json() == []
    assert (await client.get(f"/v1/tenants/{tenant.slug}/users", headers=as_sam)).status_code == 404

    path = f"/v1/staff/members/{sam_id}/assignments/{tenant.slug}"
    assert (await client.put(path, headers=as_boss)).status_code == 204
    assert (await client.put(path, headers=as_boss)).status_code == 204  # idempotent
    assert [t["slug"] for t in (await client.get("/v1/staff/tenants", headers=as_sam)).json()] == [
        tenant.slug
    ]
    staff = (await client.get("/v1/staff/members", headers=as_boss)).json()
    assert next(s for s in staff if s["user_id"] == sam_id)["tenants"] == [tenant.slug]
    # A staff member may not manage a firm's members (admins only), nor other staff.
    assert (await client.get(f"/v1/tenants/{tenant.slug}/users", headers=as_sam)).status_code == 403
    assert (await client.get("/v1/staff/members", headers=as_sam)).status_code == 403
    assert (await client.delete(path, headers=as_boss)).status_code == 204
    assert (await client.get("/v1/staff/tenants", headers=as_sam)).json() == []
    assert (
        await client.put(f"/v1/staff/members/{sam_id}/assignments/no-such-firm", headers=as_boss)
    ).status_code == 404
    off = await client.patch(
        f"/v1/staff/members/{sam_id}", json={"status": "deactivated"}, headers=as_boss
    )
    assert off.status_code == 200
    assert (await client.get("/v1/staff/tenants", headers=as_sam)).status_code == 401


@pytest.mark.parametrize(
    "path", ["/v1/staff/members", "/v1/staff/tenants", "/v1/tenants/acme-firm/users"]
)
async def test_a_tenant_member_reaches_no_staff_or_admin_route(
    client: Client, db: Database, settings: Settings, path: str
) -> None:
    tenant = await make_tenant(db, "acme-firm")
    user_id = await make_user(db, "bo@acme.example", tenants={tenant: "tenant_member"})
    as_bo = bearer(await user_token(db, settings, user_id, tenant=tenant))
    assert (await client.get(path, headers=as_bo)).status_code == 403


async def test_a_body_error_on_a_tenant_route_names_only_the_body(
    client: Client, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db, "strict-firm")
    as_admin = await admin_of(db, settings, tenant)
    refused = await client.post(
        f"/v1/tenants/{tenant.slug}/clients", json={"name": "ERP"}, headers=as_admin
    )
    assert refused.status_code == 422
    body = refused.json()
    # The slug in the path was fine: only the missing field is reported.
    assert body["errors"] == [{"detail": "Object missing required field `scopes`", "pointer": "#"}]
    assert body["detail"] == "1 field failed validation: #: Object missing required field `scopes`"


async def test_totp_enrolment_needs_the_password_now(
    client: Client, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db, "totp-firm")
    user_id = await make_user(db, "tia@totp.example", tenants={tenant: "tenant_member"})
    as_tia = bearer(await user_token(db, settings, user_id, tenant=tenant))
    missing = await client.post("/v1/me/totp", json={}, headers=as_tia)
    assert missing.status_code == 422 and "password" in missing.text
    wrong = await client.post("/v1/me/totp", json={"password": "guess"}, headers=as_tia)
    assert wrong.status_code == 403 and "secret" not in wrong.json()
    async with db.sessionmaker() as session:
        user = await session.get_one(User, user_id)
        assert user.totp_secret_sealed is None  # nothing was started
    started = await client.post("/v1/me/totp", json={"password": PASSWORD}, headers=as_tia)
    assert started.status_code == 201, started.text
    code = pyotp.TOTP(started.json()["secret"]).now()
    confirmed = await client.post("/v1/me/totp/confirm", json={"code": code}, headers=as_tia)
    assert confirmed.status_code == 204


async def test_totp_password_guesses_are_throttled(
    client: Client, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db, "guess-firm")
    user_id = await make_user(db, "gus@guess.example", tenants={tenant: "tenant_member"})
    as_gus = bearer(await user_token(db, settings, user_id, tenant=tenant))
    answers = [
        (await client.post("/v1/me/totp", json={"password": "guess"}, headers=as_gus)).status_code
        for _ in range(settings.login_failures_per_email + 2)
    ]
    assert answers == [403] * settings.login_failures_per_email + [429, 429]
    # The right password is refused too, until the window passes.
    right = await client.post("/v1/me/totp", json={"password": PASSWORD}, headers=as_gus)
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0
