"""The console in a real browser: a `bpo serve` on a free port, Debian's Chromium with
every request to a host other than loopback refused (and counted), and signing in
through the console's own OAuth flow."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, Page, Route, async_playwright

from bpo.core.db import Database
from bpo.identity.models import OAuthApp
from bpo.identity.scopes import USER_SCOPES
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.auth import PASSWORD
from tests.support.processes import spawn_serve

CHROMIUM = Path("/usr/bin/chromium")
APP_ID = "demo-console"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-default-apps", "--disable-sync",
         "--no-first-run", "--disable-extensions", "--metrics-recording-only"]  # fmt: skip


@dataclass
class Browsing:
    """Pages of one browser; `elsewhere` lists every request that tried to leave loopback,
    `violations` every CSP report the console printed."""

    browser: Browser
    elsewhere: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    async def page(self) -> Page:
        context = await self.browser.new_context()
        page = await context.new_page()
        await page.route("**/*", self._loopback_only)
        page.on("console", self._console)
        return page

    async def _loopback_only(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            await route.continue_()
        else:
            self.elsewhere.append(route.request.url)
            await route.abort()

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.violations.append(message.text)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browsing]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        try:
            yield Browsing(browser)
        finally:
            await browser.close()


def serve(settings: Settings) -> Iterator[str]:
    """A real `bpo serve`; yields its base URL, shows its log when the test failed."""
    process, base = spawn_serve(
        settings.database_url,
        settings.broker_url,
        BPO_SECRET_KEY=TEST_SECRET_KEY,
        BPO_BROKER_NAMESPACE=settings.broker_namespace,
    )
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, log = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, log = process.communicate()
        sys.stderr.write(log)


async def register_console(db: Database, base: str) -> None:
    """The console's sign-in app, with this server's callback (as `bpo up` seeds it)."""
    async with db.sessionmaker.begin() as session:
        session.add(
            OAuthApp(
                client_id=APP_ID,
                name="Console",
                redirect_uris=[f"{base}/console/callback"],
                secret_digest=None,
                scopes=sorted(USER_SCOPES),
            )
        )


async def sign_in(page: Page, base: str, email: str, path: str = "/console") -> None:
    """Open a console page, sign in on bpo's sign-in page, land back on it."""
    await page.goto(f"{base}{path}")
    await page.wait_for_url(f"{base}/oauth/authorize?**")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("#login button[type=submit]")
    await page.wait_for_url(f"{base}/console**")
