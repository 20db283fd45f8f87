"""The console over HTTP (the browser tests drive Chromium): signing in through the OAuth
code flow with PKCE, the sealed session cookie, CSRF, refresh, sign-out revoking the
refresh token, another firm's pages answering 404, the inbox's filters on the API, and
the vendored htmx being the npm release it claims to be."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.billing.service import Usage, record_usage_batch, roll_up
from bpo.console.session import SESSION_COOKIE, Sealer, console_callback
from bpo.core.db import Database
from bpo.core.tenancy import tenant_session
from bpo.core.web import HTMX, STATIC
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY, build_app
from tests.support.auth import PASSWORD, admin_of, bearer, client_token, make_user
from tests.support.bulk_work import seed_open_tasks
from tests.support.console import register_console
from tests.support.jobs import running_worker, wait_for
from tests.support.tenants import make_tenant
from tests.support.work import add_service, staff_member

Client = AsyncTestClient[Litestar]
HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[Client]:
    await register_console(db, settings.issuer)
    async with AsyncTestClient(app=build_app(settings)) as test_client:
        yield test_client


def _hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def sign_in(client: Client, email: str, start: str = "/console") -> str:
    """Follow the console's sign-in as a browser would; returns where it lands."""
    to_login = await client.get(start, follow_redirects=False)
    assert to_login.status_code == 303, to_login.text
    to_authorize = await client.get(to_login.headers["location"], follow_redirects=False)
    assert to_authorize.status_code == 303
    page = await client.get(to_authorize.headers["location"])
    assert page.status_code == 200, page.text
    form = _hidden(page.text) | {"email": email, "password": PASSWORD}
    answer = await client.post("/oauth/authorize", data=form, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    back = await client.get(_local(answer.headers["location"]), follow_redirects=False)
    assert back.status_code == 303, back.text
    return str(back.headers["location"])


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def test_signing_in_is_the_code_flow_with_pkce_into_a_sealed_cookie(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})

    to_login = await client.get("/console/firms/acme/users", follow_redirects=False)
    assert to_login.headers["location"] == "/console/login?next=/console/firms/acme/users"
    authorize = await client.get(to_login.headers["location"], follow_redirects=False)
    query = parse_qs(urlsplit(authorize.headers["location"]).query)
    assert query["client_id"] == ["demo-console"]
    assert query["redirect_uri"] == [console_callback(settings)]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43

    landed = await sign_in(client, "ada@acme.example", "/console/firms/acme/users")
    assert landed == "/console/firms/acme/users"
    raw = client.cookies.get(SESSION_COOKIE)
    assert raw and "ey" not in raw[:4]  # not a readable JWT: sealed
    session = Sealer(TEST_SECRET_KEY).open_session(raw)
    assert session is not None and session.tenant == "acme" and session.role == "tenant_admin"
    page = await client.get("/console/firms/acme/users")
    assert page.status_code == 200 and "ada@acme.example" in page.text

    # An altered cookie is no session at all: back to signing in.
    client.cookies.set(SESSION_COOKIE, raw[:-4] + "AAAA", path="/console")
    again = await client.get("/console/firms/acme/users", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/console/login")


async def test_the_callback_refuses_a_foreign_state_or_issuer(client: Client, db: Database) -> None:
    await client.get("/console/login", follow_redirects=False)  # the login cookie is set
    wrong_state = await client.get("/console/callback?code=x&state=forged&iss=x")
    assert wrong_state.status_code == 400 and "start again" in wrong_state.text
    refused = await client.get("/console/callback?error=access_denied")
    assert refused.status_code == 400 and "access_denied" in refused.text
    assert client.cookies.get(SESSION_COOKIE) is None
    bounced = await client.get("/console/login?next=https://evil.example/", follow_redirects=False)
    login_cookie = Sealer(TEST_SECRET_KEY).open_login(client.cookies.get("bpo_console_login"))
    assert bounced.status_code == 303 and login_cookie is not None
    assert login_cookie.next == "/console"  # never an open redirect


async def test_forms_need_the_csrf_token_and_sign_out_revokes_the_refresh_token(
    client: Client, db: Database
) -> None:
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    await sign_in(client, "ada@acme.example")
    page = await client.get("/console/firms/acme/users")
    token = _csrf(page.text)

    forged = await client.post("/console/firms/acme/users", data={"email": "eve@evil.example"})
    assert forged.status_code == 403 and "stale" in forged.text
    wrong = await client.post(
        "/console/firms/acme/users", data={"email": "eve@evil.example", "csrf_token": "x" * 43}
    )
    assert wrong.status_code == 403
    invites = await client.get("/console/firms/acme/users")
    assert "eve@evil.example" not in invites.text

    # A problem comes back next to the field it names, with the API's status.
    bad = await client.post(
        "/console/firms/acme/users", data={"email": "not-an-email", "csrf_token": token}
    )
    assert bad.status_code in (400, 422), bad.text
    assert 'aria-invalid="true"' in bad.text and 'id="email-error"' in bad.text

    session = Sealer(TEST_SECRET_KEY).open_session(client.cookies.get(SESSION_COOKIE))
    assert session is not None and session.refresh_token
    out = await client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/console/signed-out"
    reused = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": session.refresh_token,
              "client_id": "demo-console"},
    )  # fmt: skip
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    me = await client.get("/v1/me", headers=bearer(session.access_token))
    assert me.status_code == 401  # the access token is revoked too


