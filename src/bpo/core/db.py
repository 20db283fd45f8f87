"""The async engine, a session per request, and how a lost database is recognised."""

from __future__ import annotations

import asyncio
import errno
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bpo.core.tenancy import RoutedConnection, route_tenants_in_begin

_CONNECTION_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENOENT,  # a unix socket that is gone
    errno.EPIPE,
    errno.ETIMEDOUT,
}
_ASYNCPG_CONNECTION_ERRORS = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def async_url(url: str) -> str:
    """`postgresql://…` as SQLAlchemy's asyncpg dialect wants it."""
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        scheme = "postgresql+asyncpg"
    return f"{scheme}://{rest}"


def asyncpg_dsn(url: str) -> str:
    """`postgresql+asyncpg://…` as asyncpg itself wants it."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """SQL with `:name` parameters as asyncpg wants it (`$1`, `$2`, ...), and the names in
    order: one statement text shared by the SQLAlchemy and the bare-asyncpg paths."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAMED.sub(number, sql), tuple(names)


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def with_database(url: str, database: str) -> str:
    """The same server URL naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@dataclass(frozen=True, slots=True)
class DatabaseOptions:
    pool_size: int = 10
    max_overflow: int = 10
    connect_timeout: float = 5.0
    statement_timeout_ms: int = 15_000
    application_name: str = "bpo"
    # Prepared statements kept per connection (SQLAlchemy's asyncpg cache, LRU). Routed SQL
    # names the tenant's schema, so each tenant's query is its own statement: 100 (the
    # default) thrashes across many tenants; the size also bounds the backend's plan memory.
    statement_cache_size: int = 1000
    # A connection idle this long is pinged before use (see ping_when_idle).
    ping_after_idle_s: float = 2.0


class Database:
    """One engine and session factory per process (API or worker)."""

    def __init__(self, url: str, options: DatabaseOptions | None = None) -> None:
        opts = options or DatabaseOptions()
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            async_url(url),
            # json/jsonb values decoded by msgspec (C): the same dicts, lists and scalars as
            # the standard library's, at a fraction of the cost on list reads.
            json_deserializer=msgspec.json.decode,
            pool_size=opts.pool_size,
            max_overflow=opts.max_overflow,
            pool_timeout=opts.connect_timeout,
            connect_args={
                "connection_class": RoutedConnection,
                "prepared_statement_cache_size": opts.statement_cache_size,
                "timeout": opts.connect_timeout,
                "server_settings": {
                    "application_name": opts.application_name,
                    "statement_timeout": str(opts.statement_timeout_ms),
                },
            },
        )
        route_tenants_in_begin(self.engine)
        ping_when_idle(self.engine, opts.ping_after_idle_s)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection where each statement is its own transaction: no BEGIN and
        COMMIT round trips, for reads and for single-statement writes."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    async def ping(self) -> None:
        """Raise unless a pooled connection answers `SELECT 1` (callers set the time limit)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self, within_s: float = 5.0) -> None:
        """Close the pool. A graceful close waits for the server to end the session; one
        that has not ended within `within_s` (its backend still busy) is cut instead, with
        every connection left in the pool, so shutting down never waits on the server."""
        try:
            await asyncio.wait_for(self.engine.dispose(), within_s)
        except TimeoutError:
            idle = getattr(getattr(self.engine.sync_engine.pool, "_pool", None), "queue", ())
            for record in list(idle):
                connection = getattr(record, "dbapi_connection", None)
                if connection is not None:
                    connection.terminate()  # the server rolls back what was open


def ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Ping a pooled connection on checkout only if it sat idle for `idle_s` seconds.

    SQLAlchemy's pool_pre_ping pings on every checkout: three round trips on asyncpg (BEGIN,
    `;`, ROLLBACK), a third of a token request's CPU. A database restart is what kills pooled
    connections, and after it the pool has sat idle; a busy pool is not pinged and a request
    that meets a dead connection gets a 503 while SQLAlchemy invalidates the whole pool, so
    the next requests reconnect.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _idle_since(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool retries with a fresh connection
            raise sa_exc.DisconnectionError(str(exc)) from exc


async def session_scope(db: Database) -> AsyncGenerator[AsyncSession, None]:
    """A session whose transaction commits if the caller finishes and rolls back if it raises."""
    async with db.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


def is_database_unavailable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) means the database cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_connection_failure(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_connection_failure(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.TimeoutError):  # pool exhausted: nothing to give the request
        return True
    if isinstance(exc, (*_ASYNCPG_CONNECTION_ERRORS, ConnectionError)):
        return True
    return isinstance(exc, OSError) and exc.errno in _CONNECTION_ERRNOS


async def can_connect(url: str, timeout: float = 5.0) -> str | None:
    """None if a connection opens; otherwise a one-line reason."""
    try:
        conn: Any = await asyncio.wait_for(asyncpg.connect(asyncpg_dsn(url)), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    await conn.close()
    return None


async def create_database(server_url: str, name: str, *, if_missing: bool = False) -> None:
    """CREATE DATABASE `name` on the server of `server_url` (any database on it)."""
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        if if_missing and await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE `name`, disconnecting whoever is still in it."""
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
