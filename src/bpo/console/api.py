"""The console calls the API, in process, as the person signed in: every action takes the
same route, guard, scopes, validation, idempotency and audit as a client firm's call, so
the console has no door of its own into the data.

A call is an ASGI request handed to the application itself (no socket, no second server):
the person's access token in the Authorization header, the browser's address as the
client, the page's request id. The scope carries `CONSOLE_CALL`, which only this module
can set (it is not a header): the guard then does not bill a firm's admins for their own
console page views as API calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request

from bpo.console.session import PATH, Session
from bpo.identity.guards import CONSOLE_CALL

APP_ID = "demo-console"  # the sign-in app the console is (public: PKCE, no secret)
_JSON = ("application/json", "application/problem+json")


@dataclass(slots=True)
class Reply:
    """The API's answer: status, decoded JSON body (None when empty or not JSON)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def detail(self) -> str:
        """What a problem response says is wrong (RFC 9457 `detail`, else its title)."""
        if isinstance(self.body, dict):
            return str(self.body.get("detail") or self.body.get("title") or self.status)
        return f"the request failed ({self.status})"

    def field_errors(self) -> dict[str, str]:
        """A validation problem's errors by the field they name: a JSON Pointer's last
        segment (`/minutes` -> minutes) or the query parameter's name."""
        found: dict[str, str] = {}
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        for error in errors or []:
            if not isinstance(error, dict):
                continue
            name = error.get("parameter") or str(error.get("pointer") or "").rsplit("/", 1)[-1]
            if name and name not in found:
                found[name] = str(error.get("detail") or error.get("message") or "not valid")
        return found


async def call_app(
    request: Request[Any, Any, Any],
    method: str,
    path: str,
    *,
    token: str | None = None,
    json: Any = None,
    form: dict[str, str] | None = None,
    content: tuple[bytes, str] | None = None,
    query: dict[str, Any] | None = None,
) -> Reply:
    """One API request through the application's own ASGI stack; the body is JSON, a
    form, or `content` (bytes and their media type)."""
    headers = [(b"host", request.headers.get("host", "localhost").encode())]
    headers.append((b"accept", b"application/json"))
    body = b""
    if json is not None:
        body = msgspec.json.encode(json)
        headers.append((b"content-type", b"application/json"))
    elif form is not None:
        body = urlencode(form).encode()
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
    elif content is not None:
        body = content[0]
        headers.append((b"content-type", content[1].encode()))
    if body:
        headers.append((b"content-length", str(len(body)).encode()))
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    # The page's request id (the access log then ties the page to the calls it made).
    request_id = request.scope.get("state", {}).get("request_id")
    if isinstance(request_id, str):
        headers.append((b"x-request-id", request_id.encode()))
    clean = {k: v for k, v in (query or {}).items() if v not in (None, "")}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": request.scope.get("scheme", "http"),
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": urlencode(clean, doseq=True).encode(),
        "headers": headers,
        "client": request.scope.get("client"),
        "server": request.scope.get("server"),
        "state": {},
        CONSOLE_CALL: True,
    }
    sent = False
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # nothing more comes; a disconnect only once the answer is out
        return {"type": "http.disconnect"}

    status, out_headers, chunks = 500, {}, []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                out_headers[name.decode().lower()] = value.decode()
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    await request.app(scope, receive, send)  # type: ignore[arg-type]
    return Reply(status, _decode(b"".join(chunks), out_headers), out_headers)


def _decode(raw: bytes, headers: dict[str, str]) -> Any:
    media = headers.get("content-type", "").split(";", 1)[0].strip()
    if not raw or media not in _JSON:
        return raw.decode(errors="replace") if raw else None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None


def back_to(request: Request[Any, Any, Any]) -> str:
    """Where signing in again returns: this page (a form's page is not known: the start)."""
    if request.method != "GET":
        return PATH
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


class SignInNeeded(Exception):
    """No (valid) console session: the browser goes to the sign-in page and back."""

    def __init__(self, back_to: str) -> None:
        super().__init__(back_to)
        self.back_to = back_to


class Api:
    """The calls of one console request, as its signed-in person: the access token is
    refreshed (with the rotating refresh token) when it is about to expire or is refused
    as expired, and `changed` tells the console to reseal the cookie."""

    def __init__(self, request: Request[Any, Any, Any], session: Session) -> None:
        self.request = request
        self.session = session
        self.changed = False
        self.signed_out = False

    async def get(self, path: str, **query: Any) -> Reply:
        return await self.call("GET", path, query=query)

    async def post(self, path: str, json: Any = None) -> Reply:
        return await self.call("POST", path, json={} if json is None else json)

    async def call(self, method: str, path: str, **kwargs: Any) -> Reply:
        if self.session.expires_at - 30 <= time.time():
            await self.refresh()
        reply = await call_app(
            self.request, method, path, token=self.session.access_token, **kwargs
        )
        if reply.status == 401 and await self.refresh():
            reply = await call_app(
                self.request, method, path, token=self.session.access_token, **kwargs
            )
        if reply.status == 401:  # the session is over (revoked, expired, user deactivated)
            self.signed_out = True
            raise SignInNeeded(back_to(self.request))
        return reply

    async def refresh(self) -> bool:
        """A new access token from the refresh token; False when the session is over."""
        token = self.session.refresh_token
        if not token:
            return False
        state = self.request.app.state
        if not isinstance(state.get("console_refreshes"), Refreshes):
            state.console_refreshes = Refreshes()
        answer = await state.console_refreshes.once(token, self._exchange)
        if answer is None:
            self.session.refresh_token = None
            self.signed_out = True
            return False
        self.session.access_token = answer["access_token"]
        self.session.refresh_token = answer.get("refresh_token", token)
        self.session.expires_at = int(answer["expires_at"])
        self.changed = True
        return True

    async def _exchange(self, token: str) -> dict[str, Any] | None:
        form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": APP_ID}
        reply = await call_app(self.request, "POST", "/oauth/token", form=form)
        if not reply.ok or not isinstance(reply.body, dict):
            return None
        expires_at = int(time.time()) + int(reply.body.get("expires_in", 300))
        return {**reply.body, "expires_at": expires_at}


class Refreshes:
    """One refresh per refresh token at a time in this process, its answer shared.

    A poll, a click and a second tab of one session carry the same cookie, so the same
    refresh token. The server rotates it on first use and takes a second use for a replay
    that revokes the whole session (RFC 9700 4.14.2), so concurrent pages wait for the first
    refresh and reuse its tokens (kept a minute, in memory only)."""

    KEEP_S = 60.0

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._answers: dict[str, tuple[float, dict[str, Any]]] = {}

    async def once(
        self, token: str, exchange: Callable[[str], Awaitable[dict[str, Any] | None]]
    ) -> dict[str, Any] | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                now = time.monotonic()
                self._answers = {k: v for k, v in self._answers.items() if now - v[0] < self.KEEP_S}
                if key in self._answers:
                    return self._answers[key][1]
                answer = await exchange(token)
                if answer is not None:
                    self._answers[key] = (now, answer)
                return answer
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]  # a later arrival makes a new lock; the answer is kept
