"""What benchmarks/request_path.py serves and measures besides `bpo serve`.

The two peers of bpo's tenant read, each an app served by bpo's own HTTP server
(`bpo.core.serving.run_http`, Granian) in a process of its own, so only the app differs:
  - bare: Litestar + an asyncpg pool, no SQLAlchemy, no authentication;
  - naive: Litestar + an SQLAlchemy ORM session per request + an ES256 JWT check (joserfc).
Also: the tenants, clients and work requests they all serve (made through bpo's own
provisioning), and one load round, by wrk when it is there, else by _load.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import resource
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from benchmarks._load import Measured, Result, Watch, cpu_snapshot, cpu_used, measure
from litestar import Litestar, Request, get
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from sqlalchemy import DateTime, String, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bpo.core.db import Database, async_url, asyncpg_dsn
from bpo.core.ids import uuid7
from bpo.core.security import new_client_secret, secret_digest
from bpo.core.tenancy import issue_tenant_context
from bpo.identity.keys import KeyRing
from bpo.identity.models import ApiClient
from bpo.identity.scopes import CLIENT_SCOPES
from bpo.identity.tokens import issue_access_token
from bpo.platform.tenants.service import create_tenant

PATH = "/v1/tenants/{slug}/work/requests?limit=20"

# --- bare: Litestar + asyncpg ----------------------------------------------------------------

# The slug found, and the tenant's role and search_path set, in one statement: as long as
# the transaction lasts. The select's text is the same for every tenant (one prepared
# statement per connection); PostgreSQL re-plans it when the search_path differs.
_ROUTE = (
    "SELECT set_config('role', 'tenant_' || replace(id::text, '-', '') || '_app', true),"
    " set_config('search_path', 'tenant_' || replace(id::text, '-', ''), true)"
    " FROM platform.tenants WHERE slug = $1 AND status = 'active'"
)
_LIST = (  # the columns of Item, in its order
    "SELECT id::text, service_key, title, status, priority, payload, attachments,"
    " CASE WHEN status = 'completed' THEN result END, requested_by, created_at, updated_at,"
    " closed_at FROM work_requests ORDER BY id DESC LIMIT $1"
)


class Item(msgspec.Struct):
    id: str
    service: str
    title: str
    status: str
    priority: int
    payload: Any
    attachments: list[str]
    result: Any
    requested_by: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class Page(msgspec.Struct):
    items: list[Item]
    next_cursor: str | None


async def _jsonb(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=msgspec.json.encode, decoder=msgspec.json.decode, schema="pg_catalog"
    )


@get("/v1/tenants/{slug:str}/work/requests")
async def bare_list(request: Request[Any, Any, Any], slug: str, limit: int = 20) -> Page:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchrow(_ROUTE, slug) is None:
            raise NotFoundException(f"no tenant {slug!r}")
        rows = await conn.fetch(_LIST, limit)
    items = [Item(*row) for row in rows]
    return Page(items, items[-1].id if len(items) == limit else None)


@get("/ready")
async def ready() -> str:
    return "ok"


@contextlib.asynccontextmanager
async def _bare_pool(app: Litestar) -> AsyncIterator[None]:
    size, overflow = int(os.environ["RP_POOL_SIZE"]), int(os.environ["RP_MAX_OVERFLOW"])
    pool = await asyncpg.create_pool(
        asyncpg_dsn(os.environ["RP_DATABASE_URL"]),
        min_size=size,
        max_size=size + overflow,
        init=_jsonb,
    )
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


# --- naive: Litestar + SQLAlchemy ORM session + joserfc ES256 check ---------------------


class NaiveBase(DeclarativeBase):
    pass


class NaiveTenant(NaiveBase):
    __tablename__ = "tenants"
    __table_args__ = {"schema": "platform"}
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(20))


class NaiveWorkRequest(NaiveBase):
    __tablename__ = "work_requests"
    __table_args__ = {"schema": "tenant"}  # mapped to the tenant's schema per request
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    service_key: Mapped[str] = mapped_column(String(60))
    service_version: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    priority: Mapped[int]
    attachments: Mapped[list[str]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20))
    result: Mapped[Any] = mapped_column(JSONB, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    cancel_reason: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def _naive_claims(request: Request[Any, Any, Any]) -> dict[str, Any]:
    from joserfc import jwt
    from joserfc.errors import JoseError

    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("a bearer token is needed")
    state = request.app.state
    try:
        decoded = jwt.decode(token, state.public_key, algorithms=["ES256"])
        state.claims_registry.validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise NotAuthorizedException(f"invalid token: {exc}") from exc
    claims: dict[str, Any] = decoded.claims
    if "work:read" not in str(claims.get("scope", "")).split():
        raise PermissionDeniedException("the token lacks work:read")
    return claims


def _as_dict(entity: NaiveWorkRequest) -> dict[str, Any]:
    return {column.key: getattr(entity, column.key) for column in entity.__table__.columns}


@get("/v1/tenants/{slug:str}/work/requests")
async def naive_list(request: Request[Any, Any, Any], slug: str, limit: int = 20) -> dict[str, Any]:
    claims = _naive_claims(request)
    async with request.app.state.sessionmaker() as session, session.begin():
        tenant = await session.scalar(select(NaiveTenant).where(NaiveTenant.slug == slug))
        if tenant is None or tenant.status != "active" or claims.get("tenant") != str(tenant.id):
            raise NotFoundException(f"no tenant {slug!r}")
        await session.execute(text(f'SET LOCAL ROLE "tenant_{tenant.id.hex}_app"'))
        query = select(NaiveWorkRequest).order_by(NaiveWorkRequest.id.desc()).limit(limit)
        routed = {"schema_translate_map": {"tenant": f"tenant_{tenant.id.hex}"}}
        rows = list(await session.scalars(query, execution_options=routed))
        items = [_as_dict(row) for row in rows]
    following = str(rows[-1].id) if len(rows) == limit else None
    return {"items": items, "next_cursor": following}


@contextlib.asynccontextmanager
async def _naive_engine(app: Litestar) -> AsyncIterator[None]:
    from joserfc import jwt
    from joserfc.jwk import ECKey

    engine = create_async_engine(
        async_url(os.environ["RP_DATABASE_URL"]),
        pool_size=int(os.environ["RP_POOL_SIZE"]),
        max_overflow=int(os.environ["RP_MAX_OVERFLOW"]),
    )
    app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    app.state.public_key = ECKey.import_key(json.loads(os.environ["RP_PUBLIC_JWK"]))
    app.state.claims_registry = jwt.JWTClaimsRegistry(
        exp={"essential": True}, iss={"essential": True, "value": os.environ["RP_ISSUER"]}
    )
    try:
        yield
    finally:
        await engine.dispose()


def serve(kind: str) -> None:
    """Serve the bare or the naive app the way `bpo serve` serves bpo (run in a subprocess)."""
    from bpo.core.serving import run_http

    apps = {"bare": (bare_list, _bare_pool), "naive": (naive_list, _naive_engine)}
    handler, lifespan = apps[kind]
    app = Litestar([handler, ready], lifespan=[lifespan], logging_config=None)
    run_http(app, "127.0.0.1", int(os.environ["RP_PORT"]))


# --- the tenants, their clients and work requests ------------------------------------------


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    slug: str
    clients: list[tuple[str, str]]  # (client id, secret): the first one reads


async def _make_tenants(db: Database, count: int, parallel: int = 4) -> list[tuple[uuid.UUID, str]]:
    made: list[tuple[uuid.UUID, str]] = []
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            slug = f"rp-{queue.pop(0):05d}"
            async with db.sessionmaker.begin() as session:
                made.append(((await create_tenant(session, slug, slug)).tenant.id, slug))

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return sorted(made, key=lambda pair: pair[1])


_COLUMNS = (
    "id",
    "service_key",
    "service_version",
    "title",
    "payload",
    "priority",
    "status",
    "result",
    "requested_by",
    "created_at",
    "updated_at",
    "closed_at",
)
_STATUSES = ("open", "open", "in_progress", "waiting_on_client", "completed")


def _work_rows(count: int, rng: random.Random) -> list[tuple[Any, ...]]:
    start = datetime.now(UTC) - timedelta(days=count)
    rows = []
    for i in range(count):
        at, status = start + timedelta(days=i), rng.choice(_STATUSES)
        payload = {
            "period": f"2026-{i % 12 + 1:02d}",
            "entity": f"Entity {rng.randrange(99)}",
            "notes": "Reconcile the bank accounts and post the adjustments.",
        }
        result = json.dumps({"report": f"r-{i}.pdf"}) if status == "completed" else None
        rows.append(
            (
                uuid7(),
                "bookkeeping",
                1,
                f"Month-end close {i}",
                json.dumps(payload),
                rng.randrange(101),
                status,
                result,
                "client@firm.example",
                at,
                at,
                at if status == "completed" else None,
            )
        )
    return rows


async def seed(url: str, secret_key: str, tenants: int, rows: int, clients: int) -> list[Tenant]:
    """`tenants` tenants through bpo's provisioning; one API client each (`clients` for the
    first); `rows` work requests each, by COPY into each schema; then ANALYZE."""
    db = Database(url)
    try:
        made = await _make_tenants(db, tenants)
        fixture = [
            Tenant(
                tenant_id,
                slug,
                [(f"{slug}-c{j}", new_client_secret()) for j in range(clients if i == 0 else 1)],
            )
            for i, (tenant_id, slug) in enumerate(made)
        ]
        async with db.sessionmaker.begin() as session:
            session.add_all(
                ApiClient(
                    tenant_id=t.id,
                    client_id=client_id,
                    name=client_id,
                    scopes=list(CLIENT_SCOPES),
                    secret_digest=secret_digest(secret_key, s),
                )
                for t in fixture
                for client_id, s in t.clients
            )
    finally:
        await db.dispose()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rng = random.Random(20)
        for t in fixture:
            schema = issue_tenant_context(t.id, t.slug).schema
            await conn.copy_records_to_table(
                "work_requests", schema_name=schema, columns=_COLUMNS, records=_work_rows(rows, rng)
            )
            await conn.execute(f'ANALYZE "{schema}".work_requests')
        platform = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='platform'")
        for row in platform:
            await conn.execute(f'ANALYZE platform."{row[0]}"')
    finally:
        await conn.close()
    return fixture


async def mint(
    url: str, secret_key: str, issuer: str, tenants: list[Tenant]
) -> tuple[list[str], str]:
    """A work:read token per tenant (its first client's), and the active public JWK."""
    db = Database(url)
    try:
        ring = KeyRing(secret_key)
        await ring.load(db.engine)
    finally:
        await db.dispose()
    tokens = [
        issue_access_token(
            ring,
            issuer=issuer,
            audience=issuer,
            subject=t.clients[0][0],
            client_id=t.clients[0][0],
            scope="work:read",
            tenant=t.id,
        )[0]
        for t in tenants
    ]
    return tokens, json.dumps(ring.jwks["keys"][0])


# --- one round of load -------------------------------------------------------------------


@dataclass
class Round:
    rate: float
    p50: float  # ms
    p99: float
    ok: int
    failed: int
    server_us: float  # server CPU per 200
    pg_us: float
    client: float  # the load generator's CPU, % of one core

    @staticmethod
    def of(m: Measured, p50: float | None = None, p99: float | None = None) -> Round:
        """From a _load.Measured (its latencies, unless wrk gave the percentiles)."""
        r, client = m.result, m.seconds_of("client") + m.cpu.get("other:wrk", 0.0)
        p50 = r.ms(0.5) if p50 is None else p50
        p99 = r.ms(0.99) if p99 is None else p99
        return Round(
            r.rate,
            p50,
            p99,
            r.ok,
            r.failed,
            m.per_request_us("server"),
            m.per_request_us("postgres"),
            client / r.seconds * 100,
        )


def median(rounds: list[Round], field: str) -> float:
    return statistics.median(getattr(r, field) for r in rounds)


_WRK_SCRIPT = """
local reqs, n, start = {}, 0, 1
local f = assert(io.open(%r, "rb"))
local data = f:read("*a")
f:close()
while true do
  local stop = string.find(data, "\\1", start, true)
  if not stop then break end
  n = n + 1
  reqs[n] = string.sub(data, start, stop - 1)
  start = stop + 1
end
local i = 0
request = function()
  i = i + 1
  return reqs[(i %% n) + 1]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RP %%d %%d %%d %%d %%.1f %%.1f\\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50),
    latency:percentile(99)))
end
"""


def wrk_round(
    wrk: str,
    cpus: set[int],
    port: int,
    requests: list[bytes],
    connections: int,
    seconds: float,
    watch: Watch,
) -> Round:
    """One wrk run (its Lua script sends `requests` in turn), pinned to `cpus`."""
    with tempfile.TemporaryDirectory(prefix="bpo-wrk-") as tmp:
        raw = os.path.join(tmp, "requests")
        with open(raw, "wb") as out:
            out.write(b"".join(r + b"\x01" for r in requests))
        script = os.path.join(tmp, "round.lua")
        with open(script, "w") as out:
            out.write(_WRK_SCRIPT % raw)
        threads = max(1, min(len(cpus), connections))
        argv = [
            wrk,
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            script,
            f"http://127.0.0.1:{port}",
        ]
        before, children = cpu_snapshot(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        used = cpu_used(before, cpu_snapshot(), watch)
    # wrk has exited by the second snapshot: its CPU is what this process's children used.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["other:wrk"] = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    found = re.search(r"^RP (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)$", done.stdout, re.M)
    if done.returncode or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    total, micros, status, broken = (int(found[i]) for i in range(1, 5))
    result = Result(seconds=micros / 1e6)
    result.statuses[200], result.statuses[0] = total - status, status + broken
    return Round.of(Measured(result, used), float(found[5]) / 1000, float(found[6]) / 1000)


def one_round(
    wrk: str | None,
    cpus: set[int],
    port: int,
    requests: list[bytes],
    connections: int,
    seconds: float,
    watch: Watch,
) -> Round:
    """One round of load: wrk when given, else _load.py's client in this process."""
    if wrk:
        return wrk_round(wrk, cpus, port, requests, connections, seconds, watch)
    return Round.of(measure(port, requests, connections, seconds, watch))
