"""Background-work figures (issue 5), printed.

1. No-op jobs per second through outbox -> relay -> broker -> one worker process
   (`bpo worker`, its relay inside, BPO_WORKER_THREADS threads), for Redis and RabbitMQ:
   N jobs are committed to the outbox at once while the worker runs (a backlog, as many
   API transactions would leave it); the rate is N over the time from that commit to the
   last job's start. The jobs are tenant jobs (the tenant middleware opens each one's
   context) with no effect.
2. Enqueue-to-start latency, p50/p99: one job per transaction at a steady pace (default
   200/s); the clock starts just before the commit and stops when the job begins.
3. Audit chain verification: events per second of `POST .../audit/verify`'s walk over one
   tenant's chain of N events (default 1,000,000; goal: 1M in < 10 s).

Both brokers: BPO_TEST_BROKER_URL (or an embedded Redis) and BPO_TEST_AMQP_URL when set.
Usage: python benchmarks/jobs.py [--jobs 20000] [--pace 200] [--seconds 5]
       [--audit-events 1000000] [--only jobs|audit] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from benchmarks import _cli, job_actors
from benchmarks._services import services
from sqlalchemy import insert, text

from bpo.audit import service as audit
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, issue_tenant_context, tenant_session
from bpo.jobs.models import OutboxMessage
from bpo.jobs.outbox import enqueue, outbox_row
from bpo.platform.tenants.service import create_tenant

ROOT = Path(__file__).resolve().parents[1]
WORKER = (
    "import benchmarks.job_actors\n"
    "from bpo.jobs.worker import run_worker\n"
    "from bpo.settings import Settings\n"
    "run_worker(Settings.from_env())\n"
)


def spawn_worker(database_url: str, broker_url: str, namespace: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BPO_DATABASE_URL": database_url,
        "BPO_BROKER_URL": broker_url,
        "BPO_BROKER_NAMESPACE": namespace,
        "BPO_WORKER_SCHEDULER": "false",
        "BPO_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-c", WORKER], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
    )


def _take(path: Path) -> dict[str, Any] | None:
    """The worker's report, once it has written it (and removed, for the next one)."""
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    path.unlink()
    return data


async def report(
    db: Database,
    tenant: TenantContext,
    path: Path,
    *,
    reset: bool = False,
    full: bool = False,
    wait: float = 300,
) -> dict[str, Any] | None:
    """Send a report job and wait up to `wait` seconds for its answer."""
    async with tenant_session(db.engine, tenant) as session:
        await enqueue(session, job_actors.report, str(path), reset, full, tenant=tenant)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if (data := await asyncio.to_thread(_take, path)) is not None:
            return data
        await asyncio.sleep(0.05)
    return None


async def wait_started(db: Database, tenant: TenantContext, path: Path) -> None:
    """Until the worker answers a report job: it is up and consuming."""
    for _ in range(30):
        if await report(db, tenant, path, wait=2) is not None:
            return
    raise RuntimeError("the worker did not start")


