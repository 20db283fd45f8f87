"""The request path against a bare route (issue 20), printed, all in one run.

bpo's authenticated tenant read and its token endpoint beside a bare Litestar + asyncpg
route and a naive ORM + JWT peer.

Four variants, each on 1 tenant and on N tenants round-robin (--tenants, default 1,000; each
with --rows work requests, default 20), served from the same database and the same rows,
each server a process of its own pinned to one core (the load generator gets the others;
PostgreSQL and Redis are not pinned):
  A. bare: a minimal Litestar app on an asyncpg pool, no SQLAlchemy, no authentication.
     GET /v1/tenants/{slug}/work/requests?limit=20 finds the tenant by slug and sets its role
     and search_path in one statement (two set_config calls, transaction-local), then selects
     20 rows of work_requests ordered as bpo's list orders them (id descending) and returns
     them as JSON (msgspec structs). Served by bpo's own server (bpo.core.serving.run_http).
  B. naive ORM peer: the same route on Litestar with an SQLAlchemy ORM AsyncSession per
     request (the tenant by slug, SET LOCAL ROLE, schema_translate_map), ORM entities
     converted to dicts, and an ES256 JWT checked per request with joserfc (signature with
     the public key, exp, iss, the work:read scope, the tenant claim). Same server.
  C. bpo: the real `bpo serve`, the same route, a bearer token per tenant (an API client's,
     scope work:read, minted with bpo's key ring, issuer the served base URL).
  D. bpo token endpoint: POST /oauth/token, client credentials with HTTP Basic, on the same
     `bpo serve`, cycling through --clients API clients of one tenant (1 tenant) or one
     client per tenant (N tenants); the token rate limits raised out of the way.
The bare and naive peers get the pool `bpo serve` runs with (BPO_DB_POOL_SIZE,
BPO_DB_MAX_OVERFLOW from the environment, else bpo's defaults; printed).

Load: --connections keep-alive HTTP/1.1 connections (default 32), a --warmup per variant,
then --rounds rounds (default 3) of --round-seconds (default 10) interleaved A, B, C, D (1
tenant), A, B, C, D (N tenants), A, ... By wrk (--wrk, /usr/bin/wrk) when it is installed,
else by benchmarks/_load.py (asyncio on uvloop, in this process).

Printed per variant: req/s (median of the rounds, and their spread), p50/p99 latency
(median of the rounds' percentiles), server CPU and PostgreSQL CPU per request in µs (from
/proc), the load generator's CPU (% of one core) and non-200 answers. Then the ratios the
goals name (printed, not asserted), each as the median over rounds of the ratio of its two
variants' rates in the same round: bpo/bare (goal >= 0.3), bpo/naive (goal >= 1.5); the bpo
read's p99 (goal < 50 ms) and the token endpoint's (goal < 30 ms).

The database and broker: BPO_TEST_DATABASE_URL / BPO_TEST_BROKER_URL, else embedded ones;
a fresh database, dropped at the end with every tenant schema and role made here.

Usage: python benchmarks/request_path.py [--tenants 1000] [--rows 20] [--clients 50]
       [--connections 32] [--rounds 3] [--round-seconds 10] [--warmup 5]
       [--wrk /usr/bin/wrk] [--python-load] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli
from benchmarks._identity import server_env
from benchmarks._load import (
    Server,
    Watch,
    first_response,
    free_port,
    get_request,
    postmaster_of,
    python_argv,
    run,
    spawned,
)
from benchmarks._request_path import PATH, Round, median, mint, one_round, seed
from benchmarks._services import BenchServices, services
from benchmarks.tokens import token_request

from bpo.settings import Settings

LABELS = {
    "A": "A bare Litestar + asyncpg",
    "B": "B naive ORM + JWT peer",
    "C": "C bpo GET work/requests",
    "D": "D bpo POST /oauth/token",
}
GOALS = {"bare": ("A", 0.3), "naive": ("B", 1.5)}  # bpo's read (C) over this peer's
READ_P99_MS, TOKEN_P99_MS = 50.0, 30.0


@dataclasses.dataclass
class Variant:
    label: str
    server: Server
    requests: list[bytes]
    rounds: list[Round] = dataclasses.field(default_factory=list)


def check(variant: Variant) -> bytes:
    """The variant's first request answers 200; its body."""
    status, body = first_response(variant.server.port, variant.requests[0])
    if status != 200:
        print(f"!! {variant.label} answered {status}: {body.decode(errors='replace')[:2000]}")
        print(f"!! server output:\n{variant.server.tail()}")
        raise SystemExit(f"{variant.label} answered {status}")
    return body


