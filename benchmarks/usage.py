"""Usage-ledger figures (issue 6, first part), printed.

1. Usage events recorded per second through the batch path (`record_usage_batch`, 1,000
   events a statement, keys unique, one connection), and per CPU-second of this process
   plus PostgreSQL (the machine's two cores are shared; goal >= 10,000 per core).
2. What `record_usage` adds to a request: a tenant transaction that writes one row, with
   and without a `record_usage` in it (median of many, as a ratio and in ms).
3. Current-usage query p95 for a tenant with N usage events (default 10,000,000 over the
   last 30 days, loaded with COPY and folded by the rollup job's statement; goal < 20 ms,
   issue 25; it was < 200 ms in issue 6).
4. The HTTP batch endpoint (`POST /v1/staff/usage`, batches of 1,000, a staff admin's
   token) on a real `bpo serve`, driven by --http-connections keep-alive connections for
   --http-seconds (goal >= 50,000 events/s, issue 25). Every --resend-every'th request
   sends an earlier batch again, whole (a client retrying): those events must count as
   duplicates. Exactly once: the rows recorded afterwards must equal the distinct keys
   sent, and the answers' `recorded` must add up to the same. CPU per process is shown
   (server, PostgreSQL, this client): the machine's two cores are shared.

Usage: python benchmarks/usage.py [--batch-events 200000] [--rounds 500] [--events 10000000]
                                  [--queries 200] [--http-seconds 60] [--http-connections 4]
                                  [--resend-every 10] [--only batch|request|current|http]
                                  [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli
from benchmarks._identity import server_env
from benchmarks._load import (
    Watch,
    content_length,
    cpu_snapshot,
    cpu_used,
    free_port,
    postmaster_of,
    spawned,
)
from benchmarks._services import services
from sqlalchemy import text

from bpo.billing.service import (
    _PERIOD_USAGE,
    Usage,
    month_of,
    period_usage,
    record_usage,
    record_usage_batch,
    roll_up,
)
from bpo.core.db import Database
from bpo.core.tenancy import issue_tenant_context, tenant_session
from bpo.identity.keys import KeyRing
from bpo.identity.models import User
from bpo.identity.scopes import scopes_for_role
from bpo.identity.tokens import issue_access_token
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

    async def timed() -> tuple[float, float]:
        timings = []
        async with db.engine.connect() as conn:
            for _ in range(queries):
                t0 = time.perf_counter()
                await period_usage(conn, tenant_id, *period)
                timings.append(time.perf_counter() - t0)
                await conn.rollback()
        timings.sort()
        return timings[len(timings) // 2], timings[int(len(timings) * 0.95)]

    p50, p95 = await timed()
    print(
        f"current usage with {events:,} events: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms "
        f"over {queries} queries (goal p95 < 20 ms; issue 6 had < 200 ms); "
        f"loaded by COPY in {loaded:.0f} s, folded into hours in {rolled:.0f} s"
    )
    await explain(db, tenant_id, period)
    # The rollup marks every event folded: until VACUUM, the partial index of pending
    # events still holds their entries. What the same query costs once it has run.
    began = time.perf_counter()
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("SET statement_timeout = 0"))  # minutes at 10M events
        await conn.execute(text("VACUUM (ANALYZE) platform.usage_events"))
        await conn.execute(text("RESET statement_timeout"))
    vacuumed = time.perf_counter() - began
    p50, p95 = await timed()
    print(
        f"  after VACUUM (ANALYZE) platform.usage_events ({vacuumed:.0f} s): p50 "
        f"{p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
    )
    await explain(db, tenant_id, period)


async def explain(db: Database, tenant_id: uuid.UUID, period: tuple[datetime, datetime]) -> None:
    """The plan of the current-usage query (EXPLAIN ANALYZE, BUFFERS), its main lines."""
    sql = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + str(_PERIOD_USAGE)
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(sql), {"tenant": tenant_id, "start": period[0], "end": period[1]}
        )
        lines = [str(row[0]) for row in rows]
    shown = []  # each scan with the buffers it touched, and the total time
    for n, line in enumerate(lines):
        if " Scan " in line or "Execution Time" in line:
            buffers = [x.strip() for x in lines[n + 1 : n + 4] if "Buffers:" in x][:1]
            shown.append(" ".join([line.strip().removeprefix("->  "), *buffers]))
    print("  plan: " + "\n        ".join(shown))


# --- 4. the HTTP batch endpoint ---------------------------------------------------------------


async def staff_admin_token(db: Database, secret_key: str, issuer: str) -> str:
    """A staff admin (as `bpo` stores one) and an access token for them, signed by the
    database's key ring as the server would sign it."""
    async with db.sessionmaker.begin() as session:
        user = User(
            email=f"bench-{uuid.uuid4().hex[:8]}@provider.example",
            password_hash="!bench (no password)",
            staff_role="staff_admin",
        )
        session.add(user)
        await session.flush()
        user_id = user.id
    ring = KeyRing(secret_key)
    await ring.load(db.engine)
    token: str
    token, _ = issue_access_token(
        ring,
        issuer=issuer,
        audience=issuer,
        subject=str(user_id),
        client_id="bpo-console",
        scope=" ".join(sorted(scopes_for_role("staff_admin"))),
        staff_role="staff_admin",
    )
    return token


