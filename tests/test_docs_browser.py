"""The API docs work with no internet: Debian's Chromium loads `/schema` from a real
`bpo serve` while every request to a host other than loopback is aborted and recorded; the
page must list the API's operations, and nothing may have tried to leave the machine. The
docs pages carry a CSP that allows this origin's scripts only, and the assets are bpo's own.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from playwright.async_api import Browser, ConsoleMessage, Page, Route, async_playwright

from bpo.app import create_app
from bpo.core.docs import VENDOR_DIR
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.processes import spawn_serve

CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Summaries of a few operations from different parts of the API, as the page shows them.
SUMMARIES = (
    "List tenants",
    "The firm's requests, newest first (cursor pagination)",
    "Create an API client (the secret is shown once)",
    "Token endpoint (RFC 6749 §3.2)",
    "The database and the broker answer",
)
Client = AsyncTestClient[Litestar]


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    process, base = spawn_serve(
        settings.database_url,
        settings.broker_url,
        BPO_SECRET_KEY=TEST_SECRET_KEY,
        BPO_BROKER_NAMESPACE=f"bpo-test-{uuid.uuid4().hex[:8]}",
        BPO_LOG_LEVEL="WARNING",  # nobody reads the log pipe until the end
    )
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium, as in test_login_browser.py (Playwright's browsers are not used)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    return str(CHROMIUM)


@pytest.fixture
async def page(chromium: str) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser: Browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


async def test_docs_page_lists_the_operations_without_the_internet(server: str, page: Page) -> None:
    left: list[str] = []  # every attempt to reach another host

    async def loopback_only(route: Route) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("data", "blob") or parts.hostname in LOOPBACK:
            await route.continue_()
        else:
            left.append(route.request.url)
            await route.abort()

    csp_errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            csp_errors.append(message.text)

    await page.route("**/*", loopback_only)
    page.on("console", on_console)
    response = await page.goto(f"{server}/schema")
    assert response is not None
    assert response.status == 200
    assert "script-src 'self';" in response.headers["content-security-policy"]
    await page.wait_for_selector(".opblock-summary-description", timeout=30_000)
    await page.wait_for_load_state("networkidle")
    shown = await page.inner_text("#swagger-ui")
    for summary in SUMMARIES:
        assert summary in shown
    assert await page.locator(".opblock").count() > 60  # every operation, not a few
    assert left == []
    assert csp_errors == []


async def test_docs_pages_send_a_csp_without_third_party_script(client: Client) -> None:
    for path in ("/schema", "/schema/swagger", "/schema/oauth2-redirect.html"):
        response = await client.get(path)
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self';" in csp
        assert "unsafe" not in csp.split("script-src", 1)[1].split(";")[0]
        assert response.headers["x-content-type-options"] == "nosniff"
        # Every reference is to this origin: no scheme, no host, no inline script.
        assert not re.search(r"(src|href)=\"(?!/schema/)", response.text)
        assert "://" not in response.text
        assert re.search(r"<script>", response.text) is None


async def test_pinned_assets_are_served_with_a_long_cache(client: Client) -> None:
    response = await client.get(f"/schema/assets/{VENDOR_DIR}/swagger-ui-bundle.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"
    start = await client.get("/schema/assets/docs.js")
    assert start.status_code == 200
    assert "SwaggerUIBundle" in start.text
    # Only the files the page uses, not the package's whole folder.
    assert (await client.get(f"/schema/assets/{VENDOR_DIR}/index.html")).status_code == 404
    assert (await client.get(f"/schema/assets/{VENDOR_DIR}/..%2F__init__.py")).status_code == 404


async def test_no_docs_routes_when_docs_are_disabled(settings: Settings, db: object) -> None:
    app = create_app(dataclasses.replace(settings, docs_enabled=False))
    assert not [r for r in app.routes if r.path.startswith("/schema")]
    async with AsyncTestClient(app=app) as client:
        for path in ("/schema", "/schema/openapi.json", "/schema/assets/docs.js"):
            assert (await client.get(path)).status_code == 404