def same_rows(variants: dict[str, Variant]) -> str:
    """The reads answer with the same 20 rows in the same order; their sizes in bytes."""
    bodies = {key: check(variants[key]) for key in ("A1", "B1", "C1")}
    ids = {key: [item["id"] for item in json.loads(body)["items"]] for key, body in bodies.items()}
    if len({tuple(found) for found in ids.values()}) != 1 or len(ids["A1"]) != 20:
        raise SystemExit(f"the three reads answer different rows: {ids}")
    return " / ".join(f"{len(body):,}" for body in bodies.values())


def table(variants: dict[str, Variant], tenants: int) -> None:
    print(
        f"\n{'':38s} {'req/s':>7s} {'spread':>11s} {'p50 ms':>7s} {'p99 ms':>7s} "
        f"{'server µs':>9s} {'pg µs':>6s} {'load %':>6s} {'non-200':>7s}"
    )
    for key, v in variants.items():
        rates = [r.rate for r in v.rounds]
        scope = "1 tenant" if key.endswith("1") else f"{tenants:,} tenants"
        print(
            f"{f'{v.label}, {scope}':38s} {median(v.rounds, 'rate'):7.0f} "
            f"{f'{min(rates):.0f}-{max(rates):.0f}':>11s} {median(v.rounds, 'p50'):7.1f} "
            f"{median(v.rounds, 'p99'):7.1f} {median(v.rounds, 'server_us'):9.0f} "
            f"{median(v.rounds, 'pg_us'):6.0f} {median(v.rounds, 'client'):6.0f} "
            f"{sum(r.failed for r in v.rounds):7d}"
        )
        if any(r.failed for r in v.rounds):
            print(f"  !! non-200 answers; {v.label}'s server output (last lines):")
            print(v.server.tail(15))


def goals(variants: dict[str, Variant], tenants: int, connections: int) -> None:
    met = {True: "met", False: "not met"}
    for scope, name in (("1", "1 tenant"), ("N", f"{tenants:,} tenants")):
        bpo = variants[f"C{scope}"]
        for peer, (key, goal) in GOALS.items():
            other = variants[f"{key}{scope}"]
            paired = [c.rate / o.rate for c, o in zip(bpo.rounds, other.rounds, strict=True)]
            ratio = statistics.median(paired)
            cpu = median(other.rounds, "server_us") / median(bpo.rounds, "server_us")
            print(
                f"=> bpo/{peer}, {name}: {ratio:.2f} of its req/s (goal >= {goal:g}: "
                f"{met[ratio >= goal]}); server CPU per request {1 / cpu:.2f}x {peer}'s"
            )
    for key, what, goal in (("C", "bpo read", READ_P99_MS), ("D", "token endpoint", TOKEN_P99_MS)):
        for scope, name in (("1", "1 tenant"), ("N", f"{tenants:,} tenants")):
            p99 = median(variants[f"{key}{scope}"].rounds, "p99")
            print(
                f"=> {what} p99 at {connections} connections, {name}: {p99:.1f} ms "
                f"(goal < {goal:g} ms: {met[p99 < goal]})"
            )


