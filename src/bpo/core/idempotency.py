"""`Idempotency-Key` on POSTs (draft-ietf-httpapi-idempotency-key-header), for every route.

A client that retries a POST with the same key gets the first answer again (marked
`Idempotent-Replayed: true`) instead of a second resource. Keys are scoped to the caller
(the verified token's client and subject) and kept 24 hours. The same key with a different
request is a 422; while the first request is still running, a 409 (retry shortly). Only
successful (2xx) answers are kept: after an error the key is free again, so a corrected
request can use it. Answers are stored sealed (AES-GCM), since some carry a secret shown once.

Two halves, because nothing may be claimed or replayed before the caller is proven:
- `IdempotencyMiddleware` (outside the routes) checks the header's shape and, once the route
  has answered, keeps the answer or frees the key. It reads no body and no token.
- `claim(connection, who)` is called by the route's guard after the token's signature,
  expiry and revocation were checked and the caller's standing loaded; `who` comes from those
  verified claims. It reads the body through Litestar (so the route's body limit applies while
  reading: Content-Length first, then a running total, 413) and claims the key, or answers
  from the stored row.

A process that dies after its change committed but before its answer was stored leaves the
key "in progress"; after `ABANDONED_AFTER` another request with it runs again (documented
in docs/architecture.md: that window, seconds wide, is not covered).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.types import ASGIApp
from sqlalchemy import DateTime, Integer, LargeBinary, String, delete, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.errors import Problem, problem_asgi_response
from bpo.core.models import PlatformBase
from bpo.core.security import seal, unseal

HEADER = b"idempotency-key"
KEPT_FOR = timedelta(hours=24)
ABANDONED_AFTER = timedelta(seconds=60)
MAX_STORED_BODY = 1 << 20  # larger answers (exports) pass through unrecorded
# Plain ASGI: messages are built and inspected here, so dicts rather than Litestar's TypedDicts.
Scope = dict[str, Any]
Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
_REPLAYED_HEADERS = (b"content-type", b"location", b"etag")
_STATE_KEY = "bpo_idempotency"
# A route's opt flag: its body streams (uploads); see `claim`.
STREAMED_BODY = "streamed_body"
_DECLARED_BODY = (b"content-length", b"content-digest", b"repr-digest", b"digest")

_INSERT = text(
    "INSERT INTO platform.idempotency_keys (scope, key, fingerprint)"
    " VALUES (:scope, :key, :fp) ON CONFLICT DO NOTHING RETURNING key"
)
_LOCKED_ROW = text(
    "SELECT fingerprint, status, headers, body_sealed FROM platform.idempotency_keys"
    " WHERE scope = :scope AND key = :key FOR UPDATE"
)
_CLAIM_ABANDONED = text(
    "UPDATE platform.idempotency_keys SET fingerprint = :fp, created_at = now()"
    " WHERE scope = :scope AND key = :key AND status IS NULL"
    " AND created_at < now() - CAST(:abandoned AS interval) RETURNING key"
)
_STORE = text(
    "UPDATE platform.idempotency_keys"
    " SET status = :status, headers = CAST(:headers AS jsonb), body_sealed = :body"
    " WHERE scope = :scope AND key = :key"
)
_RELEASE = text("DELETE FROM platform.idempotency_keys WHERE scope = :scope AND key = :key")


@dataclass(slots=True)
class _Pending:
    """One request's key, from the middleware to the guard and back."""

    key: str
    engine: AsyncEngine
    secret_key: str
    who: str | None = None  # set once the guard claimed the key for this request


class IdempotencyKey(PlatformBase):
    """A POST's Idempotency-Key and, once it succeeded, its sealed answer (24 hours)."""

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)  # client:subject
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))  # method, path, body
    status: Mapped[int | None] = mapped_column(Integer)  # None while the first still runs
    headers: Mapped[list[Any] | None] = mapped_column(JSONB)
    body_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


async def sweep(session: AsyncSession) -> None:
    """Forget keys older than `KEPT_FOR` (the hourly job-table sweep calls this)."""
    await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < func.now() - KEPT_FOR)
    )


