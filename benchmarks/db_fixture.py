"""Cost per test of returning the database to a clean state, three ways.

- delete: DELETE FROM every platform table, children first (what tests/conftest.py does);
- truncate: TRUNCATE every platform table;
- rollback: run the test inside an outer transaction + savepoint, roll it back;
- schema reset: DROP SCHEMA platform CASCADE and migrate it again.

Each variant first writes a few rows, as a test would. Prints ms per test and the ratio to
rollback. Usage: python benchmarks/db_fixture.py [rounds=200] [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli
from benchmarks._services import services
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from tests.conftest import delete_platform_rows

from bpo.core.db import Database
from bpo.core.migrations import upgrade_platform
from bpo.jobs.models import JobHeartbeat
from bpo.platform.models import Tenant


async def write_like_a_test(session: AsyncSession) -> None:
    session.add(Tenant(slug=f"t-{uuid.uuid4().hex[:8]}", name="Bench"))
    session.add_all(JobHeartbeat(token=uuid.uuid4().hex, worker_pid=1) for _ in range(5))
    await session.flush()


async def delete_round(db: Database) -> None:
    async with db.sessionmaker.begin() as session:
        await write_like_a_test(session)
    await delete_platform_rows(db)


async def truncate_round(db: Database) -> None:
    async with db.sessionmaker.begin() as session:
        await write_like_a_test(session)
    async with db.engine.begin() as conn:
        tables = (
            (
                await conn.execute(
                    text(
                        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                        "WHERE schemaname = 'platform' AND tablename <> 'alembic_version'"
                    )
                )
            )
            .scalars()
            .all()
        )
        await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))


async def rollback_round(db: Database) -> None:
    async with db.engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
        await write_like_a_test(session)
        await session.commit()  # a savepoint release: the outer transaction still holds it
        await session.close()
        await outer.rollback()


async def schema_reset_round(db: Database) -> None:
    async with db.sessionmaker.begin() as session:
        await write_like_a_test(session)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA platform CASCADE"))
    await upgrade_platform(db.engine)


async def measure(
    name: str, round_: Callable[[Database], Awaitable[None]], db: Database, rounds: int
) -> float:
    for _ in range(3):  # warm the pool and the catalog caches
        await round_(db)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await round_(db)
        samples.append((time.perf_counter() - started) * 1000)
    median = statistics.median(samples)
    p90 = sorted(samples)[int(rounds * 0.9) - 1]
    print(f"{name:<14} {median:8.2f} ms/test (median of {rounds}, p90 {p90:.2f})")
    return median


async def main(url: str, rounds: int) -> None:
    db = Database(url)
    try:
        rollback = await measure("rollback", rollback_round, db, rounds)
        delete = await measure("delete", delete_round, db, rounds)
        truncate = await measure("truncate", truncate_round, db, rounds)
        reset = await measure("schema reset", schema_reset_round, db, max(5, rounds // 20))
    finally:
        await db.dispose()
    print(
        f"delete / rollback = {delete / rollback:.1f}x; truncate / rollback = "
        f"{truncate / rollback:.1f}x; schema reset / rollback = {reset / rollback:.1f}x"
    )


if __name__ == "__main__":
    parser = _cli.parser(__doc__)
    parser.add_argument("rounds", type=int, nargs="?", default=200, help="rounds per variant")
    args = _cli.parse(parser, {"rounds": 10})
    with services() as found:
        print(f"database: {'embedded' if found.embedded else 'external'} PostgreSQL")
        asyncio.run(main(found.database_url, args.rounds))
