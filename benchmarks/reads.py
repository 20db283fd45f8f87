"""Identity figure 2 (the OAuth slice), printed: what authentication adds to a read.

2. Authenticated read cost (goal <= 1.15): one tenant-scoped read (a primary-key select
   through the `tenant_db` dependency) mounted on one served app (create_app +
   extra_route_handlers, served as `bpo serve` serves it) three ways:
   A. behind `requires("work:read")`, called with a bearer token (verification, cached per
      process, then the guard's one access statement);
   B. unauthenticated, the tenant found by slug in one platform query on an autocommit
      connection (the way the guard runs its statement), then `issue_tenant_context`;
   C. unauthenticated, the tenant found exactly as `tenant_context` did before authentication
      existed (a session: BEGIN, the same query, ROLLBACK).
   Rounds are interleaved A/B/C, A/B/C, ...; each round gives A's time per request over B's
   (and C's) under the same load, and the figure is the median of those ratios. Server CPU
   per request is printed too.

The load generator is a small keep-alive HTTP/1.1 client on asyncio (uvloop when installed)
in this process. The machine's cores (2 here) are shared by the client, the server,
PostgreSQL and Redis: the CPU each used during a run is printed with the figures, read from
/proc. Logs at WARNING (no access log), as benchmarks/health.py runs.

Usage: python benchmarks/reads.py [--rounds 12] [--round-seconds 2] [--warmup 2]
       [--connections 16] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
       [--broker-url redis://127.0.0.1:6379/0] [--quick]
(benchmarks/identity.py runs this figure and the token endpoint's, benchmarks/tokens.py.)
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
from benchmarks import _identity
from benchmarks._identity import SLUG, Bench, mint, report_failures, server_env
from benchmarks._load import (
    Measured,
    Result,
    first_response,
    free_port,
    get_request,
    load,
    measure,
    python_argv,
    run,
    spawned,
)
from litestar import get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from sqlalchemy import BigInteger, Column, MetaData, Table, Text, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.models import TENANT_PLACEHOLDER
from bpo.core.tenancy import TenantContext, issue_tenant_context
from bpo.identity.guards import PUBLIC, requires

READ_PATHS = {
    "A": "/v1/tenants/{slug}/_bench/notes/1",
    "B": "/v1/tenants/{slug}/_bench/open/notes/1",
    "C": "/v1/tenants/{slug}/_bench/pre-auth/notes/1",
}
READ_LABELS = {
    "A": 'A requires("work:read") + bearer token',
    "B": "B tenant by slug, one autocommit query",
    "C": "C tenant by slug, as before auth (session)",
}


# --- the read, mounted three ways (served by serve_reads in a subprocess) ---------------

bench_notes = Table(
    "bench_notes",
    MetaData(schema=TENANT_PLACEHOLDER),
    Column("id", BigInteger, primary_key=True),
    Column("body", Text, nullable=False),
)
_TENANT_BY_SLUG = text("SELECT id, status FROM platform.tenants WHERE slug = :slug")


class NoteOut(msgspec.Struct):
    id: int
    body: str


async def _read(tenant_db: AsyncSession, note_id: int) -> NoteOut:
    row = (await tenant_db.execute(select(bench_notes).where(bench_notes.c.id == note_id))).first()
    if row is None:
        raise Problem(404, "not-found", f"no note {note_id}")
    return NoteOut(id=row.id, body=row.body)


def _context(row: Any, slug: str) -> TenantContext:
    if row is None or row.status != "active":
        raise Problem(404, "not-found", f"no tenant {slug!r}")
    return issue_tenant_context(row.id, slug)


async def tenant_by_slug(slug: FromPath[str], state: State) -> TenantContext:
    """Baseline B: one platform query, on an autocommit connection as the guard runs its own."""
    async with state.db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        row = (await conn.execute(_TENANT_BY_SLUG, {"slug": slug})).first()
    return _context(row, slug)


async def tenant_by_slug_pre_auth(slug: FromPath[str], state: State) -> TenantContext:
    """Baseline C: as `tenant_context` was before authentication (a session per lookup)."""
    async with state.db.sessionmaker() as session:
        row = (await session.execute(_TENANT_BY_SLUG, {"slug": slug})).first()
    return _context(row, slug)


@get("/v1/tenants/{slug:str}/_bench/notes/{note_id:int}", guards=[requires("work:read")])
async def authenticated_read(
    note_id: FromPath[int], tenant_db: NamedDependency[AsyncSession]
) -> NoteOut:
    return await _read(tenant_db, note_id)


@get(
    "/v1/tenants/{slug:str}/_bench/open/notes/{note_id:int}",
    opt={PUBLIC: True},
    dependencies={"tenant": Provide(tenant_by_slug)},
)
async def unauthenticated_read(
    note_id: FromPath[int], tenant_db: NamedDependency[AsyncSession]
) -> NoteOut:
    return await _read(tenant_db, note_id)


@get(
    "/v1/tenants/{slug:str}/_bench/pre-auth/notes/{note_id:int}",
    opt={PUBLIC: True},
    dependencies={"tenant": Provide(tenant_by_slug_pre_auth)},
)
async def pre_auth_read(
    note_id: FromPath[int], tenant_db: NamedDependency[AsyncSession]
) -> NoteOut:
    return await _read(tenant_db, note_id)


def serve_reads() -> None:
    """The API with the three reads mounted, served the way `bpo serve` serves it."""
    from bpo.app import create_app
    from bpo.core.serving import run_http
    from bpo.settings import Settings

    settings = Settings.from_env()
    app = create_app(
        settings, extra_route_handlers=[authenticated_read, unauthenticated_read, pre_auth_read]
    )
    run_http(app, settings.host, settings.port)


def reads(bench: Bench) -> None:
    args, url, secret_key, watch = bench.args, bench.url, bench.secret_key, bench.watch
    port = free_port()
    env = server_env(url, args.broker_url, secret_key, port)
    argv = python_argv("from benchmarks.reads import serve_reads\nserve_reads()")
    with spawned(argv, env, port, "/health/ready") as server:
        watch = dataclasses.replace(watch, server=server.process.pid)
        token = run(mint(url, secret_key, f"http://127.0.0.1:{port}", bench.fixture))
        requests = {
            key: get_request(
                port,
                path.format(slug=SLUG),
                {"Authorization": f"Bearer {token}"} if key == "A" else None,
            )
            for key, path in READ_PATHS.items()
        }
        for key, request in requests.items():
            status, body = first_response(port, request)
            if status != 200:
                print(f"!! {READ_LABELS[key]} answered {status}: {body.decode(errors='replace')}")
                print(f"!! server output:\n{server.tail()}")
                raise SystemExit(f"{READ_LABELS[key]} answered {status}")
            run(load(port, request, args.connections, args.warmup))
        rounds: dict[str, list[Measured]] = {key: [] for key in requests}
        for _ in range(args.rounds):
            for key, request in requests.items():
                rounds[key].append(
                    measure(port, request, args.connections, args.round_seconds, watch)
                )
        print(
            f"{'':44s} {'req/s':>8s} {'spread':>11s} {'p50 ms':>7s} {'p99 ms':>7s} "
            f"{'server µs':>9s} {'pg µs':>6s} {'other %':>7s} {'non-200':>8s}"
        )
        medians: dict[str, float] = {}
        server_us: dict[str, float] = {}
        for key, measured in rounds.items():
            rates = [m.result.rate for m in measured]
            medians[key] = statistics.median(rates)
            server_us[key] = statistics.median(m.per_request_us("server") for m in measured)
            pg_us = statistics.median(m.per_request_us("postgres") for m in measured)
            other = statistics.median(m.share("other") for m in measured)
            pooled = Result(latencies=[x for m in measured for x in m.result.latencies])
            failed = sum(m.result.failed for m in measured)
            print(
                f"{READ_LABELS[key]:44s} {medians[key]:8.0f} "
                f"{f'{min(rates):.0f}-{max(rates):.0f}':>11s} {pooled.ms(0.5):7.2f} "
                f"{pooled.ms(0.99):7.2f} {server_us[key]:9.0f} {pg_us:6.0f} {other:7.0f} "
                f"{failed:8d}"
            )
            for m in measured:
                if m.result.failed:
                    report_failures(m, server)
                    break
        everything = [m for measured in rounds.values() for m in measured]
        total = Measured(Result(seconds=sum(m.result.seconds for m in everything)), {})
        for m in everything:
            for role, used in m.cpu.items():
                total.cpu[role] = total.cpu.get(role, 0.0) + used
        print(
            f"  CPU during the rounds (% of one core): server {total.share('server'):.0f}%, "
            f"postgres {total.share('postgres'):.0f}%, client {total.share('client'):.0f}%; "
            f"other processes {total.share('other'):.0f}% ({total.busiest_others(3)})"
        )

    # Each round's A against the B (and C) measured right after it: drift on a shared
    # machine moves both; the median of those paired ratios is the figure.
    def paired(base: str) -> tuple[list[float], list[float]]:
        pairs = list(zip(rounds["A"], rounds[base], strict=True))
        time_ratios = [b.result.rate / a.result.rate for a, b in pairs]
        cpu_ratios = [a.per_request_us("server") / b.per_request_us("server") for a, b in pairs]
        return time_ratios, cpu_ratios

    def spread(ratios: list[float]) -> str:
        low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        return f"median of {len(ratios)} paired rounds, quartiles {low:.2f}-{high:.2f}"

    by_time, by_cpu = paired("B")
    ratio = statistics.median(by_time)
    goal = "met" if ratio <= 1.15 else "NOT met"
    print(
        f"=> the authenticated read costs {ratio:.2f}x the unauthenticated one "
        f"(A/B time per request at the same load, {spread(by_time)}; goal <= 1.15: {goal}); "
        f"server CPU per request {statistics.median(by_cpu):.2f}x ({spread(by_cpu)})"
    )
    by_time, by_cpu = paired("C")
    print(
        f"   against the pre-auth tenant_context as it was (A/C): "
        f"{statistics.median(by_time):.2f}x time per request ({spread(by_time)}), "
        f"{statistics.median(by_cpu):.2f}x server CPU per request"
    )


def figure(bench: Bench) -> None:
    args = bench.args
    print(
        f"\n2. authenticated read cost: {args.rounds} interleaved rounds of "
        f"{args.round_seconds:g} s per variant (medians)"
    )
    reads(bench)


if __name__ == "__main__":
    _identity.main(__doc__, {"reads": figure})
