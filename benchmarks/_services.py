"""Where benchmarks find PostgreSQL and a broker: the same variables as the tests.

BPO_TEST_DATABASE_URL / BPO_TEST_BROKER_URL when set, otherwise embedded services in a
temporary folder. Each run works in a fresh database that it drops at the end, after the
schemas and roles of its tenants (roles are cluster-wide: dropping the database leaves them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from bpo.core.db import Database, create_database, drop_database, with_database
from bpo.core.migrations import migrate_database
from bpo.core.tenancy import role_name, schema_name
from bpo.embedded import EmbeddedPostgres, EmbeddedRedis
from bpo.platform.tenants.service import drop_schema_and_role

_REGISTERED_IDS = text(
    "SELECT id FROM platform.tenants UNION SELECT id FROM platform.tenant_schema_pool"
)
_LEFT = text(
    "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'tenant%' "
    "UNION ALL SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'tenant%'"
)


@dataclass(frozen=True)
class BenchServices:
    database_url: str
    broker_url: str
    embedded: bool


async def drop_tenants(url: str) -> None:
    """The schema and (cluster-wide) role of every tenant and pooled schema in `url`."""
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            ids = list((await conn.execute(_REGISTERED_IDS)).scalars())
            left = set((await conn.execute(_LEFT)).scalars())
        for tenant_id in ids:  # those a benchmark has not dropped already
            if schema_name(tenant_id) in left or role_name(tenant_id) in left:
                await drop_schema_and_role(db.engine, tenant_id)
    finally:
        await db.dispose()


@contextlib.contextmanager
def services() -> Iterator[BenchServices]:
    server_url = os.environ.get("BPO_TEST_DATABASE_URL", "")
    broker_url = os.environ.get("BPO_TEST_BROKER_URL", "")
    with tempfile.TemporaryDirectory(prefix="bpo-bench-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp)) if not server_url else None
        redis = EmbeddedRedis(Path(tmp)) if not broker_url else None
        try:
            server_url = postgres.start("postgres") if postgres else server_url
            broker_url = redis.start() if redis else broker_url
            name = f"bpo_bench_{uuid.uuid4().hex[:10]}"
            asyncio.run(create_database(server_url, name))
            url = with_database(server_url, name)
            try:
                asyncio.run(migrate_database(url))
                yield BenchServices(url, broker_url, postgres is not None)
            finally:
                try:
                    asyncio.run(drop_tenants(url))
                finally:
                    asyncio.run(drop_database(server_url, name))
        finally:
            if redis:
                redis.stop()
            if postgres:
                postgres.stop()
