"""Signing in to the console is the OAuth authorization code flow with PKCE (RFC 7636) of
the public sign-in app, against bpo's own /oauth/authorize; the callback checks the state
and the issuer (RFC 9207), exchanges the code through the token endpoint and seals the
tokens in the session cookie. Signing out revokes the refresh token (RFC 7009)."""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.console.api import APP_ID, Api, call_app
from bpo.console.session import (
    LOGIN_COOKIE,
    LOGIN_MAX_AGE_S,
    PATH,
    SESSION_COOKIE,
    Login,
    Session,
    console_callback,
    new_csrf,
)
from bpo.console.views import (
    cleared,
    is_secure,
    redirect,
    sealer_of,
    session_cookie,
    standalone,
)
from bpo.identity.guards import PUBLIC
from bpo.identity.service import ensure_public_app
from bpo.settings import Settings

Req = Request[Any, Any, Any]


def _local(target: str | None) -> str:
    """Only the console's own pages may be where sign-in returns (no open redirect)."""
    if target and target.startswith(PATH) and not target.startswith("//") and "\\" not in target:
        return target
    return PATH


@get("/login", opt={PUBLIC: True}, include_in_schema=False)
async def login(request: Req, next: FromQuery[str | None] = None) -> Response[Any]:
    """Start the authorization request; the verifier and state wait in a sealed cookie."""
    settings = request.app.state.settings
    pending = Login(secrets.token_urlsafe(24), secrets.token_urlsafe(48), _local(next))
    params = {
        "response_type": "code",
        "client_id": APP_ID,
        "redirect_uri": console_callback(settings),
        "state": pending.state,
        "code_challenge": create_s256_code_challenge(pending.verifier),
        "code_challenge_method": "S256",
    }
    response = Redirect(path=f"/oauth/authorize?{urlencode(params)}", status_code=303)
    response.set_cookie(
        key=LOGIN_COOKIE, value=sealer_of(request).seal(pending), path=PATH,
        max_age=LOGIN_MAX_AGE_S, httponly=True, secure=is_secure(request), samesite="lax",
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


@get("/callback", opt={PUBLIC: True}, include_in_schema=False)
async def callback(
    request: Req,
    code: FromQuery[str | None] = None,
    returned_state: Annotated[str | None, QueryParameter(name="state")] = None,
    iss: FromQuery[str | None] = None,
    error: FromQuery[str | None] = None,
) -> Response[Any]:
    settings = request.app.state.settings
    sealer = sealer_of(request)
    pending = sealer.open_login(request.cookies.get(LOGIN_COOKIE))
    if error:
        raise HTTPException(status_code=400, detail=f"sign-in was not completed ({error[:60]})")
    if (
        pending is None
        or not returned_state
        or not secrets.compare_digest(pending.state, returned_state)
    ):
        raise HTTPException(
            status_code=400, detail="this sign-in expired or is not yours: start again"
        )
    if iss != settings.issuer or not code:
        raise HTTPException(status_code=400, detail="the sign-in answer is not from this server")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": console_callback(settings),
        "client_id": APP_ID,
        "code_verifier": pending.verifier,
    }
    tokens = await call_app(request, "POST", "/oauth/token", form=form)
    if not tokens.ok:
        raise HTTPException(status_code=400, detail=f"sign-in failed: {tokens.detail}")
    access = tokens.body["access_token"]
    me = await call_app(request, "GET", "/v1/me", token=access)
    if not me.ok:
        raise HTTPException(status_code=403, detail=f"sign-in refused: {me.detail}")
    session = Session(
        access_token=access,
        refresh_token=tokens.body.get("refresh_token"),
        expires_at=int(time.time()) + int(tokens.body.get("expires_in", 300)),
        csrf=new_csrf(),
        kind=me.body["kind"],
        role=me.body.get("role"),
        email=me.body.get("email"),
        tenant=me.body.get("tenant"),
        scopes=list(me.body.get("scopes", [])),
    )
    response = Redirect(path=pending.next, status_code=303)
    response.set_cookie(session_cookie(sealer, session, is_secure(request)))
    response.set_cookie(cleared(LOGIN_COOKIE, is_secure(request)))
    response.headers["Cache-Control"] = "no-store"
    return response


@post("/logout", opt={PUBLIC: True}, include_in_schema=False, status_code=303)
async def logout(api: NamedDependency[Api]) -> Response[Any]:
    """Revoke the refresh token (and with it the grant) and the access token, then forget."""
    for token, hint in ((api.session.refresh_token, "refresh_token"),
                        (api.session.access_token, "access_token")):  # fmt: skip
        if token:
            form = {"token": token, "token_type_hint": hint, "client_id": APP_ID}
            await call_app(api.request, "POST", "/oauth/revoke", form=form)
    response = Redirect(path=f"{PATH}/signed-out", status_code=303)
    response.set_cookie(cleared(SESSION_COOKIE, is_secure(api.request)))
    return response


@get("/signed-out", opt={PUBLIC: True}, include_in_schema=False)
async def signed_out() -> Response[Any]:
    return standalone("signed_out.html", 200, title="Signed out", detail="")


@get("/", opt={PUBLIC: True}, include_in_schema=False)
async def home(api: NamedDependency[Api]) -> Response[Any]:
    """Staff start at the inbox; a firm's people at their firm."""
    if api.session.kind == "staff":
        return redirect(api, f"{PATH}/inbox")
    if api.session.tenant:
        return redirect(api, f"{PATH}/firms/{api.session.tenant}")
    raise HTTPException(status_code=403, detail="this account has no firm to show")


async def register_callback(session: AsyncSession, settings: Settings) -> bool:
    """The console's sign-in app accepts this deployment's callback (`bpo migrate` and
    `bpo up` call it: the console then works wherever bpo is served)."""
    return await ensure_public_app(session, APP_ID, "bpo console", console_callback(settings))


route_handlers = [login, callback, logout, signed_out, home]
