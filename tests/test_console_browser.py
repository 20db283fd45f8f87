"""The console, in Chromium against a real `bpo serve`: staff work a task from the inbox
to approval by a second person, a firm's admin rotates an API client's secret and sees it
once, one firm's admin cannot open another firm's pages, the CSP holds (nothing loads
from another host; no violation is reported), and axe-core finds no serious violation."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from playwright.async_api import Page

from bpo.core.db import Database
from bpo.core.tenancy import tenant_session
from bpo.ledger.accounts import apply_chart
from bpo.settings import Settings
from bpo.work.models import StaffProfile
from tests.conftest import build_app
from tests.support.auth import bearer, client_token, make_user
from tests.support.console import CHROMIUM, Browsing, chromium, register_console, serve, sign_in
from tests.support.jobs import spawn_worker
from tests.support.tenants import make_tenant
from tests.support.work import add_service, ask_for

SERIOUS = ("serious", "critical")
STATEMENTS = Path(__file__).parent / "data" / "statements" / "camt"


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    yield from serve(settings)


@pytest.fixture
async def browsing() -> AsyncIterator[Browsing]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed: apt-get install chromium (.ci/run does)")
    async with chromium() as b:
        yield b


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The API in process, for setting the scene (tokens for this test's issuer)."""
    async with AsyncTestClient(app=build_app(settings)) as client:
        yield client


async def staff(db: Database, email: str, firms: list[Any]) -> None:
    user_id = await make_user(db, email, staff_role="staff", assigned=firms)
    async with db.sessionmaker.begin() as session:
        session.add(StaffProfile(user_id=user_id, skills=["accounting"], capacity=10))


async def axe(page: Page) -> list[dict[str, Any]]:
    """axe-core, evaluated in the page (through the DevTools protocol, as the CSP allows
    no inline script): its serious and critical violations."""
    source = files("axe_playwright_python").joinpath("axe.min.js").read_text()
    await page.evaluate(source)
    result = await page.evaluate("async () => JSON.stringify(await axe.run())")
    violations = json.loads(result)["violations"]
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["html"][:120] for n in v["nodes"]]}
        for v in violations
        if v["impact"] in SERIOUS
    ]


async def test_staff_claim_log_time_send_for_review_and_a_second_person_approves(
    server: str, db: Database, browsing: Browsing, api: AsyncTestClient[Litestar],
    settings: Settings,
) -> None:  # fmt: skip
    await register_console(db, server)
    firm = await make_tenant(db, "acme")
    await add_service(db, "month-end", review_required=True)
    await staff(db, "ana@provider.example", [firm])
    await staff(db, "ben@provider.example", [firm])
    client = bearer(await client_token(db, settings, firm))
    asked = await ask_for(api, firm, client, service="month-end")
    task_id = asked["tasks"][0]["id"]

    ana = await browsing.page()
    await sign_in(ana, server, "ana@provider.example")
    assert ana.url == f"{server}/console/inbox"
    assert await ana.locator("#inbox-rows tbody tr").count() == 1
    assert "acme" in (await ana.text_content("#inbox-rows tbody tr") or "")
    assert await axe(ana) == []

    # Keyboard first: Tab reaches the skip link, with a visible focus ring.
    await ana.keyboard.press("Tab")
    focused = await ana.evaluate(
        "() => [document.activeElement.className,"
        " getComputedStyle(document.activeElement).outlineStyle]"
    )
    assert focused == ["skip", "solid"]

    # A new request shows up in the open inbox without a reload (htmx, every 10 s).
    await ana.evaluate("() => { window.stillThisPage = true; }")
    await ask_for(api, firm, client, service="month-end")
    await ana.wait_for_function(
        "() => document.querySelectorAll('#inbox-rows tbody tr').length === 2", timeout=25_000
    )
    assert await ana.evaluate("() => window.stillThisPage") is True

    await ana.click("#claim-next")  # the most urgent of the two: the first one asked
    await ana.wait_for_url(f"{server}/console/firms/acme/tasks/{task_id}?notice=claimed")
    assert (await ana.text_content("#task-status") or "").strip() == "in progress"
    assert await axe(ana) == []

    # A problem is shown next to the field it names, and nothing is logged.
    await ana.fill("#minutes", "-5")
    await ana.click("#log-time")
    await ana.wait_for_selector("#time-minutes-error")
    assert await ana.get_attribute("#minutes", "aria-invalid") == "true"
    assert await ana.locator("#time-log").count() == 0

    await ana.fill("#minutes", "45")
    await ana.fill("#time-note", "bank reconciliations")
    await ana.click("#log-time")
    await ana.wait_for_url("**notice=time")
    assert "bank reconciliations" in (await ana.text_content("#time-log") or "")

    await ana.fill("#result", "Closed November; two items carried over.")
    await ana.click("#complete")
    await ana.wait_for_url("**notice=completed")
    assert (await ana.text_content("#task-status") or "").strip() == "awaiting review"
    assert await ana.locator("#approve").count() == 0  # never one's own review

    ben = await browsing.page()
    await sign_in(ben, server, "ben@provider.example", f"/console/firms/acme/tasks/{task_id}")
    await ben.click("#claim")
    await ben.wait_for_url("**notice=claimed")
    assert (await ben.text_content("#task-status") or "").strip() == "in review"
    await ben.click("#approve")
    await ben.wait_for_url("**notice=approved")
    assert (await ben.text_content("#task-status") or "").strip() == "done"

    # The client sees the result through the API.
    done = await api.get(f"/v1/tenants/acme/work/requests/{asked['id']}", headers=client)
    assert done.json()["status"] == "completed", done.text
    assert browsing.elsewhere == [] and browsing.violations == []