@dataclass
class Sent:
    requests: int = 0
    events: int = 0
    resent_events: int = 0
    recorded: int = 0  # as the answers say
    duplicates: int = 0
    failures: dict[int, int] = field(default_factory=dict)
    sample: bytes = b""
    latencies: list[float] = field(default_factory=list)
    new_batches: list[int] = field(default_factory=list)  # answered 200


class BatchMaker:
    """Batch n: 1,000 events with keys h<n>-<i>, spread over the tenants and meters."""

    def __init__(self, slugs: list[str], size: int) -> None:
        at = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.fragments = [
            b'{"tenant":"%s","meter":"%s","quantity":%d,"at":"%s","key":"h'
            % (slugs[i % len(slugs)].encode(), METERS[i % 3].encode(), 1 + i % 5, at.encode())
            for i in range(size)
        ]

    def body(self, n: int) -> bytes:
        tag = b"%d-" % n
        events = b",".join(b'%s%s%d"}' % (f, tag, i) for i, f in enumerate(self.fragments))
        return b'{"events":[' + events + b"]}"


def http_request(port: int, token: str, body: bytes) -> bytes:
    head = (
        f"POST /v1/staff/usage HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def drive(
    port: int, token: str, maker: BatchMaker, connections: int, seconds: float, resend: int
) -> tuple[Sent, float]:
    sent = Sent()
    counter = iter(range(1 << 62))
    until = time.perf_counter() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < until:
                n = next(counter)
                again = bool(resend > 0 and n % resend == resend - 1 and sent.new_batches)
                batch = sent.new_batches[n % len(sent.new_batches)] if again else n
                body = maker.body(batch)
                started = time.perf_counter()
                writer.write(http_request(port, token, body))
                head = await reader.readuntil(b"\r\n\r\n")
                answer = await reader.readexactly(content_length(head))
                sent.latencies.append(time.perf_counter() - started)
                status = int(head[9:12])
                sent.requests += 1
                if status != 200:
                    sent.failures[status] = sent.failures.get(status, 0) + 1
                    sent.sample = sent.sample or head + answer
                    continue
                result = json.loads(answer)
                sent.events += result["received"]
                sent.recorded += result["recorded"]
                sent.duplicates += result["duplicates"]
                if again:
                    sent.resent_events += result["received"]
                else:
                    sent.new_batches.append(batch)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return sent, time.perf_counter() - started


