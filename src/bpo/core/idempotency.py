"""`Idempotency-Key` on POSTs (draft-ietf-httpapi-idempotency-key-header), for every route.

A client that retries a POST with the same key gets the first answer again (marked
`Idempotent-Replayed: true`) instead of a second resource. Keys are scoped to the caller
(the token's client and subject) and kept 24 hours. The same key with a different request
is a 422; while the first request is still running, a 409 (retry shortly). Only successful
(2xx) answers are kept: after an error the key is free again, so a corrected request can
use it. Answers are stored sealed (AES-GCM), since some carry a secret shown once.

A process that dies after its change committed but before its answer was stored leaves the
key "in progress"; after `ABANDONED_AFTER` another request with it runs again (documented
in docs/architecture.md: that window, seconds wide, is not covered).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from litestar.types import ASGIApp
from sqlalchemy import delete, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bpo.core.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, PROBLEM_TITLES
from bpo.core.security import seal, unseal
from bpo.platform.models import IdempotencyKey

HEADER = b"idempotency-key"
KEPT_FOR = timedelta(hours=24)
ABANDONED_AFTER = timedelta(seconds=60)
MAX_STORED_BODY = 1 << 20  # larger answers (exports) pass through unrecorded
# Plain ASGI: messages are built and inspected here, so dicts rather than Litestar's TypedDicts.
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_REPLAYED_HEADERS = (b"content-type", b"location", b"etag")
_CLAIM_ABANDONED = text(
    "UPDATE platform.idempotency_keys SET fingerprint = :fp, created_at = now()"
    " WHERE scope = :scope AND key = :key AND status IS NULL"
    " AND created_at < now() - CAST(:abandoned AS interval) RETURNING key"
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
        if key is None or scope["method"] != "POST" or engine is None or not self.secret_key:
            await self.app(scope, receive, send)
            return
        who = _caller(scope)
        if who is None or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)  # unauthenticated: the guard answers 401
            return
        if not 1 <= len(key) <= 255 or not key.isprintable():
            await _problem(
                scope,
                send,
                400,
                "malformed-request",
                "Idempotency-Key must be 1 to 255 printable characters",
            )
            return
        body = await _read_body(receive)
        fingerprint = _fingerprint(scope, body)
        stored = await _claim(engine, who, key, fingerprint)
        if stored is not None:
            await self._answer_from(stored, scope, send, who, key, fingerprint)
            return
        await self._run_and_store(scope, body, send, engine, who, key)

    async def _answer_from(
        self, row: Any, scope: Scope, send: Send, who: str, key: str, fingerprint: bytes
    ) -> None:
        if row.fingerprint != fingerprint:
            await _problem(
                scope,
                send,
                422,
                "idempotency-key-reused",
                "this Idempotency-Key was used with a different request: use a new "
                "key for a new request",
            )
        elif row.status is None:
            await _problem(
                scope,
                send,
                409,
                "idempotency-key-in-use",
                "a request with this Idempotency-Key is still in progress: retry shortly",
                headers=[(b"retry-after", b"1")],
            )
        else:
            assert self.secret_key is not None
            headers = [(k.encode(), v.encode()) for k, v in row.headers]
            body = unseal(self.secret_key, f"idempotency:{who}:{key}", row.body_sealed)
            await send(
                {
                    "type": "http.response.start",
                    "status": row.status,
                    "headers": [*headers, (b"idempotent-replayed", b"true")],
                }
            )
            await send({"type": "http.response.body", "body": body})

    async def _run_and_store(
        self, scope: Scope, body: bytes, send: Send, engine: AsyncEngine, who: str, key: str
    ) -> None:
        status, headers, chunks, size = 500, [], [], 0
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            nonlocal status, headers, size
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() in _REPLAYED_HEADERS
                ]
            elif message["type"] == "http.response.body" and size <= MAX_STORED_BODY:
                chunk = message.get("body", b"")
                size += len(chunk)
                chunks.append(chunk)
            await send(message)

        stored = False
        try:
            await self.app(scope, replay, capture)
            if 200 <= status < 300 and size <= MAX_STORED_BODY:
                assert self.secret_key is not None
                sealed = seal(self.secret_key, f"idempotency:{who}:{key}", b"".join(chunks))
                kept = [[k.decode(), v.decode()] for k, v in headers]
                async with engine.begin() as conn:
                    await conn.execute(
                        update(IdempotencyKey)
                        .where(IdempotencyKey.scope == who, IdempotencyKey.key == key)
                        .values(status=status, headers=kept, body_sealed=sealed)
                    )
                stored = True
        finally:
            if not stored:  # an error, or too large to keep: the key is free again
                async with engine.begin() as conn:
                    await conn.execute(
                        delete(IdempotencyKey).where(
                            IdempotencyKey.scope == who, IdempotencyKey.key == key
                        )
                    )


async def _claim(engine: AsyncEngine, who: str, key: str, fingerprint: bytes) -> Any | None:
    """None when this request holds the key now; else the stored row."""
    async with engine.begin() as conn:
        mine = await conn.scalar(
            pg_insert(IdempotencyKey)
            .values(scope=who, key=key, fingerprint=fingerprint)
            .on_conflict_do_nothing()
            .returning(IdempotencyKey.key)
        )
        if mine is not None:
            return None
        row = (
            await conn.execute(
                IdempotencyKey.__table__.select()
                .where(IdempotencyKey.scope == who, IdempotencyKey.key == key)
                .with_for_update()
            )
        ).one_or_none()
        if row is None:  # expired and swept meanwhile
            return await _claim(engine, who, key, fingerprint)
        if row.status is None and row.fingerprint == fingerprint:
            taken = await conn.scalar(
                _CLAIM_ABANDONED,
                {"fp": fingerprint, "scope": who, "key": key, "abandoned": ABANDONED_AFTER},
            )
            if taken is not None:
                return None
        return row


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1").strip())
    return None


def _caller(scope: Scope) -> str | None:
    """The token's client and subject, read without verification: only to scope keys (the
    guard verifies the token; a forged one gets its 401, and its key is released)."""
    auth = _header(scope, b"authorization") or ""
    scheme, _, token = auth.partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3 or len(parts[1]) > 8192:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return f"{claims['client_id']}:{claims['sub']}"[:200]
    except (ValueError, KeyError, TypeError):
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


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


async def _problem(
    scope: Scope,
    send: Send,
    status: int,
    slug: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": PROBLEM_TITLES.get(slug, slug),
        "status": status,
        "detail": detail,
        "instance": scope["path"],
    }
    if request_id := scope.get("state", {}).get("request_id"):
        body["request_id"] = request_id
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": payload})