async def test_an_admin_rotates_a_client_secret_and_sees_it_once(
    server: str, db: Database, browsing: Browsing, api: AsyncTestClient[Litestar]
) -> None:
    await register_console(db, server)
    firm = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})

    page = await browsing.page()
    await sign_in(page, server, "ada@acme.example")
    assert page.url == f"{server}/console/firms/acme"
    await page.click("a[href='/console/firms/acme/clients']")
    await page.fill("#new-client-name", "Payroll sync")
    await page.click("#new-client button[type=submit]")
    created = (await page.text_content("#secret") or "").strip()
    client_id = (await page.text_content("table tbody tr td") or "").strip()
    assert created and client_id

    await page.click(f"#rotate-{client_id}")
    await page.wait_for_selector("#secret")
    rotated = (await page.text_content("#secret") or "").strip()
    assert rotated and rotated != created
    assert rotated not in page.url and created not in page.url

    # Shown once: the page read again has no secret, and the new one works at the token
    # endpoint (the old one still does, for the rotation's overlap).
    await page.goto(f"{server}/console/firms/acme/clients")
    assert await page.locator("#secret").count() == 0
    assert rotated not in await page.content()
    token = await api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, rotated),
    )
    assert token.status_code == 200, token.text
    assert await axe(page) == []
    for section in ("users", "webhooks", "billing", "books", "statements", "records",
                    "compliance"):  # fmt: skip
        await page.goto(f"{server}/console/firms/acme/{section}")
        assert await page.locator("h1").count() == 1, section
        assert await axe(page) == [], section
    # Readable at 320 px: nothing wider than the screen (tables stack into rows).
    await page.set_viewport_size({"width": 320, "height": 800})
    for section in ("clients", "users", "webhooks", "billing"):
        await page.goto(f"{server}/console/firms/acme/{section}")
        width = await page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 320, (section, width)
    assert browsing.elsewhere == [] and browsing.violations == []


async def test_a_statement_upload_shows_the_import_progress_and_its_exceptions(
    server: str, db: Database, browsing: Browsing, settings: Settings
) -> None:
    await register_console(db, server)
    firm = await make_tenant(db, "acme")
    async with tenant_session(db.engine, firm, "worker") as session:
        await apply_chart(session, firm, "test", "small-business")  # the bank's ledger accounts
    await make_user(db, "ada@acme.example", tenants={firm: "tenant_admin"})
    worker = spawn_worker(settings)
    try:
        page = await browsing.page()
        await sign_in(page, server, "ada@acme.example", "/console/firms/acme/statements")
        # A statement whose lines do not add up is refused, and the page says why.
        await page.set_input_files("#upload-file", str(STATEMENTS / "camt053.v2.minimal.xml"))
        async with page.expect_response("**/console/firms/acme/statements") as refused:
            await page.click("#upload button[type=submit]")
        assert (await refused.value).status == 422
        assert "closing" in (await page.text_content("#upload-problem") or "")

        multi = STATEMENTS / "camt053.v2.multi.statement.xml"
        await page.set_input_files("#upload-file", str(multi))
        await page.click("#upload button[type=submit]")
        await page.wait_for_url("**/statements/imports/**")
        assert await page.locator("progress").count() == 1
        assert await axe(page) == []
        # htmx refreshes the panel until the worker has read the file: no reload here.
        await page.wait_for_function(
            "() => { const p = document.querySelector('progress');"
            " return p && p.max > 0 && p.value === p.max; }",
            timeout=60_000,
        )
        await page.wait_for_selector("text=Exceptions: lines not matched yet", timeout=20_000)
        assert "(done)" in (await page.text_content("#import") or "")
    finally:
        worker.terminate()
        worker.wait(20)
    assert browsing.elsewhere == [] and browsing.violations == []


