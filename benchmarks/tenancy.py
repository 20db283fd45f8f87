"""Tenancy figures (issues 3 and 25), printed.

1. Signup latency over the API (POST /v1/tenants, in-process ASGI), p50/p95, from the warm
   pool and cold (pool empty). Then, with --paced-seconds, signups at a steady --rate (10/s)
   against a real `bpo serve`, open loop (each timed from its scheduled start): first with a
   `bpo worker` beside it topping the warm pool up through its real job
   (`refill_tenant_pool`, enqueued by every signup; pool of --pool-size), then with no
   worker, so the pool runs dry and signups go cold. p50/p95/max per provenance. And, once
   the bulk tenants exist (item 2), --scale-signups cold signups and as many warm-pool
   schemas built as the refill job builds them, timed at that size.
2. `bpo migrate` over N tenant schemas (default 1,000) through a sample revision with two
   operations (create a table, create an index), once per --concurrency (worker processes;
   each through a revision of its own), with the peak RSS (VmHWM) of every migrating
   process; and the `--check` drift report after the signups and at N schemas, measured
   (and, below 10,000, extrapolated to 10,000 by a straight line through both), in process
   and as the `bpo migrate --check` command (its Python start-up included), with the
   `bpo migrate` command's no-op run.
3. Throughput of one tenant-scoped read (primary-key lookup) through routing +
   SET LOCAL ROLE across N tenants, against the same read on one tenant and the same query
   with no routing at all (owner role, schema named in the SQL).
4. Backend memory (sum of pg_backend_memory_contexts) after one connection has served
   N tenants, without the recycling guard and with it.

The signups are made by a staff admin (a bearer token, as the tenant API requires).
--parts picks figures (reads: 3 and 4, which need migrate's table). Set-up, not figures:
past the first, the bulk tenants are clones of a `create_tenant` schema (see bulk_create;
--no-clone for the real path, hours at 10,000), and at the end the schemas go with the
database, then the roles are dropped (one tenant at a time took 0.1-0.5 s each here).

Usage: python benchmarks/tenancy.py [--tenants 1000] [--signups 100] [--seconds 5]
                                    [--guard 200] [--warmup 20] [--concurrency 2 4]
                                    [--paced-seconds 60] [--rate 10] [--pool-size 5]
                                    [--parts signups migrate reads] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli
from benchmarks._identity import server_env
from benchmarks._load import content_length, free_port, spawned
from benchmarks._services import services
from litestar.testing import AsyncTestClient
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from tests.conftest import TEST_SECRET_KEY
from tests.support.auth import bearer, staff_admin_token

from bpo.app import create_app
from bpo.core.db import Database, DatabaseOptions, asyncpg_dsn
from bpo.core.ids import uuid7
from bpo.core.migrations import migrations_root
from bpo.core.models import TENANT_PLACEHOLDER
from bpo.core.tenancy import (
    DEFAULT_TENANTS_PER_CONNECTION,
    TENANTS_GROUP_ROLE,
    TenantContext,
    issue_tenant_context,
    recycle_after_tenants,
    role_name,
    schema_name,
    tenant_session,
)
from bpo.core.tenant_migrations import (
    DEFAULT_CONCURRENCY,
    check_drift,
    tenant_head,
    upgrade_tenants,
)
from bpo.platform.models import Tenant
from bpo.platform.tenants.provisioning import fill_pool, pool_size
from bpo.platform.tenants.service import create_tenant
from bpo.settings import Settings

SAMPLE_REVISION = '''"""bench: ledger notes (a table and an index)