async def http_figures(url: str, broker_url: str, args: argparse.Namespace) -> None:
    db = Database(url)
    slugs = [f"bench-http-{i}" for i in range(4)]
    async with db.sessionmaker.begin() as session:
        ids = [(await create_tenant(session, slug, "Bench")).tenant.id for slug in slugs]
    secret_key, port = secrets.token_urlsafe(32), free_port()
    token = await staff_admin_token(db, secret_key, f"http://127.0.0.1:{port}")
    watch = Watch(postmaster=await postmaster_of(url), database=url.rsplit("/", 1)[1])
    maker = BatchMaker(slugs, 1000)
    env = server_env(url, broker_url, secret_key, port)
    with spawned([sys.executable, "-m", "bpo", "serve"], env, port, "/health/ready") as server:
        watch = Watch(
            server=server.process.pid, postmaster=watch.postmaster, database=watch.database
        )
        await drive(port, token, maker, 1, 0.5, 0)  # warm-up: connections, statements
        async with db.engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM platform.usage_events WHERE tenant_id = ANY(:ids)"), {"ids": ids}
            )
        before = cpu_snapshot()
        sent, wall = await drive(
            port, token, maker, args.http_connections, args.http_seconds, args.resend_every
        )
        cpu = cpu_used(before, cpu_snapshot(), watch)
        if sent.failures:
            print(f"  !! non-200 answers {sent.failures}; first:\n{sent.sample[:1500]!r}")
            print(f"  !! server output (last lines):\n{server.tail()}")
    async with db.engine.connect() as conn:
        rows = int(
            await conn.scalar(
                text("SELECT count(*) FROM platform.usage_events WHERE tenant_id = ANY(:ids)"),
                {"ids": ids},
            )
            or 0
        )
    await db.dispose()
    distinct = len(sent.new_batches) * 1000
    lat = sorted(sent.latencies)
    others = sum(v for k, v in cpu.items() if k.startswith("other:"))
    print(
        f"HTTP batch endpoint (POST /v1/staff/usage, 1,000 events a request, one `bpo serve`, "
        f"{args.http_connections} connections, {wall:.0f} s): {sent.events / wall:,.0f} "
        f"events/s received, {sent.recorded / wall:,.0f} new events/s recorded "
        f"(goal >= 50,000/s); {sent.requests / wall:.1f} requests/s, p50 "
        f"{lat[len(lat) // 2] * 1000:.0f} ms, p95 {lat[int(len(lat) * 0.95)] * 1000:.0f} ms"
    )
    print(
        f"  exactly once: {sent.events:,} events sent, of which {sent.resent_events:,} in "
        f"{sent.resent_events // 1000} batches sent again whole; distinct keys {distinct:,}; "
        f"rows recorded {rows:,} ({rows - distinct:+,}); answers: recorded {sent.recorded:,}, "
        f"duplicates {sent.duplicates:,} (sent again: {sent.resent_events:,}); "
        f"non-200 answers {sum(sent.failures.values())}"
    )
    print(
        "  CPU during the run (% of one core): "
        + ", ".join(
            f"{role} {cpu.get(role, 0.0) / wall * 100:.0f}%"
            for role in ("server", "postgres", "client")
        )
        + f", other processes {others / wall * 100:.0f}%"
    )


async def main(args: argparse.Namespace, url: str, broker_url: str) -> None:
    db = Database(url)
    async with db.sessionmaker.begin() as session:
        batch = (await create_tenant(session, "bench-batch", "Bench")).tenant
        big = (await create_tenant(session, "bench-big", "Bench")).tenant
    if args.only in (None, "batch"):
        await batch_rate(db, batch.id, args.batch_events)
    if args.only in (None, "request"):
        await request_cost(db, batch.id, batch.slug, args.rounds)
    if args.only in (None, "http"):
        await http_figures(url, broker_url, args)
    if args.only in (None, "current"):
        await current_usage_p95(db, big.id, args.events, args.queries)
    await db.dispose()


if __name__ == "__main__":
    parser = _cli.parser(__doc__)
    parser.add_argument("--batch-events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--http-seconds", type=float, default=60.0)
    parser.add_argument("--http-connections", type=int, default=4)
    parser.add_argument(
        "--resend-every", type=int, default=10, help="every n-th request resends a batch (0: none)"
    )
    parser.add_argument("--only", choices=("batch", "request", "current", "http"))
    quick = {
        "batch_events": 20_000,
        "rounds": 50,
        "events": 50_000,
        "queries": 20,
        "http_seconds": 1.0,
    }
    arguments = _cli.parse(parser, quick)
    with services() as found:
        print(f"{os.cpu_count()} cores, shared by this process, the server and PostgreSQL")
        asyncio.run(main(arguments, found.database_url, found.broker_url))