async def test_an_expired_access_token_is_refreshed_and_the_cookie_resealed(
    client: Client, db: Database
) -> None:
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    await sign_in(client, "ada@acme.example")
    sealer = Sealer(TEST_SECRET_KEY)
    session = sealer.open_session(client.cookies.get(SESSION_COOKIE))
    assert session is not None
    first_access, first_refresh = session.access_token, session.refresh_token
    session.expires_at = int(time.time()) - 1  # as if ten minutes had passed
    client.cookies.set(SESSION_COOKIE, sealer.seal(session), path="/console")

    page = await client.get("/console/firms/acme/users")
    assert page.status_code == 200
    renewed = sealer.open_session(page.cookies.get(SESSION_COOKIE))
    assert renewed is not None and renewed.access_token != first_access
    assert renewed.refresh_token != first_refresh  # rotated


async def test_concurrent_pages_of_one_session_refresh_it_once(
    client: Client, db: Database
) -> None:
    """A poll, a click and a second tab carry the same cookie: if each refreshed, the second
    use of the rotated refresh token would look like a replay and end the session."""
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    await sign_in(client, "ada@acme.example")
    sealer = Sealer(TEST_SECRET_KEY)
    session = sealer.open_session(client.cookies.get(SESSION_COOKIE))
    assert session is not None
    session.expires_at = int(time.time()) - 1
    client.cookies.set(SESSION_COOKIE, sealer.seal(session), path="/console")

    pages = await asyncio.gather(
        *(client.get("/console/firms/acme/users", follow_redirects=False) for _ in range(6))
    )
    assert [p.status_code for p in pages] == [200] * 6
    renewed = {sealer.open_session(p.cookies.get(SESSION_COOKIE)).refresh_token for p in pages}  # type: ignore[union-attr]
    assert len(renewed) == 1 and session.refresh_token not in renewed  # rotated once
    later = await client.get("/console/firms/acme/users", follow_redirects=False)
    assert later.status_code == 200  # the family was not revoked as a replay


