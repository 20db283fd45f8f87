"""Tenancy figures (issue 3), printed.

1. Signup latency over the API (POST /v1/tenants, in-process ASGI), p50/p95, from the warm
   pool and cold (pool empty).
2. `bpo migrate` over N tenant schemas (default 1,000) through a sample revision with two
   operations (create a table, create an index), and the `--check` drift report after the
   signups and at N schemas (a straight line through both extrapolates to 10,000).
3. Throughput of one tenant-scoped read (primary-key lookup) through routing +
   SET LOCAL ROLE across N tenants, against the same read on one tenant and the same query
   with no routing at all (owner role, schema named in the SQL).
4. Backend memory (sum of pg_backend_memory_contexts) after one connection has served
   N tenants, without the recycling guard and with it.

The signups are made by a staff admin (a bearer token, as the tenant API requires).

Usage: python benchmarks/tenancy.py [--tenants 1000] [--signups 100] [--seconds 5]
                                    [--guard 200] [--warmup 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli
from benchmarks._services import services
from litestar.testing import AsyncTestClient
from sqlalchemy import Column, Integer, MetaData, Table, Text, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from tests.conftest import TEST_SECRET_KEY, drop_tenant_objects
from tests.support.auth import bearer, staff_admin_token

from bpo.app import create_app
from bpo.core.db import Database, DatabaseOptions
from bpo.core.migrations import migrations_root
from bpo.core.models import TENANT_PLACEHOLDER
from bpo.core.tenancy import (
    DEFAULT_TENANTS_PER_CONNECTION,
    TenantContext,
    issue_tenant_context,
    recycle_after_tenants,
    tenant_session,
)
from bpo.core.tenant_migrations import check_drift, tenant_head, upgrade_tenants
from bpo.platform.models import Tenant
from bpo.platform.tenants.provisioning import fill_pool
from bpo.platform.tenants.service import create_tenant
from bpo.settings import Settings

SAMPLE_REVISION = '''"""bench: ledger notes (a table and an index)

Revision ID: tbench1
Revises: {down}
"""
import sqlalchemy as sa
from alembic import op

revision = "tbench1"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        schema="tenant",
    )
    op.create_index("ix_notes_body", "notes", ["body"], schema="tenant")


def downgrade():
    op.drop_table("notes", schema="tenant")
'''

NOTES = Table(
    "notes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("body", Text),
    schema=TENANT_PLACEHOLDER,
)
READ = select(NOTES.c.body).where(NOTES.c.id == 1)


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def signups(settings: Settings, db: Database, count: int) -> list[TenantContext]:
    """`count` warm signups, then `count` cold ones, over the API. Prints p50/p95."""
    app = create_app(dataclasses.replace(settings, tenant_pool_size=0))
    made: list[TenantContext] = []
    await fill_pool(db.engine, count)
    async with AsyncTestClient(app=app) as client:
        client.headers.update(bearer(await staff_admin_token(db, settings)))
        for label in ("warm-pool", "cold"):
            latencies = []
            for i in range(count):
                slug = f"{label[:4]}-{i:05d}"
                started = time.perf_counter()
                response = await client.post("/v1/tenants", json={"slug": slug, "name": slug})
                latencies.append((time.perf_counter() - started) * 1000)
                body = response.json()
                assert response.status_code == 201, response.text
                assert body["provisioned_from"] == label, body
                made.append(issue_tenant_context(uuid.UUID(body["id"]), slug))
            print(
                f"signup {label:9s} n={count}: p50 {pct(latencies, 0.5):6.1f} ms  "
                f"p95 {pct(latencies, 0.95):6.1f} ms  max {max(latencies):6.1f} ms"
            )
    return made


async def bulk_create(db: Database, start: int, stop: int, parallel: int = 4) -> None:
    """More tenants for the scale figures, `parallel` signups at a time (not a reported figure)."""
    queue = list(range(start, stop))

    async def one_worker() -> None:
        while queue:
            i = queue.pop()
            async with db.sessionmaker.begin() as session:
                await create_tenant(session, f"bulk-{i:05d}", f"Bulk {i}")

    await asyncio.gather(*(one_worker() for _ in range(parallel)))


async def all_tenants(db: Database) -> list[TenantContext]:
    async with db.sessionmaker() as session:
        rows = (await session.execute(select(Tenant.id, Tenant.slug))).all()
    return [issue_tenant_context(tenant_id, slug) for tenant_id, slug in rows]


async def time_check(engine: AsyncEngine, location: Path | None, rounds: int = 5) -> float:
    """Best of `rounds` of the full drift report (what `bpo migrate --check` runs)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        report = await check_drift(engine, location)
        best = min(best, time.perf_counter() - started)
        assert not report.tenants_behind, "every schema should be at head here"
    return best


