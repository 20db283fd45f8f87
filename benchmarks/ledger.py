"""The ledger (issue 21): postings through the API beside a bare asyncpg baseline, bulk, one
hot account, the trial balance and `bpo ledger verify` over a large journal. Printed, never
asserted.

Setup: a fresh database; one firm made through bpo's provisioning with the small-business
starter chart, an API client (ledger:read ledger:write) and its token; `bpo serve` (one
process) pinned to one core, the load generator (benchmarks/_load.py on this process) and
the bare baseline on the other(s); PostgreSQL not pinned.

  bare      the same entry (a header, two lines, the two accounts' day and running balances
            upserted) written with asyncpg in one transaction, no HTTP, no checks, into
            plain tables of the same shape without triggers; --connections tasks on a pool
            of as many connections. The floor a posting cannot go below.
  single    POST /entries, one entry of two lines per request, --connections keep-alive
            connections; the account pairs and days vary (ten pairs, one month).
  hot       the same, but every entry debits or credits one bank account (1110).
  bulk      POST /entries/batch, --batch entries of two lines per request, 4 connections:
            lines per second.
  trial     the journal grown to --lines posted lines (entries over a year, written through
            the ledger's own posting in batches of 1,000, not over HTTP), then
            GET /trial-balance?as_of=<the year end> --reads times on one connection: p50/p95.
  verify    `bpo ledger verify SLUG` over that journal, as a user runs it (process start
            included), and the verify call alone inside this process.

Goals (issue 21): single >= 1,000 entries/s and >= 0.5 of bare; bulk >= 10,000 lines/s; hot
>= 1,000 entries/s; trial p95 < 5 ms over 1,000,000 lines; verify < 5 s.

Usage: python benchmarks/ledger.py [--seconds 10] [--connections 32] [--batch 100]
       [--lines 1000000] [--reads 200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import secrets
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from benchmarks import _cli
from benchmarks._identity import server_env
from benchmarks._load import Watch, first_response, free_port, measure, postmaster_of, run, spawned
from benchmarks._services import BenchServices, services

from bpo.core.db import Database, asyncpg_dsn
from bpo.core.ids import uuid7
from bpo.core.security import new_client_secret, secret_digest
from bpo.core.sql import RawSql
from bpo.core.tenancy import (
    TenantContext,
    issue_tenant_context,
    tenant_connection,
    tenant_session,
)
from bpo.identity.keys import KeyRing
from bpo.identity.models import ApiClient
from bpo.identity.tokens import issue_access_token
from bpo.ledger import accounts, service
from bpo.ledger.posting import PostedEntry, PostedLine
from bpo.models import load_all_models
from bpo.platform.tenants.service import create_tenant

SLUG = "ledger-bench"
PAIRS = [
    ("1200", "4100"),
    ("1200", "4200"),
    ("1110", "1200"),
    ("6200", "1110"),
    ("6400", "2100"),
    ("2100", "1110"),
    ("5100", "2100"),
    ("6100", "2300"),
    ("1300", "1110"),
    ("6500", "2400"),
]
HOT = "1110"
YEAR = date(2025, 1, 1)


async def seed(url: str, secret_key: str, issuer: str) -> tuple[TenantContext, str]:
    """The firm, its chart and a ledger token."""
    db = Database(url)
    try:
        async with db.sessionmaker.begin() as session:
            tenant_id = (await create_tenant(session, SLUG, "Ledger bench")).tenant.id
            client_id = f"{SLUG}-client"
            session.add(
                ApiClient(
                    tenant_id=tenant_id,
                    client_id=client_id,
                    name=client_id,
                    scopes=["ledger:read", "ledger:write"],
                    secret_digest=secret_digest(secret_key, new_client_secret()),
                )
            )
        tenant = issue_tenant_context(tenant_id, SLUG)
        async with tenant_session(db.engine, tenant, "worker") as session:
            await accounts.apply_chart(session, tenant, "system:bench", "small-business")
        ring = KeyRing(secret_key)
        await ring.load(db.engine)
    finally:
        await db.dispose()
    token, _ = issue_access_token(
        ring,
        issuer=issuer,
        audience=issuer,
        subject=client_id,
        client_id=client_id,
        scope="ledger:read ledger:write",
        tenant=tenant_id,
    )
    return tenant, token


def post_request(port: int, path: str, token: str, body: object) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def entry_body(rng: random.Random, hot: bool) -> dict[str, object]:
    debit, credit = rng.choice(PAIRS)
    if hot and HOT not in (debit, credit):
        debit, credit = (HOT, credit) if rng.random() < 0.5 else (debit, HOT)
        if debit == credit:
            debit, credit = HOT, "4100"
    amount = rng.randint(100, 500_000)
    return {
        "effective_on": f"2026-11-{rng.randint(1, 28):02d}",
        "description": "bench posting",
        "lines": [
            {"account": debit, "debit": amount, "currency": "EUR"},
            {"account": credit, "credit": amount, "currency": "EUR"},
        ],
    }


# --- the bare baseline -------------------------------------------------------------------

_BARE_TABLES = """
CREATE SCHEMA IF NOT EXISTS bench_bare;
CREATE TABLE bench_bare.entries (id uuid PRIMARY KEY, number bigint GENERATED BY DEFAULT AS
    IDENTITY UNIQUE, effective_on date NOT NULL, description text NOT NULL,
    booked_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE bench_bare.lines (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    entry_id uuid NOT NULL REFERENCES bench_bare.entries, line_no smallint NOT NULL,
    account_id int NOT NULL, effective_on date NOT NULL, amount bigint NOT NULL,
    currency text NOT NULL);
CREATE INDEX ON bench_bare.lines (entry_id);
CREATE INDEX ON bench_bare.lines (account_id, effective_on, id);
CREATE TABLE bench_bare.balances (account_id int, currency text, on_date date,
    debit bigint NOT NULL, credit bigint NOT NULL, PRIMARY KEY (account_id, currency, on_date));
CREATE TABLE bench_bare.totals (account_id int, currency text, debit bigint NOT NULL,
    credit bigint NOT NULL, PRIMARY KEY (account_id, currency));
"""
_BARE_LINES = """
INSERT INTO bench_bare.lines (entry_id, line_no, account_id, effective_on, amount, currency)
VALUES ($1, 1, $2, $4, $5, 'EUR'), ($1, 2, $3, $4, -$5, 'EUR')
"""
_BARE_BALANCES = """
INSERT INTO bench_bare.balances AS b VALUES ($1, 'EUR', $3, $4, 0), ($2, 'EUR', $3, 0, $4)
ON CONFLICT (account_id, currency, on_date) DO UPDATE
   SET debit = b.debit + excluded.debit, credit = b.credit + excluded.credit
"""
_BARE_TOTALS = """
INSERT INTO bench_bare.totals AS t VALUES ($1, 'EUR', $3, 0), ($2, 'EUR', 0, $3)
ON CONFLICT (account_id, currency) DO UPDATE
   SET debit = t.debit + excluded.debit, credit = t.credit + excluded.credit
"""


async def bare(url: str, connections: int, seconds: float, hot: bool) -> float:
    """Entries per second written the bare way (accounts in a fixed order: no deadlocks)."""
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=connections, max_size=connections)
    assert pool is not None
    rng = random.Random(7)
    try:
        async with pool.acquire() as conn:
            await conn.execute("DROP SCHEMA IF EXISTS bench_bare CASCADE")
            await conn.execute(_BARE_TABLES)
        done = 0
        until = time.perf_counter() + seconds

        async def writer() -> None:
            nonlocal done
            async with pool.acquire() as conn:
                while time.perf_counter() < until:
                    a, b = (
                        sorted(rng.sample(range(1, 11), 2)) if not hot else (0, rng.randint(1, 10))
                    )
                    day, amount, entry = (
                        date(2026, 11, rng.randint(1, 28)),
                        rng.randint(1, 10**6),
                        uuid7(),
                    )
                    async with conn.transaction():
                        await conn.execute(
                            "INSERT INTO bench_bare.entries (id, effective_on, description)"
                            " VALUES ($1, $2, 'bench posting')",
                            entry,
                            day,
                        )
                        await conn.execute(
                            _BARE_LINES,
                            entry,
                            a,
                            b,
                            day,
                            amount,
                        )
                        await conn.execute(_BARE_BALANCES, a, b, day, amount)
                        await conn.execute(_BARE_TOTALS, a, b, amount)
                    done += 1

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(connections)))
        return done / (time.perf_counter() - started)
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DROP SCHEMA IF EXISTS bench_bare CASCADE")
        await pool.close()


# --- the large journal -------------------------------------------------------------------


async def grow(url: str, tenant: TenantContext, lines: int) -> float:
    """Post `lines` lines (entries of two) over a year through the ledger's posting, in
    batches of 1,000 entries; returns lines per second."""
    db = Database(url)
    rng = random.Random(11)
    started = time.perf_counter()
    try:
        async with tenant_session(db.engine, tenant, "worker") as session:
            named = await accounts.accounts_named(session, {c for pair in PAIRS for c in pair})
        posted = 0
        while posted < lines:
            batch = []
            for _ in range(min(1000, (lines - posted) // 2 or 1)):
                debit, credit = rng.choice(PAIRS)
                amount = rng.randint(100, 500_000)
                day = YEAR + timedelta(days=rng.randrange(365))
                batch.append(
                    PostedEntry(
                        uuid7(),
                        day,
                        "bench journal",
                        None,
                        "api",
                        [
                            PostedLine(named[debit].id, debit, amount, "EUR", amount),
                            PostedLine(named[credit].id, credit, -amount, "EUR", -amount),
                        ],
                    )
                )
            async with tenant_connection(db.engine, tenant, "worker") as conn:
                await service.post(RawSql(conn), tenant, "system:bench", batch)
            posted += 2 * len(batch)
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("ledger_lines", "ledger_entries", "ledger_balances", "ledger_totals"):
                await conn.exec_driver_sql(f'ANALYZE "{tenant.schema}".{table}')
    finally:
        await db.dispose()
    return posted / (time.perf_counter() - started)


async def reads(port: int, path: str, token: str, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    took = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(
                    h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")
                ).split(b":")[1]
            )
            await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200"), head
            took.append(time.perf_counter() - started)
    finally:
        writer.close()
    return took


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def bench(svc: BenchServices, a: argparse.Namespace) -> None:
    cores = sorted(os.sched_getaffinity(0))
    server_cpus = {cores[-1]} if len(cores) > 1 else None
    load_cpus = set(cores[:-1]) if server_cpus else set(cores)
    secret_key, url, port = secrets.token_urlsafe(32), svc.database_url, free_port()
    issuer = f"http://127.0.0.1:{port}"
    tenant, token = run(seed(url, secret_key, issuer))
    env = server_env(url, svc.broker_url, secret_key, port)
    watch = Watch(postmaster=run(postmaster_of(url)), database=url.rsplit("/", 1)[1])
    base = f"/v1/tenants/{SLUG}/ledger"
    rng = random.Random(3)
    singles = [
        post_request(port, f"{base}/entries", token, entry_body(rng, False)) for _ in range(2000)
    ]
    hots = [
        post_request(port, f"{base}/entries", token, entry_body(rng, True)) for _ in range(2000)
    ]
    batches = [
        post_request(
            port,
            f"{base}/entries/batch",
            token,
            {"entries": [entry_body(rng, False) for _ in range(a.batch)]},
        )
        for _ in range(20)
    ]
    with spawned(
        [sys.executable, "-m", "bpo", "serve"], env, port, "/health/ready", server_cpus
    ) as server:
        os.sched_setaffinity(0, load_cpus)
        status, answer = first_response(port, singles[0])
        assert status == 201, answer[:500]
        print(
            f"{len(cores)} cores: bpo serve pinned to {sorted(server_cpus or cores)}, load and "
            f"bare on {sorted(load_cpus)}; {a.connections} connections, {a.seconds:g} s each"
        )
        w = dataclasses.replace(watch, server=server.process.pid)
        measure(port, singles, a.connections, min(2.0, a.seconds), w)  # warm-up
        single = measure(port, singles, a.connections, a.seconds, w)
        hot = measure(port, hots, a.connections, a.seconds, w)
        bulk = measure(port, batches, 4, a.seconds, w)
        bare_rate = run(bare(url, a.connections, a.seconds, False))
        bare_hot = run(bare(url, a.connections, a.seconds, True))
        for name, m in (("single", single), ("hot", hot), ("bulk", bulk)):
            if m.result.failed:
                print(
                    f"!! {name}: {m.result.failed} answers were not 2xx: {m.result.sample[:300]!r}"
                )
        lines_rate = bulk.result.rate * a.batch * 2
        print(f"bare (asyncpg, one transaction per entry)   {bare_rate:9,.0f} entries/s")
        print(f"bare, one hot account                        {bare_hot:9,.0f} entries/s")
        print(
            f"single  POST /entries                        {single.result.rate:9,.0f} entries/s"
            f"  p50 {single.result.ms(0.5):.1f} ms p99 {single.result.ms(0.99):.1f} ms"
            f"  = {single.result.rate / bare_rate:.2f} of bare  (goal >= 1,000/s and >= 0.5)"
        )
        print(
            f"hot     every entry on account {HOT}        {hot.result.rate:9,.0f} entries/s"
            f"  p99 {hot.result.ms(0.99):.1f} ms  = {hot.result.rate / bare_hot:.2f} of bare hot"
            "  (goal >= 1,000/s)"
        )
        print(
            f"bulk    POST /entries/batch of {a.batch}          {lines_rate:9,.0f} lines/s"
            f"  ({bulk.result.rate:.1f} batches/s, p99 {bulk.result.ms(0.99):.0f} ms)"
            "  (goal >= 10,000)"
        )
        print(
            f"server CPU per single posting {single.per_request_us('server'):.0f} µs, PostgreSQL "
            f"{single.per_request_us('postgres'):.0f} µs"
        )
        grown = run(grow(url, tenant, a.lines))
        print(
            f"journal grown by {a.lines:,} lines through the ledger's posting "
            f"({grown:,.0f} lines/s)"
        )
        path = f"{base}/trial-balance?as_of=2025-12-31"
        run(reads(port, path, token, 10))
        took = run(reads(port, path, token, a.reads))
        mid = run(reads(port, f"{base}/trial-balance?as_of=2025-06-30", token, a.reads))
        print(
            f"trial balance at the year end   p50 {pct(took, 0.5):.2f} ms"
            f"  p95 {pct(took, 0.95):.2f} ms  (goal p95 < 5 ms)"
        )
        print(
            f"trial balance at mid-year       p50 {pct(mid, 0.5):.2f} ms"
            f"  p95 {pct(mid, 0.95):.2f} ms"
        )
    cli_env = {**env, "BPO_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bpo", "ledger", "verify", SLUG],
        env=cli_env,
        capture_output=True,
        text=True,
        check=False,
    )
    took_cli = time.perf_counter() - started
    print(
        f"bpo ledger verify {SLUG}: exit {done.returncode} in {took_cli:.2f} s (goal < 5 s): "
        f"{done.stdout.strip().splitlines()[0] if done.stdout.strip() else done.stderr[-300:]}"
    )
    print(f"verify alone (in this process): {run(_verify_alone(url, tenant)):.2f} s")


async def _verify_alone(url: str, tenant: TenantContext) -> float:
    from bpo.ledger.verify import verify

    db = Database(url)
    try:
        started = time.perf_counter()
        verdict = await verify(db.engine, tenant)
        assert verdict.ok, verdict.differences[:3]
        return time.perf_counter() - started
    finally:
        await db.dispose()


def main() -> None:
    parser = _cli.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput figure")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch", type=int, default=100, help="entries per bulk request")
    parser.add_argument(
        "--lines", type=int, default=1_000_000, help="journal size for trial/verify"
    )
    parser.add_argument("--reads", type=int, default=200, help="trial balance requests")
    args = _cli.parse(parser, {"seconds": 1.0, "connections": 8, "lines": 4_000, "reads": 20})
    load_all_models()
    with services() as svc:
        print(f"database: {'embedded' if svc.embedded else 'external'} PostgreSQL")
        bench(svc, args)
    print("(dropped the firm's schema and role, and the database)")


if __name__ == "__main__":
    main()
