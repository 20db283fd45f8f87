"""The authorization endpoint and its sign-in page (authorization code + PKCE S256).

GET validates the request through Authlib and shows the login form; POST checks the CSRF
token, the throttle, the password and (when enrolled) the TOTP code, lets a person with
several firms pick one, and redirects back with a single-use code and the issuer (RFC 9207).
Errors before the redirect URI is known to be the client's are shown here, never redirected
(RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.ratelimit import FAILURE_WINDOW_S, Limit, RateLimiter
from bpo.core.security import PasswordWork, PasswordWorkBusy, hash_password
from bpo.core.web import page_headers
from bpo.identity import grants, pages, service, totp
from bpo.identity.guards import PUBLIC, ring_of
from bpo.identity.models import User
from bpo.identity.server import BpoAuthorizationServer, FormRequest, repeated_parameter
from bpo.identity.server import endpoint_url as _endpoint_url

AUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)
CSRF_COOKIE = "bpo_csrf"
TICKET_TTL_S = 300
HTML = "text/html; charset=utf-8"


def _security_headers(redirect_uri: str | None = None) -> dict[str, str]:
    # Chrome applies form-action to the redirect after a form post: allow the client's origin.
    target = ""
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        target = f" {parts.scheme}://{parts.netloc}"
    return {**page_headers(target), "Pragma": "no-cache"}


def _html(body: str, status: int, redirect_uri: str | None = None) -> Response[str]:
    return Response(
        body, status_code=status, media_type=HTML, headers=_security_headers(redirect_uri)
    )


def _sign(secret_key: str, purpose: str, value: str) -> str:
    mac = hmac.new(secret_key.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


class _Refused(Exception):
    def __init__(self, response: Response[Any]) -> None:
        self.response = response


async def _validate(
    request: Request[Any, Any, State], session: AsyncSession, pairs: list[tuple[str, str]]
) -> tuple[BpoAuthorizationServer, grants.Exchange, FormRequest]:
    """Authlib's validation of the authorization request; refusals become responses."""
    state = request.app.state
    ring = await ring_of(state)
    server: BpoAuthorizationServer = state.oauth
    server.ring = ring
    client = await service.load_client(session, dict(pairs).get("client_id"), ring.secret_key)
    exchange = grants.Exchange(client)
    oauth_request = FormRequest("GET", _endpoint_url(request), request.headers, pairs)
    token = grants.exchange_var.set(exchange)
    try:
        server.get_consent_grant(oauth_request)
    except OAuth2Error as error:
        raise _Refused(_authorization_error(error, state.settings.issuer)) from error
    finally:
        grants.exchange_var.reset(token)
    return server, exchange, oauth_request


def _repeated_refusal(pairs: list[tuple[str, str]]) -> Response[str] | None:
    """A repeated parameter is refused on the page itself: with two redirect URIs or client
    ids there is no trustworthy place to send the error (RFC 6749 §4.1.2.1)."""
    name = repeated_parameter(pairs)
    if name is None:
        return None
    detail = f"invalid_request: the parameter {name} is repeated"
    return _html(pages.error_page("This sign-in link is not valid", detail), 400)


def _authorization_error(error: OAuth2Error, issuer: str) -> Response[Any]:
    if error.redirect_uri:  # the client's own, verified URI: tell the client
        _, _, headers = error()
        location = add_params_to_uri(dict(headers)["Location"], [("iss", issuer)])
        return Response(
            "", status_code=302, headers={"Location": location, "Cache-Control": "no-store"}
        )
    detail = error.description or error.error
    return _html(pages.error_page("This sign-in link is not valid", detail), 400)


@get(
    "/oauth/authorize",
    summary="Authorization endpoint (RFC 6749 §4.1, PKCE S256 required): the sign-in page",
    tags=["oauth"],
    media_type=HTML,
    opt={PUBLIC: True},
    include_in_schema=False,
)
async def authorize_page(
    request: Request[Any, Any, State], db_session: NamedDependency[AsyncSession]
) -> Response[str]:
    pairs = [(k, v) for k, v in request.query_params.multi_items() if isinstance(v, str)]
    if (repeated := _repeated_refusal(pairs)) is not None:
        return repeated
    try:
        _, exchange, _ = await _validate(request, db_session, pairs)
    except _Refused as refused:
        return refused.response
    return _login_form(request, exchange, pairs, email="", error=None, status=200)


