"""Authorization code + PKCE (S256 only), the sign-in page, refresh rotation, introspection
and revocation: each rule of RFC 6749/7636/7009/7662 and RFC 9700 bpo promises, and the
attacks they stop (plain PKCE, a redirect URI one character off, code and refresh reuse)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from urllib.parse import urlencode

import pyotp
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from bpo.core.db import Database
from bpo.core.security import seal
from bpo.core.tenancy import TenantContext
from bpo.identity.models import Membership, TokenEvent, User
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.auth import PASSWORD, bearer, make_user
from tests.support.oauth import (
    REDIRECT,
    Pkce,
    authorize_params,
    exchange_code,
    hidden_fields,
    redirect_query,
    register_app,
    sign_in,
)
from tests.support.tenants import make_tenant
from tests.test_oauth_tokens import segment

Client = AsyncTestClient[Litestar]


@pytest.fixture
def client(client: Client) -> Client:
    client.follow_redirects = False  # the redirects go to the client's callback, not here
    return client


async def signed_in(
    client: Client, email: str, pkce: Pkce | None = None, **extra: str
) -> dict[str, str]:
    """Sign in and exchange the code; the token response."""
    pkce = pkce or Pkce.new()
    query = redirect_query(await sign_in(client, authorize_params(pkce), email, PASSWORD, **extra))
    response = await exchange_code(client, query["code"], pkce)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def firm(db: Database, slug: str = "acme-firm") -> TenantContext:
    await register_app(db)
    return await make_tenant(db, slug)


async def test_the_code_flow_gives_tokens_bound_to_the_tenant(
    client: Client, db: Database, settings: Settings
) -> None:
    tenant = await firm(db)
    user_id = await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    pkce = Pkce.new()
    response = await sign_in(client, authorize_params(pkce), "ana@acme.example", PASSWORD)
    assert response.headers["cache-control"] == "no-store"
    query = redirect_query(response)
    assert query["state"] == "st-1" and query["iss"] == settings.issuer  # RFC 9207
    tokens = (await exchange_code(client, query["code"], pkce)).json()
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    async with db.sessionmaker() as session:
        events = (await session.scalars(select(TokenEvent).order_by(TokenEvent.at))).all()
    assert [(e.result, e.grant_type, e.subject) for e in events] == [
        ("issued", "authorization_code", str(user_id)),  # the code, at sign-in
        ("issued", "authorization_code", str(user_id)),  # the tokens, at the token endpoint
    ]
    assert set(tokens["scope"].split()) == {"admin", "work:read"}
    claims = segment(tokens["access_token"], 1)
    assert claims["sub"] == str(user_id) and claims["tenant"] == str(tenant.tenant_id)
    assert claims["client_id"] == "console" and claims["exp"] - claims["iat"] <= 600
    members = await client.get(
        f"/v1/tenants/{tenant.slug}/users", headers=bearer(tokens["access_token"])
    )
    assert members.status_code == 200, members.text
    assert [m["email"] for m in members.json()["items"]] == ["ana@acme.example"]


async def test_a_member_gets_no_admin_scope(client: Client, db: Database) -> None:
    tenant = await firm(db)
    await make_user(db, "bo@acme.example", tenants={tenant: "tenant_member"})
    tokens = await signed_in(client, "bo@acme.example")
    assert tokens["scope"] == "work:read"  # asked for admin too; the role does not hold it
    refused = await client.get(
        f"/v1/tenants/{tenant.slug}/users", headers=bearer(tokens["access_token"])
    )
    assert refused.status_code == 403


async def test_pkce_is_s256_only_and_required(client: Client, db: Database) -> None:
    tenant = await firm(db)
    await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    pkce = Pkce.new()
    for params in (
        authorize_params(pkce, method="plain"),
        authorize_params(None, method=None),  # no PKCE at all
        authorize_params(pkce, method=None),  # defaults to plain (RFC 7636 §4.3)
    ):
        refused = await client.get("/oauth/authorize", params=params)
        query = redirect_query(refused)  # the redirect URI is the client's: tell it there
        assert query["error"] == "invalid_request" and query["state"] == "st-1"
    query = redirect_query(
        await sign_in(client, authorize_params(pkce), "ana@acme.example", PASSWORD)
    )
    missing = await exchange_code(client, query["code"], None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    wrong = await exchange_code(client, query["code"], Pkce.new())
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


async def test_a_redirect_uri_one_character_off_is_refused(client: Client, db: Database) -> None:
    tenant = await firm(db)
    await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    pkce = Pkce.new()
    for near in (REDIRECT + "x", REDIRECT[:-1], REDIRECT.replace("127.0.0.1", "127.0.0.2")):
        page = await client.get(
            "/oauth/authorize", params=authorize_params(pkce, redirect_uri=near)
        )
        assert page.status_code == 400 and "location" not in page.headers  # never redirected
        assert "not supported" in page.text
    query = redirect_query(
        await sign_in(client, authorize_params(pkce), "ana@acme.example", PASSWORD)
    )
    other = await exchange_code(client, query["code"], pkce, redirect_uri=REDIRECT + "x")
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"


async def test_code_reuse_is_refused_and_revokes_what_it_issued(
    client: Client, db: Database
) -> None:
    tenant = await firm(db)
    await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    pkce = Pkce.new()
    query = redirect_query(
        await sign_in(client, authorize_params(pkce), "ana@acme.example", PASSWORD)
    )
    first = (await exchange_code(client, query["code"], pkce)).json()
    assert (await client.get("/v1/me", headers=bearer(first["access_token"]))).status_code == 200
    again = await exchange_code(client, query["code"], pkce)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert (await client.get("/v1/me", headers=bearer(first["access_token"]))).status_code == 401
    refresh = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
              "client_id": "console"},
    )  # fmt: skip
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


async def test_refresh_rotates_and_reuse_revokes_the_family(client: Client, db: Database) -> None:
    tenant = await firm(db)
    await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    first = await signed_in(client, "ana@acme.example")

    async def refresh(token: str) -> dict[str, str]:
        response = await client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "console"},
        )
        return {"status": str(response.status_code), **response.json()}

    second = await refresh(first["refresh_token"])
    assert second["status"] == "200" and second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == first["scope"]
    replay = await refresh(first["refresh_token"])  # the rotated one, again: a theft signal
    assert replay["status"] == "400" and replay["error"] == "invalid_grant"
    assert (await refresh(second["refresh_token"]))["status"] == "400"  # the family is revoked


async def test_introspection_and_revocation(client: Client, db: Database) -> None:
    tenant = await firm(db)
    await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    await register_app(db, "other-app")
    tokens = await signed_in(client, "ana@acme.example")
    access = tokens["access_token"]

    async def introspect(token: str, client_id: str = "console") -> dict[str, object]:
        response = await client.post(
            "/oauth/introspect", data={"token": token, "client_id": client_id}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    seen = await introspect(access)
    assert seen["active"] is True and seen["tenant"] == str(tenant.tenant_id)
    assert seen["scope"] == tokens["scope"] and seen["client_id"] == "console"
    assert await introspect(access, "other-app") == {"active": False}  # not its token
    assert (await introspect(tokens["refresh_token"]))["active"] is True
    assert await introspect("not-a-token") == {"active": False}

    revoked = await client.post("/oauth/revoke", data={"token": access, "client_id": "console"})
    assert revoked.status_code == 200
    assert await introspect(access) == {"active": False}
    gone = await client.get("/v1/me", headers=bearer(access))
    assert gone.status_code == 401 and "revoked" in gone.json()["detail"]
    await client.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": "console"}
    )
    assert await introspect(tokens["refresh_token"]) == {"active": False}
    unknown = await client.post("/oauth/revoke", data={"token": "nope", "client_id": "console"})
    assert unknown.status_code == 200  # RFC 7009 §2.2: unknown tokens are not an error


async def test_the_login_form_needs_its_csrf_token(client: Client, db: Database) -> None:
    tenant = await firm(db)
    await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    params = authorize_params(Pkce.new())
    forged = await client.post(
        "/oauth/authorize", data=params | {"email": "ana@acme.example", "password": PASSWORD}
    )
    assert forged.status_code == 403 and "location" not in forged.headers


async def test_failed_sign_ins_are_throttled(client: Client, db: Database) -> None:
    tenant = await firm(db)
    email = f"slow-{uuid.uuid4().hex[:6]}@acme.example"
    await make_user(db, email, tenants={tenant: "tenant_admin"})
    params = authorize_params(Pkce.new())
    for _ in range(5):
        wrong = await sign_in(client, params, email, "not the password")
        assert wrong.status_code == 401 and "is wrong" in wrong.text
    limited = await sign_in(client, params, email, PASSWORD)  # even the right one, for now
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    async with db.sessionmaker() as session:
        errors = [e.error for e in (await session.scalars(select(TokenEvent))).all()]
    assert errors == ["invalid_credentials"] * 5 + ["throttled"]  # every refusal recorded


async def test_parallel_wrong_passwords_cannot_pass_the_throttle_together(
    client: Client, db: Database, settings: Settings
) -> None:
    """20 attempts at once: the count is taken before each password check, atomically, so
    only the allowed 5 reach argon2; the rest are refused without one."""
    tenant = await firm(db)
    email = f"race-{uuid.uuid4().hex[:6]}@acme.example"
    await make_user(db, email, tenants={tenant: "tenant_admin"})
    params = authorize_params(Pkce.new())
    page = await client.get(f"/oauth/authorize?{urlencode(params)}")
    form = hidden_fields(page.text) | {"email": email, "password": "not the password"}
    answers = await asyncio.gather(*(client.post("/oauth/authorize", data=form) for _ in range(20)))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {401: settings.login_failures_per_email, 429: 20 - 5}, statuses
    async with db.sessionmaker() as session:
        errors = Counter(e.error for e in (await session.scalars(select(TokenEvent))).all())
    assert errors == {"invalid_credentials": 5, "throttled": 15}


async def test_a_successful_sign_in_does_not_count_as_a_failure(
    client: Client, db: Database
) -> None:
    tenant = await firm(db)
    email = f"ok-{uuid.uuid4().hex[:6]}@acme.example"
    await make_user(db, email, tenants={tenant: "tenant_admin"})
    for _ in range(8):  # more than the 5 failures allowed, all good
        await signed_in(client, email)
    wrong = await sign_in(client, authorize_params(Pkce.new()), email, "not the password")
    assert wrong.status_code == 401  # not 429: the successes were not counted


async def test_a_refresh_after_a_demotion_carries_the_new_roles_scopes(
    client: Client, db: Database
) -> None:
    tenant = await firm(db)
    user_id = await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    first = await signed_in(client, "ana@acme.example")
    assert "admin" in first["scope"].split()
    async with db.sessionmaker.begin() as session:
        await session.execute(
            update(Membership).where(Membership.user_id == user_id).values(role="tenant_member")
        )
    refreshed = await client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": "console",
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "work:read"
    claims = segment(refreshed.json()["access_token"], 1)
    assert claims["scope"] == "work:read"
    # The rotated refresh token carries the narrowed grant too.
    again = await client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed.json()["refresh_token"],
            "client_id": "console",
            "scope": "work:read admin",
        },
    )
    assert again.status_code == 400, again.text
    assert again.json()["error"] == "invalid_scope"


async def test_totp_is_asked_once_enrolled_and_codes_are_single_use(
    client: Client, db: Database
) -> None:
    tenant = await firm(db)
    user_id = await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    secret = pyotp.random_base32()
    async with db.sessionmaker.begin() as session:
        await session.execute(
            update(User)
            .where(User.id == user_id)
            .values(
                totp_secret_sealed=seal(TEST_SECRET_KEY, f"totp:{user_id}", secret.encode()),
                totp_confirmed_at=datetime.now(UTC),
            )
        )
    params = authorize_params(Pkce.new())
    without = await sign_in(client, params, "ana@acme.example", PASSWORD)
    assert without.status_code == 401
    code = pyotp.TOTP(secret).now()
    assert (
        await sign_in(client, params, "ana@acme.example", PASSWORD, totp=code)
    ).status_code == 302
    replay = await sign_in(client, params, "ana@acme.example", PASSWORD, totp=code)
    assert replay.status_code == 401


async def test_a_person_with_two_firms_picks_one(client: Client, db: Database) -> None:
    tenant = await firm(db)
    other = await make_tenant(db, "other-firm")
    await make_user(
        db, "ana@acme.example", tenants={tenant: "tenant_admin", other: "tenant_member"}
    )
    pkce = Pkce.new()
    picker = await sign_in(client, authorize_params(pkce), "ana@acme.example", PASSWORD)
    assert picker.status_code == 200 and "other-firm" in picker.text and "acme-firm" in picker.text
    chosen = await client.post(
        "/oauth/authorize", data=hidden_fields(picker.text) | {"tenant": "other-firm"}
    )
    tokens = (await exchange_code(client, redirect_query(chosen)["code"], pkce)).json()
    assert segment(tokens["access_token"], 1)["tenant"] == str(other.tenant_id)
    assert tokens["scope"] == "work:read"  # a member there, not an admin
    forged = hidden_fields(picker.text) | {"tenant": "other-firm", "ticket": "x.1.y"}
    assert (await client.post("/oauth/authorize", data=forged)).status_code == 401


async def test_staff_sign_in_and_see_only_assigned_tenants(client: Client, db: Database) -> None:
    tenant = await firm(db)
    await make_tenant(db, "not-assigned")
    await make_user(db, "sam@provider.example", staff_role="staff", assigned=[tenant])
    tokens = await signed_in(client, "sam@provider.example")
    claims = segment(tokens["access_token"], 1)
    assert claims["staff_role"] == "staff" and "tenant" not in claims
    as_sam = bearer(tokens["access_token"])
    visible = await client.get("/v1/staff/tenants", headers=as_sam)
    assert [t["slug"] for t in visible.json()] == ["acme-firm"]
    assert (await client.get("/v1/tenants/not-assigned/users", headers=as_sam)).status_code == 404


async def test_a_deactivated_member_is_stopped_at_once(
    client: Client, db: Database, settings: Settings
) -> None:
    tenant = await firm(db)
    admin_id = await make_user(db, "ana@acme.example", tenants={tenant: "tenant_admin"})
    bo_id = await make_user(db, "bo@acme.example", tenants={tenant: "tenant_member"})
    admin = await signed_in(client, "ana@acme.example")
    bo = await signed_in(client, "bo@acme.example")
    assert (await client.get("/v1/me", headers=bearer(bo["access_token"]))).status_code == 200
    done = await client.patch(
        f"/v1/tenants/{tenant.slug}/users/{bo_id}",
        json={"status": "deactivated"},
        headers=bearer(admin["access_token"]),
    )
    assert done.status_code == 200 and done.json()["status"] == "deactivated"
    stopped = await client.get("/v1/me", headers=bearer(bo["access_token"]))
    assert stopped.status_code == 401
    assert stopped.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    refresh = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": bo["refresh_token"],
              "client_id": "console"},
    )  # fmt: skip
    assert refresh.status_code == 400
    # The last admin cannot deactivate themselves out of the firm.
    alone = await client.patch(
        f"/v1/tenants/{tenant.slug}/users/{admin_id}",
        json={"role": "tenant_member"},
        headers=bearer(admin["access_token"]),
    )
    assert alone.status_code == 409
