"""A real browser signs in: Debian's Chromium, driven by Playwright, fills bpo's
server-rendered login page of a real `bpo serve` and follows the redirect to the app's
callback, which carries a code, the same state and the issuer (RFC 9207). The code is then
exchanged with its PKCE verifier and the token names the person who signed in. A wrong
password keeps the browser on the page with the error (401), and the page is sent with
no-store and a CSP that forbids framing.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from playwright.async_api import Browser, Page, async_playwright

from bpo.core.db import Database
from bpo.identity.models import OAuthApp
from bpo.settings import Settings
from tests.support.auth import PASSWORD, make_user
from tests.support.console import serve
from tests.support.tenants import make_tenant

CHROMIUM = Path("/usr/bin/chromium")
CLIENT_ID = "browser-app"
EMAIL = "ana@firm.example"


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    yield from serve(settings)  # a real `bpo serve`, with this session's sign-in counters


class _Callback(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"signed in" if self.path.startswith("/callback") else b"not found"
        self.send_response(200 if body == b"signed in" else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def redirect_uri() -> Iterator[str]:
    """The sign-in app's callback: a tiny HTTP server on a free port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/callback"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium; the one reason to skip (Playwright's own browsers are not used)."""
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


async def register(db: Database, redirect_uri: str) -> None:
    """A public sign-in app, a firm and its admin."""
    async with db.sessionmaker.begin() as session:
        session.add(
            OAuthApp(
                client_id=CLIENT_ID,
                name="Browser app",
                redirect_uris=[redirect_uri],
                secret_digest=None,
                scopes=["work:read", "admin"],
            )
        )
    tenant = await make_tenant(db, "browser-firm")
    await make_user(db, EMAIL, tenants={tenant: "tenant_admin"})


def authorize_url(base: str, redirect_uri: str, state: str, verifier: str) -> str:
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": redirect_uri,
        "scope": "work:read",
        "state": state,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    return f"{base}/oauth/authorize?{urlencode(query)}"


async def test_chromium_signs_in_and_the_code_is_real(
    page: Page, server: str, db: Database, redirect_uri: str
) -> None:
    await register(db, redirect_uri)
    state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    async with httpx.AsyncClient(base_url=server) as http:
        issuer = (await http.get("/.well-known/oauth-authorization-server")).json()["issuer"]

        login = await page.goto(authorize_url(server, redirect_uri, state, verifier))
        assert login is not None
        assert login.status == 200
        await page.fill("#email", EMAIL)
        await page.fill("#password", PASSWORD)
        await page.click("#login button[type=submit]")
        await page.wait_for_url(f"{redirect_uri}?**")
        assert await page.text_content("body") == "signed in"

        returned = parse_qs(urlsplit(page.url).query)
        assert returned["code"][0]
        assert returned["state"] == [state]
        assert returned["iss"] == [issuer] == [server.rstrip("/")]

        token = await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": returned["code"][0],
                "redirect_uri": redirect_uri,
                "client_id": CLIENT_ID,
                "code_verifier": verifier,
            },
        )
        assert token.status_code == 200, token.text
        tokens = token.json()
        assert tokens["access_token"]
        assert tokens["refresh_token"]
        me = await http.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == EMAIL


async def test_wrong_password_shows_the_error_on_the_page(
    page: Page, server: str, db: Database, redirect_uri: str
) -> None:
    await register(db, redirect_uri)
    url = authorize_url(server, redirect_uri, "s" * 16, secrets.token_urlsafe(48))

    login = await page.goto(url)
    assert login is not None
    headers = await login.all_headers()
    assert headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]

    await page.fill("#email", EMAIL)
    await page.fill("#password", PASSWORD + "x")
    async with page.expect_response(
        lambda r: r.request.method == "POST" and r.url == f"{server}/oauth/authorize"
    ) as answer:
        await page.click("#login button[type=submit]")
    assert (await answer.value).status == 401
    await page.wait_for_load_state()
    assert await page.is_visible("#error")
    assert "wrong" in (await page.text_content("#error") or "")
    assert page.url.startswith(f"{server}/oauth/authorize")
    assert await page.input_value("#email") == EMAIL