async def collect(
    db: Database, tenant: TenantContext, path: Path, count: int
) -> tuple[list[float], list[float]]:
    """Ask the worker for its start times until `count` no-op jobs have started."""
    deadline = time.monotonic() + 300
    while True:
        data = await report(db, tenant, path)
        if data is None:
            raise RuntimeError("the worker stopped answering")
        if data["count"] >= count:
            data = await report(db, tenant, path, full=True)
            assert data is not None
            return list(data["starts"]), list(data["waits"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {data['count']} of {count} jobs ran")
        await asyncio.sleep(0.5)


async def throughput(db: Database, tenant: TenantContext, path: Path, jobs: int) -> float:
    """A backlog of `jobs` committed at once (as from many API transactions): the rate at
    which relay, broker and worker drain it, from the commit to the last job's start."""
    await _reset(db, tenant, path)
    rows = [outbox_row(job_actors.noop, (0.0,), {}, tenant=tenant) for _ in range(jobs)]
    async with db.engine.connect() as conn, conn.begin():
        for first in range(0, jobs, 5000):
            await conn.execute(insert(OutboxMessage), rows[first : first + 5000])
        await conn.execute(text("ANALYZE platform.outbox"))
        committed = time.time()  # the commit's round trip is on the clock
    starts, _ = await collect(db, tenant, path, jobs)
    return jobs / (max(starts) - committed)


async def latency(
    db: Database, tenant: TenantContext, path: Path, pace: float, seconds: float
) -> list[float]:
    await _reset(db, tenant, path)
    count = int(pace * seconds)
    begin = time.monotonic()
    for n in range(count):
        async with tenant_session(db.engine, tenant) as session:
            await enqueue(session, job_actors.noop, time.time(), tenant=tenant)
        delay = begin + (n + 1) / pace - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    _, waits = await collect(db, tenant, path, count)
    return waits


async def _reset(db: Database, tenant: TenantContext, path: Path) -> None:
    await report(db, tenant, path, reset=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def jobs_figures(url: str, broker: str, name: str, args: argparse.Namespace) -> None:
    db = Database(url)
    async with db.sessionmaker.begin() as session:
        created = await create_tenant(session, f"bench-{name}", "Bench")
    tenant = issue_tenant_context(created.tenant.id, created.tenant.slug)
    path = Path(tempfile.mkdtemp()) / "report.json"
    namespace = f"bpo-bench-{uuid.uuid4().hex[:8]}"
    worker = spawn_worker(url, broker, namespace)
    try:
        await wait_started(db, tenant, path)
        rate = await throughput(db, tenant, path, args.jobs)
        waits = [w * 1000 for w in await latency(db, tenant, path, args.pace, args.seconds)]
        print(
            f"{name:9s} {rate:8,.0f} jobs/s ({args.jobs:,} no-op jobs, one worker process)   "
            f"enqueue-to-start p50 {pct(waits, 0.5):6.1f} ms  p99 {pct(waits, 0.99):6.1f} ms "
            f"({len(waits)} jobs at {args.pace:g}/s)"
        )
    finally:
        worker.terminate()
        worker.wait(30)
        await db.dispose()
        shutil.rmtree(path.parent, ignore_errors=True)
        if broker.startswith(("redis", "unix")):  # the run's keys (a shared Redis keeps them)
            client = redis.Redis.from_url(broker)
            try:
                for key in client.scan_iter(f"{namespace}:*"):
                    client.delete(key)
            finally:
                client.close()


async def audit_figures(url: str, events: int) -> None:
    db = Database(url)
    async with db.sessionmaker.begin() as session:
        created = await create_tenant(session, "bench-audit", "Bench")
    chain = created.tenant.id
    began = time.perf_counter()
    await _write_chain(db, chain, events)
    written = time.perf_counter() - began
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE platform.audit_events"))
    timings = []
    for _ in range(2):
        began = time.perf_counter()
        verdict = await audit.verify(db.engine, chain)
        timings.append(time.perf_counter() - began)
        assert verdict.ok and verdict.events_checked == events, verdict
    best = min(timings)
    print(
        f"audit verify: {events:,} events in {best:.2f} s = {events / best:,.0f} events/s "
        f"(runs {', '.join(f'{t:.2f}' for t in timings)} s; goal 1M in < 10 s); "
        f"chain written in {written:.1f} s"
    )
    await db.dispose()


async def _write_chain(db: Database, chain: uuid.UUID, events: int) -> None:
    """A valid chain, hashed as `audit.record` hashes, loaded with COPY."""
    prev = audit.GENESIS
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        # The rows arrive already linked (as a restore would): the link-at-commit trigger
        # is for live appends, so this load runs as a replica, where triggers stay quiet
        # (the raw connection commits each COPY by itself, so the setting is per session).
        await raw.execute("SET session_replication_role = replica")
        batch: list[tuple[object, ...]] = []
        for seq in range(1, events + 1):
            ident, at = uuid.uuid4(), start + timedelta(microseconds=seq * 997)
            fields = (
                ident,
                at,
                "user:bench",
                "entry.posted",
                f"entry:{seq}",
                None,
                "ab" * 32,
                None,
            )
            digest = hashlib.sha256(audit.canonical(chain, seq, *fields, prev)).digest()
            batch.append((chain, seq, *fields, prev, digest))
            prev = digest
            if len(batch) == 50_000 or seq == events:
                await raw.copy_records_to_table(
                    "audit_events",
                    schema_name="platform",
                    records=batch,
                    columns=[
                        "chain_id",
                        "seq",
                        "id",
                        "at",
                        "actor",
                        "action",
                        "target",
                        "before_digest",
                        "after_digest",
                        "request_id",
                        "prev_hash",
                        "hash",
                    ],
                )
                batch = []
        await raw.execute(
            "INSERT INTO platform.audit_heads (chain_id, seq, hash) VALUES ($1, $2, $3)",
            chain,
            events,
            prev,
        )
        await raw.execute("RESET session_replication_role")


def main() -> None:
    parser = _cli.parser(__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--pace", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--audit-events", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("jobs", "audit"))
    quick = {"jobs": 500, "pace": 100.0, "seconds": 1.0, "audit_events": 5_000}
    args = _cli.parse(parser, quick)
    with services() as found:
        print(
            f"{os.cpu_count()} cores shared by this process, the worker, PostgreSQL and the broker"
        )
        if args.only != "audit":
            brokers = [
                (
                    "redis" if found.broker_url.startswith(("redis", "unix")) else "broker",
                    found.broker_url,
                )
            ]
            if amqp := os.environ.get("BPO_TEST_AMQP_URL"):
                brokers.append(("rabbitmq", amqp))
            for name, broker in brokers:
                asyncio.run(jobs_figures(found.database_url, broker, name, args))
        if args.only != "jobs":
            asyncio.run(audit_figures(found.database_url, args.audit_events))


if __name__ == "__main__":
    main()
