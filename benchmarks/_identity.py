"""What the identity figures share (tokens.py, reads.py; identity.py runs both).

A fresh database on a PostgreSQL server (migrated, dropped at the end with its tenant's
schema and role), one tenant with a one-row table and CLIENTS API clients, the options, the
`bpo serve` environment and the table rows the figures print.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks import _cli
from benchmarks._load import Measured, Server, Watch, postmaster_of, run
from benchmarks._services import drop_tenants
from sqlalchemy import func, select

from bpo.core.db import Database, create_database, drop_database, with_database
from bpo.core.migrations import migrate_database
from bpo.core.security import new_client_secret, secret_digest
from bpo.core.tenancy import issue_tenant_context
from bpo.identity.keys import KeyRing
from bpo.identity.models import ApiClient, TokenEvent
from bpo.identity.scopes import CLIENT_SCOPES
from bpo.identity.tokens import issue_access_token
from bpo.platform.tenants.service import create_tenant

SLUG = "bench-identity"
CLIENT_ID = "bench-identity-client"
CLIENTS = 50


def server_env(database_url: str, broker_url: str, secret_key: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env.update(
        BPO_DATABASE_URL=database_url,
        BPO_BROKER_URL=broker_url,
        BPO_SECRET_KEY=secret_key,
        BPO_HOST="127.0.0.1",
        BPO_PORT=str(port),
        BPO_LOG_LEVEL="WARNING",
        BPO_TOKEN_RATE_PER_CLIENT="10000000",
        BPO_TOKEN_RATE_PER_IP="10000000",
    )
    return env


# --- the database -----------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    tenant_id: uuid.UUID
    clients: list[tuple[str, str]]  # (client id, secret)

    @property
    def client_id(self) -> str:
        return self.clients[0][0]


async def prepare(url: str, secret_key: str) -> Fixture:
    """A tenant with a one-row table in its schema, and CLIENTS API clients of that tenant
    (token requests cycle through them, as many client firms' integrations would)."""
    db = Database(url)
    clients = [(f"{CLIENT_ID}-{i}", new_client_secret()) for i in range(CLIENTS)]
    try:
        async with db.sessionmaker.begin() as session:
            tenant = (await create_tenant(session, SLUG, "Identity bench")).tenant
            session.add_all(
                ApiClient(
                    tenant_id=tenant.id,
                    client_id=client_id,
                    name=client_id,
                    scopes=list(CLIENT_SCOPES),
                    secret_digest=secret_digest(secret_key, secret),
                )
                for client_id, secret in clients
            )
        schema = issue_tenant_context(tenant.id, SLUG).schema
        async with db.engine.begin() as conn:
            # Created by the owner after provisioning: the tenant role reads it through the
            # schema's default privileges (as tests/support/tenants.py add_notes_table).
            await conn.exec_driver_sql(
                f'CREATE TABLE "{schema}".bench_notes (id bigint PRIMARY KEY, body text NOT NULL)'
            )
            await conn.exec_driver_sql(f"INSERT INTO \"{schema}\".bench_notes VALUES (1, 'note')")
    finally:
        await db.dispose()
    return Fixture(tenant.id, clients)


async def mint(url: str, secret_key: str, issuer: str, fixture: Fixture) -> str:
    db = Database(url)
    try:
        ring = KeyRing(secret_key)
        await ring.load(db.engine)
        token: str
        token, _ = issue_access_token(
            ring,
            issuer=issuer,
            audience=issuer,
            subject=fixture.client_id,
            client_id=fixture.client_id,
            scope="work:read",
            tenant=fixture.tenant_id,
        )
    finally:
        await db.dispose()
    return token


async def token_events(url: str) -> int:
    db = Database(url)
    try:
        async with db.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(TokenEvent)) or 0)
    finally:
        await db.dispose()


# --- the figures ------------------------------------------------------------------------

HEADER = f"{'':44s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'non-200':>8s}"


def row(label: str, m: Measured) -> str:
    r = m.result
    return f"{label:44s} {r.rate:8.0f} {r.ms(0.5):7.2f} {r.ms(0.99):7.2f} {r.failed:8d}"


