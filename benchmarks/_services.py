"""Where benchmarks find PostgreSQL and a broker: the same variables as the tests.

BPO_TEST_DATABASE_URL / BPO_TEST_BROKER_URL when set, otherwise embedded services in a
temporary folder. Each run works in a fresh database that it drops at the end.
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

from bpo.core.db import create_database, drop_database, with_database
from bpo.core.migrations import migrate_database
from bpo.embedded import EmbeddedPostgres, EmbeddedRedis


@dataclass(frozen=True)
class BenchServices:
    database_url: str
    broker_url: str
    embedded: bool


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
            asyncio.run(migrate_database(url))
            try:
                yield BenchServices(url, broker_url, postgres is not None)
            finally:
                asyncio.run(drop_database(server_url, name))
        finally:
            if redis:
                redis.stop()
            if postgres:
                postgres.stop()
