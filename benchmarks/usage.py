"""Usage-ledger figures (issue 6, first part), printed.

1. Usage events recorded per second through the batch path (`record_usage_batch`, 1,000
   events a statement, keys unique, one connection), and per CPU-second of this process
   plus PostgreSQL (the machine's two cores are shared; goal >= 10,000 per core).
2. What `record_usage` adds to a request: a tenant transaction that writes one row, with
   and without a `record_usage` in it (median of many, as a ratio and in ms).
3. Current-usage query p95 for a tenant with N usage events (default 10,000,000 over the
   last 30 days, loaded with COPY and folded by the rollup job's statement; goal < 200 ms).

Usage: python benchmarks/usage.py [--batch-events 200000] [--rounds 500] [--events 10000000]
                                  [--queries 200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli
from benchmarks._services import services
from sqlalchemy import text

from bpo.billing.service import (
    Usage,
    month_of,
    period_usage,
    record_usage,
    record_usage_batch,
    roll_up,
)
from bpo.core.db import Database
from bpo.core.tenancy import issue_tenant_context, tenant_session
from bpo.platform.tenants.service import create_tenant

METERS = ("api_calls", "staff_minutes", "tasks_completed", "documents_gb_month")


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


async def batch_rate(db: Database, tenant_id: uuid.UUID, count: int) -> None:
    now = datetime.now(UTC)
    events = [
        Usage(tenant_id, METERS[n % 4], Decimal(1 + n % 7), f"b{n}", now - timedelta(seconds=n))
        for n in range(count)
    ]
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # its backend exists before the CPU snapshot
        await conn.commit()
        watched = [os.getpid(), *postgres_pids()]
        cpu0, began = cpu_seconds(watched), time.perf_counter()
        for first in range(0, count, 1000):
            async with conn.begin():
                await record_usage_batch(conn, events[first : first + 1000])
        wall = time.perf_counter() - began
        cpu = max(cpu_seconds(watched) - cpu0, 1 / os.sysconf("SC_CLK_TCK"))  # a tick at least
    print(
        f"batch path: {count / wall:,.0f} events/s on one connection ({count:,} events); "
        f"{count / cpu:,.0f} events per CPU-second of this process + PostgreSQL "
        f"({cpu:.1f} CPU-s over {wall:.1f} s; goal >= 10,000 per core)"
    )


async def request_cost(db: Database, tenant_id: uuid.UUID, slug: str, rounds: int) -> None:
    ctx = issue_tenant_context(tenant_id, slug)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(
            f'CREATE TABLE "{ctx.schema}".bench_notes (id bigserial PRIMARY KEY, body text)'
        )

    insert_note = text(f"INSERT INTO \"{ctx.schema}\".bench_notes (body) VALUES ('x')")

    async def plain(n: int) -> None:
        async with tenant_session(db.engine, ctx) as session:
            await session.execute(insert_note)

    async def billed(n: int) -> None:
        async with tenant_session(db.engine, ctx) as session:
            await session.execute(insert_note)
            await record_usage(session, ctx, "tasks_completed", 1, f"r{n}")

    timings: dict[str, list[float]] = {"plain": [], "billed": []}
    for n in range(rounds):
        for name, step in (("plain", plain), ("billed", billed)):
            began = time.perf_counter()
            await step(n)
            timings[name].append(time.perf_counter() - began)
    p, b = statistics.median(timings["plain"]), statistics.median(timings["billed"])
    print(
        f"record_usage in a request's transaction: {b * 1000:.2f} ms against {p * 1000:.2f} ms "
        f"without (+{(b - p) * 1000:.2f} ms, {b / p:.2f}x; medians of {rounds})"
    )


async def current_usage_p95(db: Database, tenant_id: uuid.UUID, events: int, queries: int) -> None:
    start = datetime.now(UTC) - timedelta(days=30)
    began = time.perf_counter()
    async with db.engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        step = timedelta(days=30) / events
        for first in range(0, events, 200_000):
            records = [
                (tenant_id, METERS[n % 4], f"c{n}", Decimal(n % 9), start + step * n)
                for n in range(first, min(events, first + 200_000))
            ]
            await raw.copy_records_to_table(
                "usage_events",
                schema_name="platform",
                records=records,
                columns=["tenant_id", "meter", "key", "quantity", "at"],
            )
    loaded = time.perf_counter() - began
    began = time.perf_counter()
    while True:
        async with db.engine.begin() as conn:
            if not await roll_up(conn, 50_000):  # as the job does, within a statement timeout
                break
    rolled = time.perf_counter() - began
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE platform.usage_events"))
        await conn.execute(text("ANALYZE platform.usage_rollups"))
    period = month_of(datetime.now(UTC))
    timings = []
    async with db.engine.connect() as conn:
        for _ in range(queries):
            t0 = time.perf_counter()
            await period_usage(conn, tenant_id, *period)
            timings.append(time.perf_counter() - t0)
            await conn.rollback()
    timings.sort()
    p50, p95 = timings[len(timings) // 2], timings[int(len(timings) * 0.95)]
    print(
        f"current usage with {events:,} events: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms "
        f"over {queries} queries (goal p95 < 200 ms); loaded by COPY in {loaded:.0f} s, "
        f"folded into hours in {rolled:.0f} s"
    )


async def main(args: argparse.Namespace, url: str) -> None:
    db = Database(url)
    async with db.sessionmaker.begin() as session:
        batch = (await create_tenant(session, "bench-batch", "Bench")).tenant
        big = (await create_tenant(session, "bench-big", "Bench")).tenant
    await batch_rate(db, batch.id, args.batch_events)
    await request_cost(db, batch.id, batch.slug, args.rounds)
    await current_usage_p95(db, big.id, args.events, args.queries)
    await db.dispose()


if __name__ == "__main__":
    parser = _cli.parser(__doc__)
    parser.add_argument("--batch-events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    quick = {"batch_events": 20_000, "rounds": 50, "events": 50_000, "queries": 20}
    arguments = _cli.parse(parser, quick)
    with services() as found:
        print(f"{os.cpu_count()} cores, shared by this process and PostgreSQL")
        asyncio.run(main(arguments, found.database_url))
