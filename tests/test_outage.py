"""Database lost while running: 503 problems, then recovery without a restart."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.core.db import Database, DatabaseOptions
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.proxy import DatabaseProxy


@pytest.fixture
def proxy(settings: Settings) -> Iterator[DatabaseProxy]:
    assert settings.database_url is not None
    proxy = DatabaseProxy(settings.database_url)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture
async def proxied_client(
    settings: Settings, proxy: DatabaseProxy, db: Database
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    proxied = dataclasses.replace(settings, database_url=proxy.url, db_connect_timeout=1.0)
    async with AsyncTestClient(app=build_app(proxied)) as client:
        yield client


async def test_outage_answers_503_and_recovers(
    proxied_client: AsyncTestClient[Litestar], proxy: DatabaseProxy
) -> None:
    client = proxied_client
    first = await client.get("/health/ready")
    assert first.status_code == 200, first.text
    assert (await client.post("/_probe/heartbeats", json={"token": "before"})).status_code == 201

    proxy.cut()

    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"].startswith("application/problem+json")
    body = ready.json()
    assert body["checks"]["broker"] == "ok"
    # Anyone may ask: what is down, never why (no address, user or driver message).
    assert body["checks"]["database"] == "down"
    assert body["detail"] == "not ready: database is down"
    assert "127.0.0.1" not in ready.text and "postgres" not in ready.text.lower()
    assert ready.headers["retry-after"]

    write = await client.post("/_probe/heartbeats", json={"token": "during"})
    assert write.status_code == 503, write.text
    assert write.json()["type"].endswith("/database-unavailable")
    read = await client.get("/_probe/heartbeats")
    assert read.status_code == 503

    proxy.restore()

    assert (await client.get("/health/ready")).status_code == 200
    assert (await client.post("/_probe/heartbeats", json={"token": "after"})).status_code == 201
    tokens = (await client.get("/_probe/heartbeats")).json()
    assert tokens == ["before", "after"]


async def test_a_connection_killed_while_idle_is_replaced_before_use(
    settings: Settings, db: Database
) -> None:
    """No ping on every checkout (it cost three round trips): a connection idle for longer
    than ping_after_idle_s is pinged first, and a dead one replaced without an error."""
    assert settings.database_url is not None
    options = DatabaseOptions(pool_size=1, max_overflow=0, ping_after_idle_s=0.05)
    pooled = Database(settings.database_url, options)
    backend = text("SELECT pg_backend_pid()")
    try:
        async with pooled.autocommit() as conn:
            first = (await conn.execute(backend)).scalar_one()
        async with db.autocommit() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await asyncio.sleep(0.2)
        async with pooled.autocommit() as conn:
            second = (await conn.execute(backend)).scalar_one()
    finally:
        await pooled.dispose()
    assert second != first
