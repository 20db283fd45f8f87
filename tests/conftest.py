"""Test session: a real PostgreSQL and a real broker, external or embedded.

- `BPO_TEST_DATABASE_URL` names a server (any database on it); the session creates a fresh
  database there, migrates it, and drops it at the end. Unset: an embedded PostgreSQL is
  started in a temporary folder.
- `BPO_TEST_BROKER_URL` names a Redis or RabbitMQ broker. Unset: an embedded Redis.
- `BPO_TEST_AMQP_URL` additionally enables the RabbitMQ variant of the job tests.

Clean state between tests: after a test that used the database, every platform table is
emptied with DELETE, children first. Tests drive the app, a worker and subprocesses over
separate connections, so an outer rollback cannot hold their writes; among the strategies
that can, DELETE was the fastest (benchmarks/db_fixture.py: delete vs truncate vs schema
reset, with rollback as the baseline).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.app import create_app
from bpo.core.db import Database, create_database, drop_database, with_database
from bpo.core.migrations import migrate_database
from bpo.embedded import EmbeddedPostgres, EmbeddedRedis
from bpo.models import load_all_models
from bpo.platform.tenants.service import drop_schema_and_role
from bpo.settings import Settings
from tests.support.probe import probe_routes

load_all_models()  # as every entry point does: the metadata is complete before any test

# Seeded by migrations, not by tests: kept between tests.
REFERENCE_TABLES = {"meters", "plans", "plan_prices"}
TEST_SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnop"


@dataclass(frozen=True)
class Services:
    database_url: str  # the session's own database
    server_url: str  # the maintenance database on the same server
    broker_url: str
    embedded: bool
    namespace: str  # broker key prefix, so parallel runs on one Redis do not meet


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    data_dir = Path(tmp_path_factory.mktemp("embedded"))
    server_url = os.environ.get("BPO_TEST_DATABASE_URL") or ""
    broker_url = os.environ.get("BPO_TEST_BROKER_URL") or ""
    postgres = EmbeddedPostgres(data_dir) if not server_url else None
    redis = EmbeddedRedis(data_dir) if not broker_url else None
    try:
        if postgres:
            server_url = postgres.start(database="postgres")
        if redis:
            broker_url = redis.start()
        name = f"bpo_test_{uuid.uuid4().hex[:12]}"
        _run(create_database(server_url, name))
        database_url = with_database(server_url, name)
        _run(migrate_database(database_url))
        yield Services(
            database_url=database_url,
            server_url=server_url,
            broker_url=broker_url,
            embedded=postgres is not None,
            namespace=f"bpo-test-{name[-12:]}",
        )
        _run(_drop_everything(database_url))
        _run(drop_database(server_url, name))
    finally:
        if redis:
            redis.stop()
        if postgres:
            postgres.stop()


@pytest.fixture(scope="session")
def settings(services: Services) -> Settings:
    return Settings(
        database_url=services.database_url,
        broker_url=services.broker_url,
        environment="test",
        secret_key=TEST_SECRET_KEY,
        log_level="WARNING",
        # Broker keys and rate-limit counters of this session only (not earlier runs').
        broker_namespace=services.namespace,
    )


@pytest.fixture
async def db(services: Services) -> AsyncIterator[Database]:
    """The test database, emptied after the test (see the module docstring)."""
    database = Database(services.database_url)
    try:
        yield database
        await delete_platform_rows(database)
    finally:
        await database.dispose()


async def delete_platform_rows(database: Database) -> None:
    """Drop every tenant's schema and role, then empty every platform table but Alembic's."""
    from bpo.core.models import PlatformBase

    await drop_tenant_objects(database)
    async with database.engine.begin() as conn:
        for table in reversed(PlatformBase.metadata.sorted_tables):
            if table.name not in REFERENCE_TABLES:
                await conn.execute(table.delete())
        # Each test's Stripe stand-in starts empty: forget the ids an earlier one handed out.
        await conn.execute(text("UPDATE platform.meters SET stripe_meter_id = NULL"))
        await conn.execute(
            text("UPDATE platform.plans SET stripe_product = NULL, stripe_base_price = NULL")
        )
        await conn.execute(text("UPDATE platform.plan_prices SET stripe_price = NULL"))


_REGISTERED_IDS = text(
    "SELECT id FROM platform.tenants UNION ALL SELECT id FROM platform.tenant_schema_pool"
)


async def drop_tenant_objects(database: Database) -> None:
    """Schemas and (cluster-wide) roles of every registered tenant and pooled schema."""
    async with database.engine.connect() as conn:
        ids = (await conn.execute(_REGISTERED_IDS)).scalars().all()
    for tenant_id in ids:
        await drop_schema_and_role(database.engine, tenant_id)


def build_app(settings: Settings) -> Litestar:
    return create_app(settings, extra_route_handlers=probe_routes)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=build_app(settings)) as test_client:
        yield test_client


async def _drop_everything(database_url: str) -> None:
    database = Database(database_url)
    try:
        await drop_tenant_objects(database)
    finally:
        await database.dispose()


def _run(coro: Coroutine[Any, Any, Any]) -> None:
    asyncio.run(coro)