class Replayed(Exception):
    """The stored answer of an earlier request with this key (raised by the guard)."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__("idempotent replay")
        self.status, self.headers, self.body = status, headers, body


def replayed_response(_: Request[Any, Any, Any], exc: Replayed) -> Response[bytes]:
    headers = dict(exc.headers)
    media_type = headers.pop("content-type", "application/json")
    return Response(
        exc.body,
        status_code=exc.status,
        media_type=media_type,
        headers={**headers, "Idempotent-Replayed": "true"},
    )


class IdempotencyMiddleware:
    def __init__(
        self, app: ASGIApp, engine: Callable[[], AsyncEngine | None], secret_key: str | None
    ) -> None:
        self.app: Any = app
        self.engine = engine
        self.secret_key = secret_key

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        key = _header(scope, HEADER) if scope["type"] == "http" else None
        engine = self.engine() if key is not None else None
        if (
            key is None
            or scope["method"] != "POST"
            or engine is None
            or not self.secret_key
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= 255 or not key.isprintable():
            detail = "Idempotency-Key must be 1 to 255 printable characters"
            await problem_asgi_response(scope, send, 400, "malformed-request", detail)
            return
        pending = _Pending(key, engine, self.secret_key)
        scope.setdefault("state", {})[_STATE_KEY] = pending
        answer = _Captured(send)
        try:
            await self.app(scope, receive, answer.send)
        finally:
            if pending.who is not None:
                await _keep_or_release(pending, answer)


class _Captured:
    """The route's answer as it goes out: status, the headers a replay repeats, the body."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [
                (k, v) for k, v in message.get("headers", ()) if k.lower() in _REPLAYED_HEADERS
            ]
        elif message["type"] == "http.response.body" and self.size <= MAX_STORED_BODY:
            chunk = message.get("body", b"")
            self.size += len(chunk)
            self.chunks.append(chunk)
        await self._send(message)

    @property
    def keepable(self) -> bool:
        return 200 <= self.status < 300 and self.size <= MAX_STORED_BODY


async def _keep_or_release(pending: _Pending, answer: _Captured) -> None:
    """A 2xx answer is sealed and kept; anything else frees the key for a corrected retry."""
    names = {"scope": pending.who, "key": pending.key}
    async with pending.engine.begin() as conn:
        if not answer.keepable:
            await conn.execute(_RELEASE, names)
            return
        sealed = seal(pending.secret_key, _purpose(pending), b"".join(answer.chunks))
        kept = [[k.decode().lower(), v.decode()] for k, v in answer.headers]
        await conn.execute(
            _STORE, {**names, "status": answer.status, "headers": json.dumps(kept), "body": sealed}
        )


async def claim(connection: ASGIConnection[Any, Any, Any, Any], who: str) -> None:
    """Claim this request's key for the verified caller `who`, or answer from the earlier
    request: its stored answer (`Replayed`), 422 for another request, 409 while it runs.
    A no-op for requests without a key."""
    pending: _Pending | None = connection.scope.get("state", {}).get(_STATE_KEY)
    if pending is None or pending.who is not None:
        return
    scope: Scope = dict(connection.scope)
    if connection.route_handler.opt.get(STREAMED_BODY):
        # An upload streamed to disk: its body is never held whole, so the key covers
        # what the client declared of it (length, type and digest headers) instead.
        declared = [_header(scope, n) or "" for n in _DECLARED_BODY]
        fingerprint = _fingerprint(scope, "\0".join(declared).encode())
    else:
        request: Request[Any, Any, Any] = Request(connection.scope, connection.receive)
        fingerprint = _fingerprint(scope, await request.body())
    who = who[:200]
    row = await _claim_row(pending.engine, who, pending.key, fingerprint)
    if row is None:
        pending.who = who
        return
    if row.fingerprint != fingerprint:
        raise Problem(
            422,
            "idempotency-key-reused",
            "this Idempotency-Key was used with a different request: use a new key for a "
            "new request",
        )
    if row.status is None:
        raise Problem(
            409,
            "idempotency-key-in-use",
            "a request with this Idempotency-Key is still in progress: retry shortly",
            headers={"Retry-After": "1"},
        )
    purpose = f"idempotency:{who}:{pending.key}"
    body = unseal(pending.secret_key, purpose, row.body_sealed)
    raise Replayed(row.status, [(k, v) for k, v in row.headers], body)


async def _claim_row(engine: AsyncEngine, who: str, key: str, fingerprint: bytes) -> Any | None:
    """None when this request holds the key now; else the stored row."""
    names = {"scope": who, "key": key}
    async with engine.begin() as conn:
        if await conn.scalar(_INSERT, {**names, "fp": fingerprint}) is not None:
            return None
        row = (await conn.execute(_LOCKED_ROW, names)).one_or_none()
        if row is None:  # expired and swept meanwhile
            return await _claim_row(engine, who, key, fingerprint)
        if row.status is None and row.fingerprint == fingerprint:
            abandoned = {**names, "fp": fingerprint, "abandoned": ABANDONED_AFTER}
            if await conn.scalar(_CLAIM_ABANDONED, abandoned) is not None:
                return None
        return row


def _purpose(pending: _Pending) -> str:
    return f"idempotency:{pending.who}:{pending.key}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1").strip())
    return None


def _fingerprint(scope: Scope, body: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in (
        scope["method"],
        scope["path"],
        scope.get("query_string", b"").decode("latin-1"),
        _header(scope, b"content-type") or "",
    ):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    return digest.digest()