def _login_form(
    request: Request[Any, Any, State],
    exchange: grants.Exchange,
    pairs: list[tuple[str, str]],
    *,
    email: str,
    error: str | None,
    status: int,
) -> Response[str]:
    settings = request.app.state.settings
    cookie_value = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    hidden = [(k, v) for k, v in pairs if k in AUTH_PARAMS]
    hidden.append(("csrf", _sign(settings.secret_key, "csrf", cookie_value)))
    assert exchange.client is not None
    body = pages.login_page(
        app_name=exchange.client.client_id, hidden=hidden, email=email, error=error
    )
    response = _html(body, status, dict(pairs).get("redirect_uri"))
    response.cookies.append(
        Cookie(
            key=CSRF_COOKIE,
            value=cookie_value,
            path="/oauth",
            httponly=True,
            samesite="lax",
            secure=settings.issuer.startswith("https://"),
        )
    )
    return response


@post(
    "/oauth/authorize",
    summary="Sign-in form submission: password, TOTP, firm choice; redirects with a code",
    tags=["oauth"],
    media_type=HTML,
    opt={PUBLIC: True},
    include_in_schema=False,
    status_code=302,
)
async def authorize_submit(
    request: Request[Any, Any, State], db_session: NamedDependency[AsyncSession]
) -> Response[Any]:
    state = request.app.state
    settings = state.settings
    form = [(k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str)]
    if (repeated := _repeated_refusal(form)) is not None:
        return repeated
    fields = dict(form)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(
        fields.get("csrf", ""), _sign(settings.secret_key, "csrf", cookie)
    ):
        return _html(
            pages.error_page(
                "Please try again",
                "the form expired or was not ours (CSRF check failed); reload the sign-in page",
            ),
            403,
        )
    pairs = [(k, v) for k, v in form if k in AUTH_PARAMS]
    try:
        server, exchange, oauth_request = await _validate(request, db_session, pairs)
    except _Refused as refused:
        return refused.response
    limiter: RateLimiter = state.limiter
    email = fields.get("email", "").strip().lower()[:320]
    ip = request.client.host if request.client else "unknown"
    throttles = [
        Limit(
            "failed sign-ins for this email",
            f"login:email:{email}",
            settings.login_failures_per_email,
            FAILURE_WINDOW_S,
        ),
        Limit(
            "failed sign-ins from this address",
            f"login:ip:{ip}",
            settings.login_failures_per_ip,
            FAILURE_WINDOW_S,
        ),
    ]
    ticket_value = _ticket_value(pairs)
    user = await _from_ticket(
        db_session, settings.secret_key, fields.get("ticket", ""), ticket_value
    )
    if user is None:
        # The attempt is counted before the password is checked, in one atomic step, so
        # parallel attempts cannot all pass a count read before any of them failed; a
        # successful sign-in takes its count back (the limits count failures).
        exceeded = await limiter.hit_all(throttles)
        if exceeded is not None:  # refused unchecked: not a failure, so not counted
            await limiter.hit_all(throttles, amount=-1)
            await _record(request, db_session, fields, None, "throttled")
            return _too_many(f"too many {exceeded[0].name}; try again in 15 minutes")
        try:
            user = await _authenticate(
                db_session, state.password_work, settings.secret_key, email, fields
            )
        except PasswordWorkBusy:
            await limiter.hit_all(throttles, amount=-1)
            return _too_many("too many sign-ins are being checked right now; try again", 5)
        if user is None:
            await _record(request, db_session, fields, None, "invalid_credentials")
            return _login_form(
                request,
                exchange,
                form,
                email=email,
                error="Email, password or authenticator code is wrong.",
                status=401,
            )
        await limiter.hit_all(throttles, amount=-1)
    return await _grant(
        request, db_session, server, exchange, oauth_request, user, fields, ticket_value
    )


def _too_many(detail: str, retry_after_s: int = FAILURE_WINDOW_S) -> Response[str]:
    response = _html(pages.error_page("Too many attempts", detail), 429)
    response.headers["Retry-After"] = str(retry_after_s)
    return response


