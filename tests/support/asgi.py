"""Requests sent straight into the ASGI app, for what the test client cannot send: a header
repeated as two lines (it joins them into one) or a body in chunks without Content-Length.

The test client runs the app on a portal thread with its own event loop; `call` runs the
request there."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient


@dataclass
class Answer:
    status: int
    body: bytes
    chunks_read: int


async def call(
    client: AsyncTestClient[Litestar],
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    chunks: Sequence[bytes] = (b"",),
) -> Answer:
    request = functools.partial(_request, client.app, method, path, headers, chunks)
    return await asyncio.to_thread(client.blocking_portal.call, request)


async def _request(
    app: Any, method: str, path: str, headers: Sequence[tuple[str, str]], chunks: Sequence[bytes]
) -> Answer:
    read = 0
    status = 0
    body = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        if read > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    path_only, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path_only,
        "raw_path": path_only.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver.local")]
        + [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver.local", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return Answer(status, bytes(body), read)