def cpu_line(m: Measured, unit: str) -> str:
    roles = ("server", "postgres", "redis", "client")
    per = ", ".join(f"{role} {m.per_request_us(role):.0f}" for role in roles)
    share = ", ".join(f"{role} {m.share(role):.0f}%" for role in roles)
    others = f"other processes {m.share('other'):.0f}%"
    if m.share("other") >= 5:
        others += f" ({m.busiest_others()})"
    return f"  CPU per {unit} (µs): {per}\n  CPU during the run (% of one core): {share}; {others}"


def report_failures(m: Measured, server: Server) -> None:
    r = m.result
    if r.failed or r.reconnects:
        print(f"  !! statuses {dict(r.statuses)}, reconnects {r.reconnects}")
        print(f"  !! first non-200 response:\n{r.sample.decode(errors='replace')[:2000]}")
        print(f"  !! server output (last lines):\n{server.tail()}")


# --- the command line and the run ---------------------------------------------------------

# Full sizes are the defaults; --quick runs the same paths in seconds (figures not quoted).
QUICK = {
    "seconds": 1.0,
    "trials": 1,
    "warmup": 0.5,
    "connections": 4,
    "rounds": 2,
    "round_seconds": 0.5,
}


@dataclass(frozen=True)
class Bench:
    """One run's database, broker, key, tenant and clients, and whose CPU is whose."""

    args: argparse.Namespace
    url: str
    secret_key: str
    fixture: Fixture
    watch: Watch


Figure = Callable[[Bench], None]


def options(parser: argparse.ArgumentParser, *, tokens: bool, reads: bool) -> None:
    if tokens:
        parser.add_argument("--seconds", type=float, default=10.0, help="token load duration")
        parser.add_argument("--trials", type=int, default=3, help="token load runs (median shown)")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    if reads:
        parser.add_argument("--rounds", type=int, default=12, help="interleaved read rounds")
        parser.add_argument("--round-seconds", type=float, default=2.0)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BPO_TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (any database on it); a fresh database is made and dropped",
    )
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("BPO_BENCH_BROKER_URL")
        or os.environ.get("BPO_TEST_BROKER_URL")
        or "redis://127.0.0.1:6379/0",
    )


def main(doc: str | None, figures: dict[str, Figure]) -> None:
    """Parse the command line, set up the database, run `figures` (or `--only` one)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    parser = _cli.parser(doc)
    options(parser, tokens="tokens" in figures, reads="reads" in figures)
    if len(figures) > 1:
        parser.add_argument("--only", choices=tuple(figures), help="one figure only")
    dests = {action.dest for action in parser._actions}
    args = _cli.parse(parser, {k: v for k, v in QUICK.items() if k in dests})
    only = getattr(args, "only", None)

    name = f"bpo_bench_{uuid.uuid4().hex[:10]}"
    run(create_database(args.database_url, name))
    url = with_database(args.database_url, name)
    secret_key = secrets.token_urlsafe(32)
    try:
        run(migrate_database(url))
        fixture = run(prepare(url, secret_key))
        watch = Watch(postmaster=run(postmaster_of(url)), database=name)
        print(
            f"{os.cpu_count()} cores, shared by the load generator (this process), the server, "
            f"PostgreSQL and Redis: the figures are what one process does on a crowded machine"
        )
        print(
            f"load: keep-alive HTTP/1.1 client on uvloop, {args.connections} connections; "
            f"database {name} on {args.database_url.rsplit('/', 1)[0]}, broker {args.broker_url}"
        )
        bench = Bench(args, url, secret_key, fixture, watch)
        for key, figure in figures.items():
            if only in (None, key):
                figure(bench)
    finally:
        started = time.perf_counter()
        try:
            run(drop_tenants(url))
        finally:
            run(drop_database(args.database_url, name))
        print(
            f"\n(dropped the tenant schema and role, and {name}, "
            f"in {time.perf_counter() - started:.1f} s)"
        )
        sys.stdout.flush()