Revision ID: {rev}
Revises: {down}
"""
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "{table}",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        schema="tenant",
    )
    op.create_index("ix_{table}_body", "{table}", ["body"], schema="tenant")


def downgrade():
    op.drop_table("{table}", schema="tenant")
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


async def bulk_create(
    db: Database, url: str, start: int, stop: int, parallel: int = 4, clone: bool = True
) -> str:
    """More tenants for the scale figures, `parallel` at a time (not a reported figure).

    The first through `create_tenant`; with `clone`, the others copy its schema as pg_dump
    writes it (tables, indexes, comment, default privileges, and grants naming each table),
    the hex of the tenant id replaced, plus its role, Alembic stamp and registry row: the
    same objects `create_tenant` makes. Not through `create_tenant` because its grants
    (`GRANT … ON ALL TABLES IN SCHEMA`) scan all of pg_class, which grows ~150 rows a
    tenant: 10,000 signups one after another would take hours. Returns how they were made."""
    if start >= stop:
        return "none needed"
    async with db.sessionmaker.begin() as session:
        first = (await create_tenant(session, f"bulk-{start:05d}", f"Bulk {start}")).tenant
    template = _dump_schema(url, schema_name(first.id)) if clone else None
    if template is None:
        how = "create_tenant one by one"
    else:
        how = "cloned from a create_tenant schema (pg_dump)"
    queue = list(range(start + 1, stop))
    began, total = time.perf_counter(), len(queue)
    superuser = await _is_superuser(db)

    async def one_worker() -> None:
        while queue:
            i = queue.pop()
            slug, name = f"bulk-{i:05d}", f"Bulk {i}"
            if template is None:
                async with db.sessionmaker.begin() as session:
                    await create_tenant(session, slug, name)
            else:
                await _clone_tenant(db, template, first.id, slug, name, superuser)
            if (left := len(queue)) and left % 1000 == 0:
                done = total - left
                print(f"  ({done:,} of {total:,} made, {time.perf_counter() - began:.0f} s)")

    await asyncio.gather(*(one_worker() for _ in range(parallel)))
    return how


def _dump_schema(url: str, schema: str) -> str | None:
    """The schema's DDL and grants as pg_dump writes them, or None without pg_dump."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return None
    dsn = asyncpg_dsn(url)
    done = subprocess.run(
        [pg_dump, "--schema-only", "--no-owner", "-n", schema, dsn],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"(pg_dump failed, creating tenants one by one: {done.stderr.strip()[:300]})")
        return None
    lines = []
    for line in done.stdout.splitlines():
        if line.startswith("\\"):  # psql meta-commands (newer pg_dump)
            continue
        # Its settings, for this transaction only (not left on a pooled connection).
        if line.startswith("SET "):
            line = "SET LOCAL " + line[4:]
        line = line.replace(
            "set_config('search_path', '', false)", "set_config('search_path', '', true)"
        )
        lines.append(line)
    return "\n".join(lines)


async def _is_superuser(db: Database) -> bool:
    async with db.engine.connect() as conn:
        sql = text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        return bool(await conn.scalar(sql))


async def _clone_tenant(
    db: Database, template: str, template_id: uuid.UUID, slug: str, name: str, superuser: bool
) -> None:
    tenant_id = uuid7()
    old_hex, new_hex = template_id.hex, tenant_id.hex
    schema, role = schema_name(tenant_id), role_name(tenant_id)
    statements = [f'CREATE ROLE "{role}" NOLOGIN IN ROLE {TENANTS_GROUP_ROLE}']
    if not superuser:
        statements.append(f'GRANT "{role}" TO CURRENT_USER')
    statements.append(template.replace(old_hex, new_hex))
    statements.append(f"INSERT INTO \"{schema}\".alembic_version VALUES ('{tenant_head()}')")
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute(";\n".join(statements))
        await conn.execute(
            insert(Tenant).values(id=tenant_id, slug=slug, name=name, status="active")
        )


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


# --- signups at a steady pace, against a real server, the pool refilled beside them ------------