async def _grant(
    request: Request[Any, Any, State],
    session: AsyncSession,
    server: BpoAuthorizationServer,
    exchange: grants.Exchange,
    oauth_request: FormRequest,
    user: User,
    fields: dict[str, str],
    ticket_value: str,
) -> Response[Any]:
    settings = request.app.state.settings
    assert exchange.client is not None
    tenant_id: uuid.UUID | None = None
    if user.staff_role is None:
        choices = await service.active_tenant_choices(session, user.id)
        if not choices:
            return _html(
                pages.error_page("No firm to sign in to", "your account has no active membership"),
                403,
            )
        chosen = (
            [t for t in choices if t.slug == fields.get("tenant")] if len(choices) > 1 else choices
        )
        if not chosen:
            expires = int(time.time()) + TICKET_TTL_S
            bound = f"{user.id}.{expires}.{ticket_value}"
            ticket = f"{user.id}.{expires}.{_sign(settings.secret_key, 'ticket', bound)}"
            hidden = [(k, v) for k, v in oauth_request.payload.data.items()]
            hidden += [("csrf", fields["csrf"]), ("ticket", ticket)]
            body = pages.tenant_picker(hidden=hidden, tenants=[(t.slug, t.name) for t in choices])
            return _html(body, 200, fields.get("redirect_uri"))
        tenant_id = chosen[0].id
    scope = exchange.client.get_allowed_scope(fields.get("scope"))
    grantee = await service.grantee_for(session, user.id, tenant_id, scope)
    if grantee is None:
        return _html(
            pages.error_page("You cannot sign in here", "your account or firm is not active"), 403
        )

    def authorize(req: FormRequest) -> tuple[int, Any, list[Any]]:
        grant = server.get_consent_grant(req)
        result: tuple[int, Any, list[Any]] = server.create_authorization_response(
            req, grantee, grant
        )
        return result

    _, _, headers = server.run(exchange, authorize, oauth_request)
    await service.save_codes(session, exchange)
    await _record(request, session, fields, grantee, None)
    location = add_params_to_uri(dict(headers)["Location"], [("iss", settings.issuer)])
    return Response(
        "", status_code=302, headers={"Location": location, "Cache-Control": "no-store"}
    )


async def _record(
    request: Request[Any, Any, State],
    session: AsyncSession,
    fields: dict[str, str],
    grantee: grants.Grantee | None,
    error: str | None,
) -> None:
    await service.record_sign_in(
        session,
        client_id=fields.get("client_id"),
        grantee=grantee,
        error=error,
        ip=request.client.host if request.client else None,
        request_id=request.scope.get("state", {}).get("request_id"),
    )


def _ticket_value(pairs: list[tuple[str, str]]) -> str:
    """What a tenant-picker ticket is bound to: this very authorization request."""
    return hashlib.sha256(repr(sorted(pairs)).encode()).hexdigest()


async def _from_ticket(
    session: AsyncSession, secret_key: str, ticket: str, bound_to: str
) -> User | None:
    """The user a tenant-picker ticket names, if it is ours, fresh and for this request."""
    parts = ticket.split(".")
    if len(parts) != 3:
        return None
    user_id, expires, mac = parts
    expected = _sign(secret_key, "ticket", f"{user_id}.{expires}.{bound_to}")
    if (
        not hmac.compare_digest(mac, expected)
        or not expires.isdigit()
        or int(expires) < time.time()
    ):
        return None
    user = await session.get(User, uuid.UUID(user_id))
    return user if user is not None and user.status == "active" else None


_DUMMY_HASH: list[str] = []


async def _authenticate(
    session: AsyncSession,
    passwords: PasswordWork,
    secret_key: str,
    email: str,
    fields: dict[str, str],
) -> User | None:
    user = await service.user_by_email(session, email) if email else None
    password = fields.get("password", "")
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(await asyncio.to_thread(hash_password, "not a password"))
    # argon2 is deliberately slow: off the event loop, a bounded number at a time, and the
    # same work for unknown emails.
    stored = user.password_hash if user is not None else _DUMMY_HASH[0]
    if not await passwords.verify(stored, password):
        return None
    if user is None or user.status != "active":
        return None
    if user.totp_confirmed_at is not None and user.totp_secret_sealed is not None:
        step = totp.matching_step(
            secret_key,
            user.id,
            user.totp_secret_sealed,
            fields.get("totp", ""),
            user.totp_last_step,
        )
        if step is None:
            return None
        user.totp_last_step = step
    return user


route_handlers = [authorize_page, authorize_submit]