def bench(svc: BenchServices, a: argparse.Namespace) -> None:
    cores = sorted(os.sched_getaffinity(0))
    server_cpus = {cores[-1]} if len(cores) > 1 else None
    load_cpus = set(cores[:-1]) if server_cpus else set(cores)
    wrk = None if a.python_load or not os.access(a.wrk, os.X_OK) else a.wrk
    secret_key, url = secrets.token_urlsafe(32), svc.database_url

    started = time.perf_counter()
    fixture = run(seed(url, secret_key, a.tenants, a.rows, a.clients))
    print(
        f"(made {len(fixture):,} tenants through bpo's provisioning, {a.rows} work requests "
        f"each by COPY, {len(fixture) + a.clients - 1:,} API clients, "
        f"in {time.perf_counter() - started:.0f} s)"
    )
    ports = {kind: free_port() for kind in ("bare", "naive", "bpo")}
    issuer = f"http://127.0.0.1:{ports['bpo']}"
    tokens, public_jwk = run(mint(url, secret_key, issuer, fixture))
    bpo_env = server_env(url, svc.broker_url, secret_key, ports["bpo"])
    pool_from_env = False
    for name in ("BPO_DB_POOL_SIZE", "BPO_DB_MAX_OVERFLOW"):
        if os.environ.get(name):
            bpo_env[name], pool_from_env = os.environ[name], True
    settings = Settings.from_env(bpo_env)
    size, overflow = settings.db_pool_size, settings.db_max_overflow
    peer_env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    peer_env.update(
        RP_DATABASE_URL=url,
        RP_POOL_SIZE=str(size),
        RP_MAX_OVERFLOW=str(overflow),
        RP_PUBLIC_JWK=public_jwk,
        RP_ISSUER=issuer,
    )
    watch = Watch(postmaster=run(postmaster_of(url)), database=url.rsplit("/", 1)[1])

    with contextlib.ExitStack() as stack:
        servers = {
            kind: stack.enter_context(
                spawned(
                    python_argv(f"from benchmarks._request_path import serve\nserve({kind!r})"),
                    {**peer_env, "RP_PORT": str(ports[kind])},
                    ports[kind],
                    "/ready",
                    server_cpus,
                )
            )
            for kind in ("bare", "naive")
        }
        servers["bpo"] = stack.enter_context(
            spawned(
                [sys.executable, "-m", "bpo", "serve"],
                bpo_env,
                ports["bpo"],
                "/health/ready",
                server_cpus,
            )
        )
        os.sched_setaffinity(0, load_cpus)
        variants: dict[str, Variant] = {}
        for scope, used in (("1", fixture[:1]), ("N", fixture)):
            auth = [{"Authorization": f"Bearer {tokens[fixture.index(t)]}"} for t in used]
            for key, kind, headers in (
                ("A", "bare", None),
                ("B", "naive", auth),
                ("C", "bpo", auth),
            ):
                port = ports[kind]
                requests = [
                    get_request(port, PATH.format(slug=t.slug), headers and headers[i])
                    for i, t in enumerate(used)
                ]
                variants[key + scope] = Variant(LABELS[key], servers[kind], requests)
            clients = used[0].clients if scope == "1" else [t.clients[0] for t in used]
            requests = [token_request(ports["bpo"], cid, secret) for cid, secret in clients]
            variants["D" + scope] = Variant(LABELS["D"], servers["bpo"], requests)
        pinned = ", ".join(
            f"{kind} {sorted(os.sched_getaffinity(s.process.pid))}" for kind, s in servers.items()
        )
        print(
            f"{len(cores)} cores: the servers pinned ({pinned}), the load generator to "
            f"{sorted(load_cpus)} ({'wrk' if wrk else '_load.py on uvloop, this process'}); "
            f"{a.connections} keep-alive connections, {a.warmup:g} s warm-up per variant, then "
            f"{a.rounds} interleaved rounds of {a.round_seconds:g} s each"
        )
        print(
            f"bpo serve ran with BPO_DB_POOL_SIZE={size}, BPO_DB_MAX_OVERFLOW={overflow} "
            f"({'from the environment' if pool_from_env else 'its defaults'}"
            f"); the peers with the same: asyncpg pool {size}..{size + overflow}, SQLAlchemy "
            f"pool_size {size} + max_overflow {overflow}"
        )
        sizes = same_rows(variants)
        print(f"(A, B and C answer the same 20 rows, in pages of {sizes} bytes)")

        def load(v: Variant, seconds: float) -> Round:
            server = dataclasses.replace(watch, server=v.server.process.pid)
            return one_round(
                wrk, load_cpus, v.server.port, v.requests, a.connections, seconds, server
            )

        for v in variants.values():
            check(v)
            load(v, a.warmup)
        for _ in range(a.rounds):
            for v in variants.values():
                v.rounds.append(load(v, a.round_seconds))
        table(variants, len(fixture))
        goals(variants, len(fixture), a.connections)


def main() -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    parser = _cli.parser(__doc__)
    parser.add_argument(
        "--tenants", type=int, default=1000, help="tenants of the N-tenant variants"
    )
    parser.add_argument("--rows", type=int, default=20, help="work requests per tenant (>= 20)")
    parser.add_argument("--clients", type=int, default=50, help="API clients of the first tenant")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant")
    parser.add_argument("--round-seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds per variant")
    parser.add_argument("--wrk", default="/usr/bin/wrk", help="used as the load generator if there")
    parser.add_argument("--python-load", action="store_true", help="benchmarks/_load.py, not wrk")
    quick = {"tenants": 20, "rounds": 1, "round_seconds": 1.0, "connections": 8, "warmup": 0.5}
    args = _cli.parse(parser, quick)
    if args.rows < 20 or args.tenants < 1 or args.clients < 1:
        parser.error("--rows must be at least 20, --tenants and --clients at least 1")
    with services() as svc:
        print(f"database: {'embedded' if svc.embedded else 'external'} PostgreSQL")
        bench(svc, args)
    print("(dropped every tenant schema and role made here, and the database)")


if __name__ == "__main__":
    main()