def _signup_request(port: int, token: str, slug: str) -> bytes:
    body = json.dumps({"slug": slug, "name": slug}).encode()
    head = (
        f"POST /v1/tenants HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _paced_phase(
    port: int, token: str, label: str, seconds: float, rate: float, engine: AsyncEngine
) -> tuple[list[tuple[float, str]], list[int]]:
    """`rate` signups a second for `seconds`, open loop: each is timed from its scheduled
    start (a late server shows as latency, not as a slower pace). Returns (ms, provenance)
    per signup and the pool's size sampled every 0.2 s."""
    connections = asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]()
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    for pair in opened:
        connections.put_nowait(pair)
    results: list[tuple[float, str]] = []
    sizes: list[int] = []
    done = asyncio.Event()

    async def one(n: int, scheduled: float) -> None:
        reader, writer = await connections.get()
        try:
            writer.write(_signup_request(port, token, f"{label}-{n:05d}"))
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(content_length(head))
        finally:
            connections.put_nowait((reader, writer))
        took = (time.perf_counter() - scheduled) * 1000
        if not head.startswith(b"HTTP/1.1 201"):
            raise RuntimeError(f"signup refused: {head.decode()} {body[:300]!r}")
        results.append((took, json.loads(body)["provisioned_from"]))

    async def watch_pool() -> None:
        while not done.is_set():
            sizes.append(await pool_size(engine))
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch_pool())
    tasks = []
    begin = time.perf_counter()
    for n in range(int(seconds * rate)):
        scheduled = begin + n / rate
        if (delay := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, scheduled)))
    try:
        await asyncio.gather(*tasks)
    finally:
        done.set()
        await watcher
        for _, writer in opened:
            writer.close()
    return results, sizes


def _latency_line(label: str, results: list[tuple[float, str]], wanted: str) -> str:
    took = [ms for ms, origin in results if origin == wanted]
    if not took:
        return f"  {label}: no {wanted} signup"
    return (
        f"  {label}: {len(took)} {wanted}: p50 {pct(took, 0.5):6.1f} ms  "
        f"p95 {pct(took, 0.95):6.1f} ms  p99 {pct(took, 0.99):6.1f} ms  max {max(took):6.1f} ms"
    )


def _start_worker(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "bpo", "worker"]
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


async def paced_signups(url: str, broker_url: str, db: Database, args: argparse.Namespace) -> int:
    """Returns how many tenants it made."""
    port, namespace = free_port(), f"bpo-bench-{uuid.uuid4().hex[:8]}"
    env = server_env(url, broker_url, TEST_SECRET_KEY, port)
    env.update(
        BPO_BROKER_NAMESPACE=namespace,
        BPO_TENANT_POOL_SIZE=str(args.pool_size),
        BPO_WORKER_SCHEDULER="false",
        BPO_DB_POOL_SIZE="8",
    )
    token = await staff_admin_token(db, Settings.from_env(env))
    await fill_pool(db.engine, args.pool_size)  # what a worker does when it starts
    made = 0
    print(
        f"signups paced at {args.rate:g}/s for {args.paced_seconds:g} s each phase, one "
        f"`bpo serve`, 4 keep-alive connections, open loop (timed from each scheduled start):"
    )
    with spawned([sys.executable, "-m", "bpo", "serve"], env, port, "/health/ready"):
        with tempfile.TemporaryFile() as log:
            worker = _start_worker(env, log)
            try:
                results, sizes = await _paced_phase(
                    port, token, "paced", args.paced_seconds, args.rate, db.engine
                )
            finally:
                worker.terminate()
                worker.wait(30)
                if worker.returncode not in (0, -15):
                    log.seek(0)
                    print(log.read().decode(errors="replace")[-2000:])
        made += len(results)
        warm = sum(1 for _, origin in results if origin == "warm-pool")
        print(
            f"  with a worker refilling the pool (size {args.pool_size}, refill_tenant_pool "
            f"after every signup): {warm} of {len(results)} from the warm pool; pool size "
            f"min {min(sizes)}, mean {statistics.mean(sizes):.1f} over {len(sizes)} samples"
        )
        print(_latency_line("refilling", results, "warm-pool") + " (goal p95 < 10 ms)")
        if warm < len(results):
            print(_latency_line("refilling", results, "cold"))
        results, _ = await _paced_phase(
            port, token, "paced-cold", args.paced_seconds, args.rate, db.engine
        )
        made += len(results)
        print(_latency_line("no worker, pool dry", results, "cold") + " (goal p95 < 50 ms)")
        print(_latency_line("no worker (the pool's last schemas)", results, "warm-pool"))
    return made


