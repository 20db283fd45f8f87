"""Work-queue figures (issue 7), printed.

1. Claims: C concurrent claimers (default 50) take tasks from one hot queue of N open tasks
   (default 10,000) through the real claim-next path, as fast as they can (closed loop):
   claims per second, claim p50/p95/p99, and double claims (goal >= 1,000 claims/s, p95 < 50
   ms, 0 doubles), beside a bare SKIP LOCKED claim (BEGIN, one UPDATE, COMMIT on asyncpg) by
   as many claimers on an equal queue in the same run. This process is the API process: the
   claims run on uvloop, as `bpo serve` runs them.
   Before that, the same claimers paced (each claims, then works for a random time
   averaging --think ms): the latency a staff member sees on a busy, unsaturated queue.
2. Inbox: one staff member assigned to T tenants (default 200) holding O open tasks
   (default 100,000) in all: p50/p95 of the inbox query on the queue index, against the
   alternative it replaces (visiting the assigned tenants' schemas one by one).

Usage: python benchmarks/work.py [--claims 10000] [--claimers 50] [--think 1000]
                                 [--tenants 200] [--others 50] [--open 100000] [--queries 200]
                                 [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvloop
from benchmarks import _cli
from benchmarks._services import services
from sqlalchemy import select, text
from tests.support.bulk_work import seed_open_tasks, staff_principal
from tests.support.work import service_in

from bpo.core.db import Database, DatabaseOptions
from bpo.core.tenancy import (
    TenantContext,
    issue_tenant_context,
    tenant_connection,
    tenant_session,
)
from bpo.identity.models import StaffAssignment, User
from bpo.platform.tenants.service import create_tenant
from bpo.work import queue
from bpo.work.catalog import create_service
from bpo.work.claims import claim_next
from bpo.work.models import StaffProfile, Task

LEASE = timedelta(minutes=30)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def make_staff(db: Database, tenants: list[TenantContext], count: int) -> list[uuid.UUID]:
    ids = []
    async with db.sessionmaker.begin() as session:
        for _ in range(count):
            user = User(email=f"{uuid.uuid4().hex[:12]}@bench.example", password_hash="x",
                        staff_role="staff")  # fmt: skip
            session.add(user)
            await session.flush()
            session.add(StaffProfile(user_id=user.id, skills=["accounting"], capacity=1000))
            session.add_all(
                StaffAssignment(user_id=user.id, tenant_id=t.tenant_id) for t in tenants
            )
            ids.append(user.id)
    return ids


async def new_tenant(db: Database, slug: str) -> TenantContext:
    async with db.sessionmaker.begin() as session:
        created = (await create_tenant(session, slug, slug)).tenant
    return issue_tenant_context(created.id, slug)


async def analyze(db: Database, tenants: list[TenantContext]) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE platform.work_queue"))
        for t in tenants:
            await conn.execute(text(f'ANALYZE "{t.schema}".tasks'))


async def claims(db_url: str, db: Database, args: argparse.Namespace) -> None:
    hot = await new_tenant(db, "hot-queue")
    async with tenant_session(db.engine, hot) as session:
        await seed_open_tasks(session, hot.tenant_id, args.claims)
    await analyze(db, [hot])
    staff = await make_staff(db, [hot], args.claimers)
    pool = Database(db_url, DatabaseOptions(pool_size=args.claimers, max_overflow=0))
    taken: list[uuid.UUID] = []
    latencies: list[float] = []

    async def claimer(user_id: uuid.UUID, limit: int | None, think: float) -> None:
        """Claims until `limit` (or the queue is empty); between claims a think time drawn
        uniformly from 0 to twice `think`, after a random start, as unsynchronised people."""
        principal = staff_principal(user_id)
        jitter = random.Random(user_id.int)
        if think:
            await asyncio.sleep(jitter.uniform(0, think))
        done = 0
        while limit is None or done < limit:
            began = time.perf_counter()
            found = await claim_next(pool, principal, LEASE)
            latencies.append(time.perf_counter() - began)
            if found is None:
                return
            taken.append(found[0].id)
            done += 1
            if think:
                await asyncio.sleep(jitter.uniform(0, 2 * think))

    paced = max(1, args.claims // 5 // args.claimers)  # a fifth of the queue, paced
    began = time.perf_counter()
    await asyncio.gather(*(claimer(s, paced, args.think / 1000) for s in staff))
    paced_elapsed, paced_lat = time.perf_counter() - began, list(latencies)
    latencies.clear()
    began = time.perf_counter()
    await asyncio.gather(*(claimer(s, None, 0) for s in staff))
    elapsed = time.perf_counter() - began
    await pool.dispose()
    doubles = sum(n - 1 for n in Counter(taken).values() if n > 1)
    print(f"claims: {len(taken):,} of {args.claims:,} tasks, {args.claimers} claimers, "
          f"double claims {doubles}")  # fmt: skip
    print(f"  paced (on average {args.think:.0f} ms between claims): {len(paced_lat):,} claims in "
          f"{paced_elapsed:.1f} s = {len(paced_lat) / paced_elapsed:,.0f}/s; "
          f"p50 {pct(paced_lat, .5) * 1000:.1f} ms, p95 {pct(paced_lat, .95) * 1000:.1f} ms, "
          f"p99 {pct(paced_lat, .99) * 1000:.1f} ms")  # fmt: skip
    bare = await bare_claims(db_url, db, args)
    print(f"  closed loop: {len(latencies):,} claims in {elapsed:.1f} s = "
          f"{len(latencies) / elapsed:,.0f}/s; p50 {pct(latencies, .5) * 1000:.1f} ms, "
          f"p95 {pct(latencies, .95) * 1000:.1f} ms, "
          f"p99 {pct(latencies, .99) * 1000:.1f} ms (goal >= 1,000/s, p95 < 50 ms)")  # fmt: skip
    rate = len(latencies) / elapsed
    print(f"  bare SKIP LOCKED claim, same claimers, same kind of queue: {bare[0]:,.0f}/s, "
          f"p95 {bare[1] * 1000:.1f} ms; claim-next at {rate / bare[0]:.2f} of it")  # fmt: skip


_BARE_CLAIM = (
    "UPDATE tasks SET status = 'in_progress', claimed_by = $1,"
    " lease_until = now() + interval '30 minutes'"
    " WHERE id = (SELECT id FROM tasks WHERE status = 'open' ORDER BY id LIMIT 1"
    " FOR UPDATE SKIP LOCKED) RETURNING id"
)


async def bare_claims(db_url: str, db: Database, args: argparse.Namespace) -> tuple[float, float]:
    """The floor: the same number of claimers taking tasks from an equal queue with nothing
    but BEGIN (role and schema set), one SKIP LOCKED update and COMMIT on bare asyncpg."""
    floor = await new_tenant(db, "bare-queue")
    async with tenant_session(db.engine, floor) as session:
        await seed_open_tasks(session, floor.tenant_id, args.claims)
    await analyze(db, [floor])
    pool = Database(db_url, DatabaseOptions(pool_size=args.claimers, max_overflow=0))
    latencies: list[float] = []

    async def claimer(user_id: uuid.UUID) -> None:
        while True:
            began = time.perf_counter()
            async with tenant_connection(pool.engine, floor) as conn:
                found = await conn.fetchval(_BARE_CLAIM, user_id)
            latencies.append(time.perf_counter() - began)
            if found is None:
                return

    began = time.perf_counter()
    await asyncio.gather(*(claimer(uuid.uuid4()) for _ in range(args.claimers)))
    elapsed = time.perf_counter() - began
    await pool.dispose()
    return len(latencies) / elapsed, pct(latencies, 0.95)


async def inbox(db: Database, args: argparse.Namespace) -> None:
    tenants = [await new_tenant(db, f"firm-{n:04d}") for n in range(args.tenants + args.others)]
    async with db.sessionmaker.begin() as session:
        await create_service(session, service_in())
    per_tenant = args.open // len(tenants)
    for n, tenant in enumerate(tenants):
        async with tenant_session(db.engine, tenant) as session:
            await seed_open_tasks(session, tenant.tenant_id, per_tenant, seed=n)
    await analyze(db, tenants)
    assigned = tenants[: args.tenants]
    (staff_id,) = await make_staff(db, assigned, 1)
    async with db.autocommit() as conn:
        viewer = await queue.viewer(conn, staff_id, admin=False)
    indexed: list[float] = []
    async with db.autocommit() as conn:
        for _ in range(args.queries):
            began = time.perf_counter()
            rows, _ = await queue.inbox(conn, viewer, limit=50)
            indexed.append(time.perf_counter() - began)
    assert len(rows) == 50
    if os.environ.get("BPO_BENCH_EXPLAIN"):
        async with db.autocommit() as conn:
            plan = await conn.execute(
                text("EXPLAIN ANALYZE " + queue._inbox_sql(viewer.scope, False, (), 50).text),
                queue.params_of(viewer),
            )
            print("\n".join(r[0] for r in plan))
    (single_id,) = await make_staff(db, assigned[:1], 1)
    single: list[float] = []
    async with db.autocommit() as conn:
        one_tenant = await queue.viewer(conn, single_id, admin=False)
        for _ in range(args.queries):
            began = time.perf_counter()
            await queue.inbox(conn, one_tenant, limit=50)
            single.append(time.perf_counter() - began)
    visited: list[float] = []
    for _ in range(max(3, args.queries // 40)):
        began = time.perf_counter()
        merged = []
        for tenant in assigned:
            async with tenant_session(db.engine, tenant) as session:
                merged += (
                    await session.execute(
                        select(Task.id, Task.response_due_at, Task.priority)
                        .where(Task.status == "open")
                        .order_by(Task.response_due_at, Task.priority.desc())
                        .limit(50)
                    )
                ).all()
        merged.sort(key=lambda r: (r.response_due_at, -r.priority))
        visited.append(time.perf_counter() - began)
    print(f"inbox: staff assigned to {len(assigned)} of {len(tenants)} tenants, "
          f"{per_tenant * len(tenants):,} open tasks in all")  # fmt: skip
    print(f"  queue index: p50 {pct(indexed, .5) * 1000:.2f} ms, "
          f"p95 {pct(indexed, .95) * 1000:.2f} ms ({args.queries} queries)")  # fmt: skip
    print(f"  a member assigned to one tenant: p50 {pct(single, .5) * 1000:.2f} ms, "
          f"p95 {pct(single, .95) * 1000:.2f} ms")  # fmt: skip
    print(f"  visiting {len(assigned)} schemas one by one: p50 "
          f"{statistics.median(visited) * 1000:.0f} ms "
          f"({statistics.median(visited) / statistics.median(indexed):,.0f}x the index)"
          )  # fmt: skip


async def main(args: argparse.Namespace, url: str) -> None:
    db = Database(url)
    try:
        async with db.sessionmaker.begin() as session:
            await create_service(session, service_in("hot-service"))
        if args.claims:
            await claims(url, db, args)
        if args.open:
            await inbox(db, args)
    finally:
        await db.dispose()


if __name__ == "__main__":
    parser = _cli.parser(__doc__)
    parser.add_argument("--claims", type=int, default=10_000)
    parser.add_argument("--claimers", type=int, default=50)
    parser.add_argument("--think", type=float, default=1000.0, help="ms between paced claims")
    parser.add_argument("--tenants", type=int, default=200, help="assigned to the staff member")
    parser.add_argument("--others", type=int, default=50, help="tenants not assigned to them")
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    quick = {"claims": 300, "claimers": 10, "think": 20.0, "tenants": 10, "others": 10}
    arguments = _cli.parse(parser, {**quick, "open": 2_000, "queries": 20})
    with services() as found:
        print(f"{os.cpu_count()} cores, shared by this process and PostgreSQL")
        uvloop.run(main(arguments, found.database_url))  # the loop `bpo serve` runs on
