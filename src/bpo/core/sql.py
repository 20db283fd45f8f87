"""One statement text, run through an ORM session or on a bare asyncpg connection.

Hot write paths (a posting) run on the tenant's bare connection (`tenancy.tenant_connection`),
where SQLAlchemy's per-statement work is most of a request's CPU; the same functions serve
callers that hold a session (jobs, other domains). Statements use `:name` parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import asyncpg
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.db import positional


class Sql(Protocol):
    async def row(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The statement's first row (None when it returns none)."""
        ...

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        """Every row of the statement."""
        ...


@lru_cache(maxsize=256)
def _clause(sql: str) -> TextClause:
    return text(sql)


@lru_cache(maxsize=256)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    return positional(sql)


class SessionSql:
    """Statements in a session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def row(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None:
        result = await self.session.execute(_clause(sql), dict(params))
        found = result.first() if getattr(result, "returns_rows", True) else None
        return None if found is None else tuple(found)

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        return [tuple(r) for r in await self.session.execute(_clause(sql), dict(params))]


class RawSql:
    """Statements on a bare asyncpg connection (already in the caller's transaction)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def row(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None:
        numbered, names = _numbered(sql)
        found = await self.conn.fetchrow(numbered, *(params[name] for name in names))
        return None if found is None else tuple(found)

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        numbered, names = _numbered(sql)
        return [
            tuple(r) for r in await self.conn.fetch(numbered, *(params[name] for name in names))
        ]