async def seed_one_row_each(engine: AsyncEngine, tenants: list[TenantContext]) -> None:
    async with engine.begin() as conn:
        for ctx in tenants:
            await conn.exec_driver_sql(f"INSERT INTO \"{ctx.schema}\".notes VALUES (1, 'note')")


async def throughput(
    label: str, seconds: float, workers: int, one_read: Callable[[], Awaitable[None]]
) -> float:
    deadline = time.perf_counter() + seconds
    done = 0

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one_read()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(workers)))
    rate = done / (time.perf_counter() - started)
    print(f"  {label:44s} {rate:8.0f} reads/s")
    return rate


async def routing(
    url: str, tenants: list[TenantContext], seconds: float, guard: int, warmup: float
) -> None:
    workers = 8
    print(f"tenant-scoped read, {workers} concurrent callers, pool of {workers}, {seconds:g} s:")

    def fresh(recycle: int | None, statements: int | None) -> Database:
        options = DatabaseOptions(pool_size=workers, max_overflow=0)
        if statements:  # otherwise the app's default
            options = dataclasses.replace(options, statement_cache_size=statements)
        db = Database(url, options)
        if recycle:
            recycle_after_tenants(db.engine, recycle)
        return db

    async def routed(db: Database, pick: Callable[[], TenantContext]) -> None:
        async with tenant_session(db.engine, pick()) as session:
            (await session.execute(READ)).scalar()

    one = tenants[0]
    fixed = NOTES.to_metadata(MetaData(), schema=one.schema)
    plain_read = select(fixed.c.body).where(fixed.c.id == 1)

    async def unrouted(db: Database) -> None:
        async with AsyncSession(db.engine) as session, session.begin():
            (await session.execute(plain_read)).scalar()

    rates = {}
    n, cache = len(tenants), 100
    for name, recycle, read, statements in (
        ("no routing (owner, schema in SQL)", None, "none", None),
        ("routed, one tenant", guard, "one", None),
        (f"routed, {n} tenants, recycle@{guard}", guard, "many", None),
        (f"routed, {n} tenants, no recycling", None, "many", None),
        (f"routed, {n} tenants, no recycling, {cache}-statement cache", None, "many", cache),
    ):
        db = fresh(recycle, statements)
        try:
            if read == "one":
                work = lambda db=db: routed(db, lambda: one)  # noqa: E731
            elif read == "many":
                work = lambda db=db: routed(db, lambda: random.choice(tenants))  # noqa: E731
            else:
                work = lambda db=db: unrouted(db)  # noqa: E731
            # Warm-up: connections, catalog caches, prepared statements. Without recycling,
            # every connection must first meet every tenant (steady state takes longer).
            long = read == "many" and not recycle and statements is None
            warm = warmup if long else min(1.0, warmup)
            await throughput(name + " (warm-up)", warm, workers, work)
            rates[name] = await throughput(name, seconds, workers, work)
        finally:
            await db.dispose()
    base, one_rate, *_ = rates.values()
    for name, rate in list(rates.items())[2:]:
        print(
            f"  {name}: {rate / one_rate:.2f} of one tenant (goal >= 0.6), "
            f"{rate / base:.2f} of no routing (goal >= 0.85)"
        )
    print(f"  routed one tenant: {one_rate / base:.2f} of no routing")


MEMORY = text("SELECT sum(total_bytes) FROM pg_backend_memory_contexts")