async def test_a_firm_admin_cannot_open_another_firms_pages(
    server: str, db: Database, browsing: Browsing
) -> None:
    await register_console(db, server)
    acme = await make_tenant(db, "acme")
    await make_tenant(db, "globex")
    await make_user(db, "ada@acme.example", tenants={acme: "tenant_admin"})

    page = await browsing.page()
    await sign_in(page, server, "ada@acme.example")
    for path in ("", "/users", "/clients", "/webhooks", "/billing", "/books", "/records",
                 "/compliance", "/statements", f"/tasks/{uuid.uuid4()}"):  # fmt: skip
        answer = await page.goto(f"{server}/console/firms/globex{path}")
        assert answer is not None and answer.status == 404, path
        assert "globex" not in (await page.text_content("main") or "").replace("'globex'", "")
    # A form posted to the other firm is refused the same way, and makes nothing.
    answer = await page.goto(f"{server}/console/firms/acme/clients")
    assert answer is not None and answer.status == 200
    await page.evaluate(
        "() => { const f = document.getElementById('new-client');"
        " f.action = '/console/firms/globex/clients'; }"
    )
    await page.fill("#new-client-name", "Sneaky")
    async with page.expect_response("**/console/firms/globex/clients") as answered:
        await page.click("#new-client button[type=submit]")
    assert (await answered.value).status == 404
    # The inbox is staff's: a firm's admin gets the same not-found.
    answer = await page.goto(f"{server}/console/inbox")
    assert answer is not None and answer.status == 404


async def test_every_page_keeps_to_its_own_origin_under_the_csp(
    server: str, db: Database, browsing: Browsing
) -> None:
    """Every console response carries the strict CSP; pages load only this origin's files
    (any other host is refused and listed); a stale form without the CSRF token is
    refused; signing out revokes the session on the server."""
    await register_console(db, server)
    acme = await make_tenant(db, "acme")
    await make_user(db, "ada@acme.example", tenants={acme: "tenant_admin"})
    page = await browsing.page()
    loaded: list[str] = []
    page.on("request", lambda r: loaded.append(r.url))
    await page.goto(f"{server}/console")
    await page.wait_for_url(f"{server}/oauth/authorize?**")
    assert await axe(page) == []  # the sign-in page, on the same templates
    await sign_in(page, server, "ada@acme.example")
    answer = await page.goto(f"{server}/console/firms/acme/users")
    assert answer is not None
    headers = await answer.all_headers()
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert headers["cache-control"] == "no-store"
    cookie = next(c for c in await page.context.cookies() if c["name"] == "bpo_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert all(url.startswith(server) for url in loaded), loaded
    assert any("/static/vendor/htmx-2.0.11/htmx.min.js" in url for url in loaded)
    # An inline script injected into the page does not run.
    ran = await page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent ="
        " 'window.injected = 1'; document.body.appendChild(s); return window.injected; }"
    )
    assert ran is None
    assert any("inline script" in v for v in browsing.violations)  # reported, and blocked
    browsing.violations.clear()

    # A form posted without the session's CSRF token changes nothing.
    status = await page.evaluate(
        """async () => (await fetch('/console/firms/acme/users', {method: 'POST',
           headers: {'content-type': 'application/x-www-form-urlencoded'},
           body: 'email=eve%40evil.example&role=tenant_admin'})).status"""
    )
    assert status == 403
    assert (
        "eve@evil.example"
        not in await (await page.goto(f"{server}/console/firms/acme/users")).text()
    )  # type: ignore[union-attr]

    await page.click("header form button[type=submit]")
    await page.wait_for_url(f"{server}/console/signed-out")
    assert not [c for c in await page.context.cookies() if c["name"] == "bpo_console"]
    assert browsing.elsewhere == [] and browsing.violations == []