# --- migrations: check, the command, and the processes' memory ---------------------------------


def _status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children(parent: int, marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                continue
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@contextmanager
def child_peaks(marker: str = "spawn_main") -> Iterator[dict[int, int]]:
    """Peak RSS (VmHWM, KB) of this process's children whose command line has `marker` (the
    migration's spawned workers), sampled every 0.1 s while the block runs."""
    peaks: dict[int, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while True:
            for pid in _children(os.getpid(), marker):
                if (kb := _status_kb(pid, "VmHWM")) is not None:
                    peaks[pid] = max(kb, peaks.get(pid, 0))
            if stop.wait(0.1):
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


def bpo_command(url: str, *argv: str) -> tuple[float, int, str]:
    """`bpo <argv>` in a new process: wall seconds, exit status, output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env.update(BPO_DATABASE_URL=url, BPO_LOG_LEVEL="WARNING")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bpo", *argv], env=env, capture_output=True, text=True
    )
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def python_start_up() -> float:
    """The same interpreter importing the CLI and doing nothing: the floor of any command."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import bpo.cli"], check=True)
    return time.perf_counter() - started


async def signups_at_scale(db: Database, count: int) -> None:
    """Cold signups (`create_tenant`, pool empty) and warm-pool schemas built as
    `refill_tenant_pool` builds them (`fill_pool`), among the tenants already there: both
    grant with `… ON ALL TABLES IN SCHEMA`, whose cost follows the size of pg_class."""
    async with db.engine.connect() as conn:
        there = int(await conn.scalar(text("SELECT count(*) FROM platform.tenants")) or 0)
        relations = int(await conn.scalar(text("SELECT count(*) FROM pg_class")) or 0)
    took = []
    for i in range(count):
        started = time.perf_counter()
        async with db.sessionmaker.begin() as session:
            created = await create_tenant(session, f"scale-cold-{i:03d}", "Scale")
        took.append((time.perf_counter() - started) * 1000)
        assert not created.from_pool
    started = time.perf_counter()
    added = await fill_pool(db.engine, count)
    fill = (time.perf_counter() - started) * 1000 / max(added, 1)
    print(
        f"at {there:,} tenants ({relations:,} rows in pg_class): cold signup (create_tenant, "
        f"in process) p50 {pct(took, 0.5):.0f} ms, max {max(took):.0f} ms over {count} "
        f"(goal p95 < 50 ms); a warm-pool schema as refill_tenant_pool builds it (fill_pool) "
        f"{fill:.0f} ms each over {added} (10 signups/s need < 100 ms)"
    )


async def check_figures(db: Database, url: str, made: int, tenants: int, small: float) -> None:
    big = await time_check(db.engine, None)
    line = (
        f"migrate --check (drift report, change nothing), in process, best of 5: "
        f"{small * 1000:.0f} ms at {made}, {big * 1000:.0f} ms at {tenants:,} schemas, measured "
        f"(goal at 10,000: < 1 s)"
    )
    if made < tenants < 10_000 and big > small:
        per = (big - small) / (tenants - made)
        line += f"; extrapolated to 10,000: {(big + per * (10_000 - tenants)) * 1000:.0f} ms"
    print(line)
    floor = python_start_up()
    seconds, code, out = bpo_command(url, "migrate", "--check")
    assert code == 0, out
    print(
        f"`bpo migrate --check` at {tenants:,} schemas: {seconds:.2f} s wall, of which Python "
        f"start-up and imports ~{floor:.2f} s (`python -c 'import bpo.cli'`)"
    )
    seconds, code, out = bpo_command(url, "migrate")
    assert code == 0, out
    print(f"`bpo migrate` with all {tenants:,} at head (no-op): {seconds:.2f} s wall")


