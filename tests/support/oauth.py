"""The sign-in flow driven over HTTP, as a browser would (the browser test uses Chromium)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from bpo.core.db import Database
from bpo.core.security import secret_digest
from bpo.identity.models import OAuthApp
from tests.conftest import TEST_SECRET_KEY

REDIRECT = "http://127.0.0.1:9/callback"
APP_SCOPES = ["admin", "work:read", "work:write", "ledger:read"]


async def register_app(
    db: Database,
    client_id: str = "console",
    *,
    redirect_uris: list[str] | None = None,
    secret: str | None = None,
) -> None:
    async with db.sessionmaker.begin() as session:
        session.add(
            OAuthApp(
                client_id=client_id,
                name=client_id.title(),
                redirect_uris=redirect_uris or [REDIRECT],
                secret_digest=secret_digest(TEST_SECRET_KEY, secret) if secret else None,
                scopes=APP_SCOPES,
            )
        )


@dataclass
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        return cls(verifier, create_s256_code_challenge(verifier))


def authorize_params(
    pkce: Pkce | None, *, client_id: str = "console", redirect_uri: str = REDIRECT,
    scope: str = "work:read admin", state: str = "st-1", method: str | None = "S256",
) -> dict[str, str]:  # fmt: skip
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": scope, "state": state}  # fmt: skip
    if pkce is not None:
        params["code_challenge"] = pkce.challenge
    if method is not None:
        params["code_challenge_method"] = method
    return params


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="?hidden"? name="([^"]+)" value="([^"]*)">', html))


async def sign_in(
    http: httpx.AsyncClient,
    params: dict[str, str],
    email: str,
    password: str,
    **extra: str,
) -> httpx.Response:
    """GET the login page, POST the form (with its CSRF field and cookie); the answer."""
    page = await http.get(f"/oauth/authorize?{urlencode(params)}")
    assert page.status_code == 200, page.text
    form = hidden_fields(page.text) | {"email": email, "password": password, **extra}
    return await http.post("/oauth/authorize", data=form)


def redirect_query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT.split("?")[0]), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def exchange_code(
    http: httpx.AsyncClient, code: str, pkce: Pkce | None, *, redirect_uri: str = REDIRECT,
    client_id: str = "console",
) -> httpx.Response:  # fmt: skip
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": client_id}  # fmt: skip
    if pkce is not None:
        form["code_verifier"] = pkce.verifier
    return await http.post("/oauth/token", data=form)