async def test_a_session_revoked_elsewhere_ends_at_the_next_page(
    client: Client, db: Database
) -> None:
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    await sign_in(client, "ada@acme.example")
    session = Sealer(TEST_SECRET_KEY).open_session(client.cookies.get(SESSION_COOKIE))
    assert session is not None and session.refresh_token
    for token in (session.refresh_token, session.access_token):  # as an admin tool would
        revoked = await client.post(
            "/oauth/revoke", data={"token": token, "client_id": "demo-console"}
        )
        assert revoked.status_code == 200

    page = await client.get("/console/firms/acme/users?x=1", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=/console/firms/acme/users%3Fx%3D1"
    assert (
        'bpo_console=""' in page.headers["set-cookie"] or "Max-Age=0" in page.headers["set-cookie"]
    )


async def test_another_firms_pages_are_not_found(client: Client, db: Database) -> None:
    acme = await make_tenant(db, "acme")
    globex = await make_tenant(db, "globex")
    await make_user(db, "ada@acme.example", tenants={acme: "tenant_admin"})
    await sign_in(client, "ada@acme.example")
    for path in ("", "/users", "/clients", "/webhooks", "/billing", "/books", "/statements",
                 "/records", "/compliance"):  # fmt: skip
        own = await client.get(f"/console/firms/acme{path}")
        other = await client.get(f"/console/firms/globex{path}")
        assert own.status_code == 200, (path, own.text[:300])
        assert other.status_code == 404, path
        assert "text/html" in other.headers["content-type"]
    # The database itself keeps the firms apart: acme's role sees no row of globex.
    async with tenant_session(db.engine, acme) as session:
        with pytest.raises(Exception, match="permission denied"):
            await session.execute(text(f'SELECT 1 FROM "{globex.schema}".tasks'))


async def test_the_inbox_filters_by_firm_service_and_sla(
    client: Client, db: Database, settings: Settings
) -> None:
    acme, globex = await make_tenant(db, "acme"), await make_tenant(db, "globex")
    await add_service(db, "bookkeeping")
    await add_service(db, "payroll")
    async with tenant_session(db.engine, acme) as session:
        await seed_open_tasks(session, acme.tenant_id, 3, service_key="bookkeeping")
    async with tenant_session(db.engine, globex) as session:
        await seed_open_tasks(session, globex.tenant_id, 2, service_key="payroll")
        soon = datetime.now(UTC) + timedelta(minutes=30)
        await session.execute(
            text("UPDATE platform.work_queue SET response_due_at = :d"
                 " WHERE task_id = (SELECT task_id FROM platform.work_queue"
                 " WHERE tenant_id = :t ORDER BY task_id LIMIT 1)"),
            {"d": soon, "t": globex.tenant_id},
        )  # fmt: skip
    _, staff = await staff_member(db, settings, [acme, globex])

    async def tenants_of(**query: str) -> list[str]:
        reply = await client.get("/v1/staff/inbox", params=query, headers=staff)
        assert reply.status_code == 200, reply.text
        return sorted(i["tenant"] for i in reply.json()["items"])

    assert await tenants_of() == ["acme"] * 3 + ["globex"] * 2
    assert await tenants_of(tenant="globex") == ["globex"] * 2
    assert await tenants_of(service="bookkeeping") == ["acme"] * 3
    assert await tenants_of(sla="due_soon") == ["globex"]
    assert await tenants_of(sla="breached") == []
    assert len(await tenants_of(sla="on_track")) == 4
    refused = await client.get("/v1/staff/inbox", params={"sla": "late"}, headers=staff)
    assert refused.status_code in (400, 422) and "sla" in refused.text


async def test_console_calls_are_not_billed_as_the_firms_api_calls(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    await sign_in(client, "ada@acme.example")
    for _ in range(3):
        assert (await client.get("/console/firms/acme/users")).status_code == 200
    app_client = bearer(await client_token(db, settings, firm))
    listed = await client.get("/v1/tenants/acme/work/requests", headers=app_client)
    assert listed.status_code == 200, listed.text

    # The counter writes what it counted each second: wait for the client's call to be
    # written, then one more flush; the console's calls would be written by then.
    async def written() -> int:
        async with db.autocommit() as conn:
            total = await conn.scalar(
                text("SELECT coalesce(sum(quantity), 0) FROM platform.usage_events"
                     " WHERE tenant_id = :t AND meter = 'api_calls'"),
                {"t": firm.tenant_id},
            )  # fmt: skip
        return int(total)

    async def recorded() -> bool:
        return await written() >= 1

    await wait_for(recorded, timeout=10)
    await asyncio.sleep(2.5)
    counter = client.app.state.api_calls
    counted = await written() + sum(counter._counts.values())
    assert counted == 1  # the client's call, none of the console's


async def test_daily_usage_is_one_read_per_meter_with_empty_days_as_zero(
    client: Client, db: Database, settings: Settings
) -> None:
    acme, globex = await make_tenant(db, "acme"), await make_tenant(db, "globex")
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    events = [
        Usage(acme.tenant_id, "api_calls", Decimal(n), f"k{n}", today - timedelta(days=back))
        for back, n in ((0, 5), (0, 7), (2, 3), (40, 100))
    ]
    events.append(Usage(globex.tenant_id, "api_calls", Decimal(9), "g", today))
    async with db.engine.begin() as conn:
        await record_usage_batch(conn, events)
    async with db.engine.begin() as conn:  # half of them folded into hourly rollups
        await roll_up(conn, limit=2)
    admin = await admin_of(db, settings, acme)

    reply = await client.get("/v1/tenants/acme/billing/usage/daily",
                             params={"meter": "api_calls", "days": 7}, headers=admin)  # fmt: skip
    assert reply.status_code == 200, reply.text
    days = reply.json()["days"]
    assert len(days) == 7 and days[-1]["day"] == today.date().isoformat()
    assert [Decimal(d["quantity"]) for d in days] == [0, 0, 0, 0, 3, 0, 12]
    assert days[-1]["events"] == 2
    unknown = await client.get("/v1/tenants/acme/billing/usage/daily",
                               params={"meter": "nope"}, headers=admin)  # fmt: skip
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["parameter"] == "meter"
    other = await client.get("/v1/tenants/globex/billing/usage/daily",
                             params={"meter": "api_calls"}, headers=admin)  # fmt: skip
    assert other.status_code == 404


def test_the_vendored_htmx_is_the_npm_release() -> None:
    vendored = STATIC / HTMX
    assert hashlib.sha256(vendored.read_bytes()).hexdigest() == HTMX_SHA256
    assert (vendored.parent / "VERSION").read_text().split() == ["htmx.org", "2.0.11"]
    assert "Zero-Clause BSD" in (vendored.parent / "LICENSE").read_text()


async def test_static_files_are_versioned_and_cached(client: Client) -> None:
    page = await client.get("/console/signed-out")
    assert page.status_code == 200
    css = re.search(r'href="(/static/bpo\.css\?v=[0-9a-f]{12})"', page.text)
    assert css, page.text[:500]
    asset = await client.get(css.group(1))
    assert asset.status_code == 200 and "max-age=31536000" in asset.headers["cache-control"]
    assert "text/css" in asset.headers["content-type"]
    # Pages and static files go out compressed when asked; the API's JSON does not.
    zipped = await client.get(css.group(1), headers={"Accept-Encoding": "gzip"})
    assert zipped.headers.get("content-encoding") == "gzip"
    assert zipped.text == asset.text
    api = await client.get("/.well-known/oauth-authorization-server",
                           headers={"Accept-Encoding": "gzip"})  # fmt: skip
    assert "content-encoding" not in api.headers


async def test_an_admin_adds_a_webhook_endpoint_and_replays_a_delivery(
    settings: Settings, db: Database
) -> None:
    await register_console(db, settings.issuer)
    loopback = dataclasses.replace(settings, webhook_allowlist=("127.0.0.1",))
    async with running_worker(loopback), AsyncTestClient(app=build_app(loopback)) as client:
        await _add_endpoint_and_replay(client, db)


async def _add_endpoint_and_replay(client: Client, db: Database) -> None:
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    await sign_in(client, "ada@acme.example")
    token = _csrf((await client.get("/console/firms/acme/webhooks")).text)

    bad = await client.post(
        "/console/firms/acme/webhooks", data={"url": "ftp://x", "csrf_token": token}
    )
    assert bad.status_code in (400, 422) and 'id="new-endpoint-problem"' in bad.text
    added = await client.post(
        "/console/firms/acme/webhooks",
        data={"url": "http://127.0.0.1:9/hook", "event_types": "*", "csrf_token": token},
    )
    assert added.status_code == 200, added.text
    secret = re.search(r'<p class="secret" id="secret">([^<]+)</p>', added.text)
    assert secret and secret.group(1).startswith("whsec_")

    session = Sealer(TEST_SECRET_KEY).open_session(client.cookies.get(SESSION_COOKIE))
    assert session is not None
    as_admin = bearer(session.access_token)
    listed = await client.get("/v1/tenants/acme/webhooks/endpoints", headers=as_admin)
    endpoint = listed.json()["items"]
    act = f"/console/firms/acme/webhooks/endpoints/{endpoint[0]['id']}"

    async def enabled() -> bool:
        shown = await client.get(f"/v1/tenants/acme/webhooks/endpoints/{endpoint[0]['id']}",
                                 headers=as_admin)  # fmt: skip
        return bool(shown.json()["enabled"])

    for change, after in (("disable", False), ("enable", True)):
        changed = await client.post(f"{act}/{change}", data={"csrf_token": token},
                                    follow_redirects=False)  # fmt: skip
        assert changed.status_code == 303, changed.text
        assert await enabled() is after
    page = await client.get("/console/firms/acme/webhooks")
    assert f'action="{act}/disable"' in page.text and f'action="{act}/enable"' not in page.text
    nonsense = await client.post(f"{act}/explode", data={"csrf_token": token})
    assert nonsense.status_code == 404
    ping = await client.post(f"{act}/ping", data={"csrf_token": token}, follow_redirects=False)
    assert ping.status_code == 303 and ping.headers["location"].endswith("notice=pinged")

    async def delivered() -> bool:  # the worker fans the event out to the endpoint
        listed = await client.get("/v1/tenants/acme/webhooks/deliveries", headers=as_admin)
        return bool(listed.json()["items"])

    await wait_for(delivered)
    page = await client.get("/console/firms/acme/webhooks")
    delivery = re.search(
        r'action="(/console/firms/acme/webhooks/deliveries/[^"]+/replay)"', page.text
    )
    assert delivery, page.text[-2000:]
    replayed = await client.post(delivery.group(1), data={"csrf_token": token},
                                 follow_redirects=False)  # fmt: skip
    assert replayed.status_code == 303, replayed.text
    assert replayed.headers["location"].endswith("notice=replayed")
    removed = await client.post(
        f"/console/firms/acme/webhooks/endpoints/{endpoint[0]['id']}/delete",
        data={"csrf_token": token}, follow_redirects=False,
    )  # fmt: skip
    assert removed.status_code == 303
    left = await client.get("/v1/tenants/acme/webhooks/endpoints", headers=as_admin)
    assert left.json() == {"items": [], "next_cursor": None}


async def test_an_admin_changes_roles_deactivates_and_revokes_an_invite(
    client: Client, db: Database
) -> None:
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    bob = await make_user(db, "bob@acme.example", tenants={firm: "tenant_member"})
    await sign_in(client, "ada@acme.example")
    page = await client.get("/console/firms/acme/users")
    token = _csrf(page.text)
    assert f'action="/console/firms/acme/users/{bob}/make-admin"' in page.text

    async def post(path: str) -> int:
        answer = await client.post(path, data={"csrf_token": token}, follow_redirects=False)
        return int(answer.status_code)

    assert await post(f"/console/firms/acme/users/{bob}/make-admin") == 303
    assert await post(f"/console/firms/acme/users/{bob}/deactivate") == 303
    page = await client.get("/console/firms/acme/users")
    assert f'action="/console/firms/acme/users/{bob}/reactivate"' in page.text
    assert f'action="/console/firms/acme/users/{bob}/make-member"' in page.text
    assert await post(f"/console/firms/acme/users/{bob}/promote") == 404

    invited = await client.post("/console/firms/acme/users",
                                data={"email": "cy@acme.example", "csrf_token": token},
                                follow_redirects=False)  # fmt: skip
    assert invited.status_code == 303
    page = await client.get("/console/firms/acme/users")
    revoke = re.search(r'action="(/console/firms/acme/users/invites/[^"]+/revoke)"', page.text)
    assert revoke
    assert await post(revoke.group(1)) == 303
    page = await client.get("/console/firms/acme/users")
    assert "/revoke" not in page.text  # revoked: no longer pending


async def test_long_lists_page_with_the_apis_cursors(client: Client, db: Database) -> None:
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    for n in range(59):  # 60 members with Ada: a page of 50, then 10
        await make_user(db, f"m{n:02d}@acme.example", tenants={firm: "tenant_member"})
    await sign_in(client, "ada@acme.example")
    first = await client.get("/console/firms/acme/users")
    shown = set(re.findall(r"\bm\d\d@acme\.example", first.text))
    assert len(shown) == 49  # and Ada: 50 rows
    link = re.search(r'<nav class="pager"[^>]*><a href="([^"]+)"', first.text)
    assert link and "cursor=" in link.group(1), "no link to the next page"
    second = await client.get(link.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    rest = set(re.findall(r"\bm\d\d@acme\.example", second.text))
    assert len(rest) == 10 and not rest & shown
    assert '<nav class="pager"' not in second.text  # the last page
    forged = await client.get("/console/firms/acme/users?cursor=not-ours")
    assert forged.status_code == 400 and "cursor" in forged.text


async def test_upcoming_deadlines_page_apart_from_the_screening_hits(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    as_admin = await admin_of(db, settings, firm)
    for n in range(12):  # 12 monthly duties: more than one page of 25 in the next 90 days
        body = {"regulator": f"R{n:02d}", "jurisdiction": "US", "form": "M",
                "anchor": "2026-01-01", "rrule": "FREQ=MONTHLY;BYMONTHDAY=-1"}  # fmt: skip
        made = await client.post("/v1/tenants/acme/compliance/obligations", json=body,
                                 headers=as_admin)  # fmt: skip
        assert made.status_code == 201, made.text
    await sign_in(client, "ada@acme.example")
    rows = re.compile(r'<td data-label="Regulator">(R\d\d)</td>')
    first = await client.get("/console/firms/acme/compliance")
    assert first.status_code == 200 and len(rows.findall(first.text)) == 25
    link = re.search(r'<a href="([^"]*deadlines_cursor=[^"]+)"', first.text)
    assert link, "no link to the next page of deadlines"
    second = await client.get(link.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    today = datetime.now(UTC).date()
    every = await client.get("/v1/tenants/acme/compliance/deadlines", headers=as_admin, params={
        "from": today.isoformat(), "to": (today + timedelta(days=90)).isoformat(),
        "limit": 200})  # fmt: skip
    expected = [d["regulator"] for d in every.json()["items"]]
    assert len(expected) > 25
    assert rows.findall(first.text) + rows.findall(second.text) == expected  # each once, in order


async def test_an_admin_changes_the_plan_and_sees_a_refusal_next_to_it(
    client: Client, db: Database
) -> None:
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    await sign_in(client, "ada@acme.example")
    page = await client.get("/console/firms/acme/billing")
    assert page.status_code == 200 and "none yet" in page.text
    token = _csrf(page.text)

    async def choose(plan: str) -> Any:
        return await client.post("/console/firms/acme/billing/plan",
                                 data={"plan": plan, "csrf_token": token},
                                 follow_redirects=False)  # fmt: skip

    assert (await choose("starter")).status_code == 303
    switched = await choose("growth")
    assert switched.status_code == 303
    assert switched.headers["location"].endswith("notice=plan-changed")
    page = await client.get(switched.headers["location"])
    assert re.search(r'<option value="growth" selected>', page.text), "current plan not chosen"
    session = Sealer(TEST_SECRET_KEY).open_session(client.cookies.get(SESSION_COOKIE))
    assert session is not None
    sub = await client.get("/v1/tenants/acme/billing/subscription",
                           headers=bearer(session.access_token))  # fmt: skip
    assert sub.json()["plan"]["key"] == "growth"
    refused = await choose("no-such-plan")
    assert refused.status_code == 422
    assert 'id="plan-error"' in refused.text and "not an active plan" in refused.text
    assert 'aria-describedby="plan-error"' in refused.text