async def migrate_figures(db: Database, concurrencies: list[int]) -> Path:
    """Each concurrency migrates every schema through a two-operation revision of its own.
    Returns the track folder (the reads need its first table; the caller removes it)."""
    folder = Path(tempfile.mkdtemp(prefix="bpo-bench-track-"))
    track, down = migrations_root() / "tenant", tenant_head()
    for n, concurrency in enumerate(concurrencies, 1):
        # A folder of its own per revision: the track's script directory is cached by path.
        track = Path(shutil.copytree(track, folder / f"tenant{n}"))
        rev, table = f"tbench{n}", "notes" if n == 1 else f"notes_{n}"
        (track / "versions" / f"{rev}_{table}.py").write_text(
            SAMPLE_REVISION.format(rev=rev, down=down, table=table)
        )
        down = rev
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        self_before = _status_kb(os.getpid(), "VmRSS") or 0
        with child_peaks() as peaks:
            report = await upgrade_tenants(db.engine, location=track, concurrency=concurrency)
        assert report.ok and len(report.upgraded) == report.total, report.failed
        print(
            f"migrate {len(report.upgraded):,} tenant schemas through a two-operation revision, "
            f"{concurrency} worker processes: {report.seconds:.1f} s (goal at 10,000: < 90 s), "
            f"{report.seconds / len(report.upgraded) * 1000:.1f} ms per schema"
        )
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        mb = 1024
        if peaks:
            each = ", ".join(f"{kb / mb:.0f}" for kb in sorted(peaks.values(), reverse=True))
            print(
                f"  peak RSS (VmHWM) of the {len(peaks)} migrating processes: max "
                f"{max(peaks.values()) / mb:.0f} MB (each: {each} MB); largest child reaped "
                f"so far (getrusage): {max(children_before, children_after) / mb:.0f} MB; "
                f"this process {self_before / mb:.0f} MB before, "
                f"{(_status_kb(os.getpid(), 'VmRSS') or 0) / mb:.0f} MB after"
            )
        else:
            print(
                "  (few enough schemas to migrate in this process: no worker processes; this "
                f"process's RSS {self_before / mb:.0f} MB before, "
                f"{(_status_kb(os.getpid(), 'VmRSS') or 0) / mb:.0f} MB after)"
            )
        started = time.perf_counter()
        again = await upgrade_tenants(db.engine, location=track, concurrency=concurrency)
        print(
            f"  re-run with all {again.already_at_head:,} at head: "
            f"{(time.perf_counter() - started) * 1000:.0f} ms (one catalog query, no work)"
        )
    return folder


# --- clean-up -------------------------------------------------------------------------------


async def forget_tenants(db: Database) -> list[str]:
    """Empty the registry (TRUNCATE … CASCADE) and return the tenant roles to drop: the
    schemas go with the database, which `services()` drops next, much faster than one
    DROP SCHEMA at a time (0.1 to 0.5 s each here, hours at 10,000). Roles are cluster-wide:
    `drop_roles` removes them once the database is gone."""
    async with db.engine.begin() as conn:
        ids = list(
            (
                await conn.execute(
                    text(
                        "SELECT id FROM platform.tenants "
                        "UNION SELECT id FROM platform.tenant_schema_pool"
                    )
                )
            ).scalars()
        )
        roles = set(
            (
                await conn.execute(
                    text("SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'tenant%'")
                )
            ).scalars()
        )
        await conn.execute(text("TRUNCATE platform.tenants, platform.tenant_schema_pool CASCADE"))
    return [role_name(i) for i in ids if role_name(i) in roles]


async def drop_roles(server_url: str, roles: list[str]) -> None:
    """The tenant roles of a dropped database (nothing depends on them any more)."""
    db = Database(server_url, DatabaseOptions(pool_size=1, max_overflow=0))
    try:
        for start in range(0, len(roles), 500):
            names = ", ".join(f'"{r}"' for r in roles[start : start + 500])
            async with db.engine.begin() as conn:
                await conn.exec_driver_sql(f"DROP ROLE IF EXISTS {names}")
    finally:
        await db.dispose()


