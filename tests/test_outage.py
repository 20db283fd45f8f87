"""Database lost while running: 503 problems, then recovery without a restart."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from bpo.core.db import Database
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
    assert body["checks"]["database"] != "ok"
    assert body["detail"].startswith("database is unavailable")
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