async def memory(url: str, tenants: list[TenantContext], guard: int) -> None:
    """One connection serves every tenant in turn; read its backend's memory as it goes."""
    db = Database(url, DatabaseOptions(pool_size=1, max_overflow=0))
    try:
        async with db.engine.connect() as conn:
            start = int((await conn.execute(MEMORY)).scalar() or 0)
        marks: dict[int, int] = {}
        for n, ctx in enumerate(tenants, 1):
            async with tenant_session(db.engine, ctx) as session:
                (await session.execute(READ)).scalar()
            if n in (guard, len(tenants)):
                # The same backend (pool of one), back as the owner: the view needs it.
                async with db.engine.connect() as conn:
                    marks[n] = int((await conn.execute(MEMORY)).scalar() or 0)
    finally:
        await db.dispose()
    mb = 1024 * 1024
    at_guard, total = marks[guard], marks[len(tenants)]
    print(
        f"backend memory: fresh {start / mb:.1f} MB; after {guard} "
        f"tenants {at_guard / mb:.1f} MB (the guard recycles here); after {len(tenants)} tenants "
        f"without the guard {total / mb:.1f} MB (goal < 64 MB); "
        f"{(total - start) / len(tenants) / 1024:.1f} KB per tenant touched (one table)"
    )


async def run(url: str, broker_url: str, args: argparse.Namespace) -> None:
    tenants, seconds = args.tenants, args.seconds
    settings = dataclasses.replace(
        Settings.from_env({}).with_services(url, broker_url),
        secret_key=TEST_SECRET_KEY,
        log_level="WARNING",
    )
    db = Database(url)
    try:
        made = len(await signups(settings, db, args.signups))
        small = await time_check(db.engine, None)
        started = time.perf_counter()
        await bulk_create(db, made, tenants)
        print(f"(made {tenants - made} more tenants in {time.perf_counter() - started:.0f} s)")
        big = await time_check(db.engine, None)
        per = (big - small) / (tenants - made)
        print(
            f"migrate --check (drift report, change nothing): {small * 1000:.0f} ms at {made}, "
            f"{big * 1000:.0f} ms at {tenants} schemas (goal < 500 ms); "
            f"extrapolated to 10,000: {(big + per * (10_000 - tenants)) * 1000:.0f} ms"
        )

        folder = Path(tempfile.mkdtemp(prefix="bpo-bench-track-"))
        try:
            track = folder / "tenant"
            shutil.copytree(migrations_root() / "tenant", track)
            (track / "versions" / "tbench1_notes.py").write_text(
                SAMPLE_REVISION.format(down=tenant_head())
            )
            report = await upgrade_tenants(db.engine, location=track)
            assert report.ok and len(report.upgraded) == report.total, report.failed
            print(
                f"migrate {len(report.upgraded)} tenant schemas through a two-operation "
                f"revision: {report.seconds:.1f} s (goal < 15 s), "
                f"{report.seconds / len(report.upgraded) * 1000:.1f} ms per schema"
            )
            started = time.perf_counter()
            again = await upgrade_tenants(db.engine, location=track)
            print(
                f"re-run with all {again.already_at_head} at head: "
                f"{(time.perf_counter() - started) * 1000:.0f} ms (one catalog query, no work)"
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)

        everyone = await all_tenants(db)
        await seed_one_row_each(db.engine, everyone)
        await routing(url, everyone, seconds, args.guard, args.warmup)
        await memory(url, everyone, args.guard)
    finally:
        started = time.perf_counter()
        await drop_tenant_objects(db)  # roles are cluster-wide: dropping the database is not enough
        print(f"(dropped every tenant schema and role in {time.perf_counter() - started:.0f} s)")
        await db.dispose()


def main() -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    parser = _cli.parser(__doc__)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--signups", type=int, default=100, help="warm ones, then as many cold")
    parser.add_argument("--seconds", type=float, default=5.0, help="per read variant")
    parser.add_argument(
        "--guard",
        type=int,
        default=DEFAULT_TENANTS_PER_CONNECTION,
        help="tenants a connection serves before the recycling guard closes it",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=20.0,
        help="seconds of warm-up without recycling (each connection meets every tenant)",
    )
    quick = {"tenants": 30, "signups": 5, "seconds": 0.5, "guard": 10, "warmup": 0.5}
    args = _cli.parse(parser, quick)
    if args.tenants <= max(args.guard, 2 * args.signups):
        parser.error("--tenants must be more than --guard and twice --signups")
    with services() as svc:
        print(f"database: {'embedded' if svc.embedded else 'external'} PostgreSQL")
        asyncio.run(run(svc.database_url, svc.broker_url, args))


if __name__ == "__main__":
    main()