async def run(url: str, broker_url: str, args: argparse.Namespace, roles: list[str]) -> None:
    """The figures; `roles` gets the tenant roles to drop once the database is gone."""
    tenants, seconds, parts = args.tenants, args.seconds, set(args.parts)
    settings = dataclasses.replace(
        Settings.from_env({}).with_services(url, broker_url),
        secret_key=TEST_SECRET_KEY,
        log_level="WARNING",
    )
    db = Database(url)
    folder: Path | None = None
    try:
        made = 0
        if "signups" in parts:
            made += len(await signups(settings, db, args.signups))
            if args.paced_seconds > 0:
                made += await paced_signups(url, broker_url, db, args)
        if not {"migrate", "reads"} & parts:
            return
        small = await time_check(db.engine, None)
        started = time.perf_counter()
        how = await bulk_create(db, url, made, tenants, clone=not args.no_clone)
        print(
            f"(made {max(0, tenants - made):,} more tenants in "
            f"{time.perf_counter() - started:.0f} s, 4 at a time: {how})"
        )
        tenants = max(tenants, made)
        if args.scale_signups:
            await signups_at_scale(db, args.scale_signups)
            tenants += 2 * args.scale_signups
        await check_figures(db, url, made, tenants, small)
        folder = await migrate_figures(db, args.concurrency)
        if "reads" in parts:
            everyone = await all_tenants(db)
            await seed_one_row_each(db.engine, everyone)
            await routing(url, everyone, seconds, args.guard, args.warmup)
            await memory(url, everyone, args.guard)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        roles.extend(await forget_tenants(db))  # the schemas go with the database
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
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[DEFAULT_CONCURRENCY, 4],
        help=f"migration worker processes, one migration each ({DEFAULT_CONCURRENCY}: "
        "upgrade_tenants' default; 4: `bpo migrate`'s)",
    )
    parser.add_argument(
        "--paced-seconds",
        type=float,
        default=60.0,
        help="seconds of paced signups per phase (refilling, then dry); 0: none",
    )
    parser.add_argument("--rate", type=float, default=10.0, help="paced signups per second")
    parser.add_argument(
        "--pool-size", type=int, default=5, help="BPO_TENANT_POOL_SIZE while paced (default 5)"
    )
    parser.add_argument(
        "--scale-signups",
        type=int,
        default=10,
        help="cold signups, then as many warm-pool schemas, timed once the bulk tenants exist",
    )
    parser.add_argument(
        "--no-clone",
        action="store_true",
        help="make the bulk tenants with create_tenant one by one (hours at 10,000: its "
        "grants scan pg_class) instead of cloning the first one's schema",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("signups", "migrate", "reads"),
        default=["signups", "migrate", "reads"],
        help="figures to run (reads needs migrate: its table comes from the sample revision)",
    )
    quick = {
        "tenants": 40,
        "signups": 5,
        "seconds": 0.5,
        "guard": 10,
        "warmup": 0.5,
        "paced_seconds": 1.0,
        "scale_signups": 2,
    }
    args = _cli.parse(parser, quick)
    if "reads" in args.parts and "migrate" not in args.parts:
        parser.error("--parts reads needs migrate (the reads use the sample revision's table)")
    if "reads" in args.parts and args.tenants <= max(args.guard, 2 * args.signups):
        parser.error("--tenants must be more than --guard and twice --signups")
    roles: list[str] = []
    server = os.environ.get("BPO_TEST_DATABASE_URL", "")
    started = time.perf_counter()
    try:
        with services() as svc:
            print(f"database: {'embedded' if svc.embedded else 'external'} PostgreSQL")
            print(f"{os.cpu_count()} cores, shared with whatever else runs on the machine")
            asyncio.run(run(svc.database_url, svc.broker_url, args, roles))
            started = time.perf_counter()
    finally:
        # Roles are cluster-wide: dropping the database is not enough (an embedded
        # server's go with its folder).
        if roles and server:
            asyncio.run(drop_roles(server, roles))
        print(
            f"(dropped the database with every tenant schema, and {len(roles):,} roles, in "
            f"{time.perf_counter() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
