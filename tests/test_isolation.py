"""Isolation is enforced by PostgreSQL, not only by routing.

(a) SQL naming another tenant's schema, issued in a tenant session, is refused by the
database; (b) Hypothesis interleaves requests, savepoint rollbacks, exceptions and pool reuse
across three tenants and never sees another tenant's row; (c) over HTTP, another tenant's id
or an unknown tenant is a 404, a suspended tenant a 403.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import asyncpg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError

from bpo.core.db import Database, DatabaseOptions
from bpo.core.tenancy import (
    RoutedConnection,
    TenantContext,
    TenantRoutingError,
    issue_tenant_context,
    recycle_after_tenants,
    tenant_connection,
    tenant_session,
)
from bpo.platform.tenants.service import set_status
from bpo.settings import Settings
from tests.support.auth import bearer, client_token
from tests.support.isolation import assert_cross_tenant_404
from tests.support.probe import notes
from tests.support.tenants import add_notes_table, make_tenant

SLUGS = ("alpha-firm", "beta-firm", "gamma-firm")
WHO_AND_TIMEOUT = text("SELECT current_user, current_setting('statement_timeout')")


@dataclass
class Three:
    db: Database
    tenants: list[TenantContext]


@pytest.fixture
async def three(db: Database) -> Three:
    tenants = [await make_tenant(db, slug) for slug in SLUGS]
    for ctx in tenants:
        await add_notes_table(db.engine, ctx)
    return Three(db, tenants)


def is_permission_error(exc: BaseException) -> bool:
    return getattr(
        getattr(exc, "orig", None), "sqlstate", None
    ) == "42501" or "permission denied" in str(exc)


async def test_sql_naming_another_tenants_schema_is_refused_by_postgres(three: Three) -> None:
    a, b, _ = three.tenants
    async with tenant_session(three.db.engine, b) as session:
        await session.execute(insert(notes).values(tenant_slug=b.slug, body="b's secret"))
    for sql in (
        f'SELECT * FROM "{b.schema}".notes',
        f"INSERT INTO \"{b.schema}\".notes (tenant_slug, body) VALUES ('x', 'y')",
        "SELECT * FROM platform.tenants",
    ):
        with pytest.raises(DBAPIError) as caught:
            async with tenant_session(three.db.engine, a) as session:
                await session.execute(text(sql))
        assert is_permission_error(caught.value), caught.value
    async with tenant_session(three.db.engine, a) as session:  # its own schema works
        assert (await session.scalar(select(func.count()).select_from(notes))) == 0


async def test_nothing_session_level_survives_into_the_pool(three: Three) -> None:
    engine = Database(three.db.url, DatabaseOptions(pool_size=1, max_overflow=0)).engine
    try:
        async with engine.connect() as conn:
            owner, timeout = (
                await conn.execute(
                    text("SELECT current_user, current_setting('statement_timeout')")
                )
            ).one()
        for ctx in three.tenants:
            async with tenant_session(engine, ctx, "worker") as session:
                role, inside = (await session.execute(WHO_AND_TIMEOUT)).one()
                assert (role, inside) == (ctx.role, "2min")
        async with engine.connect() as conn:  # the same pooled backend
            after = (
                await conn.execute(
                    text("SELECT current_user, current_setting('statement_timeout')")
                )
            ).one()
        assert tuple(after) == (owner, timeout)
    finally:
        await engine.dispose()


async def test_a_rollback_inside_the_block_keeps_the_tenant(three: Three) -> None:
    a, b, _ = three.tenants
    async with tenant_session(three.db.engine, a) as session:
        await session.execute(insert(notes).values(tenant_slug=a.slug, body="undone"))
        await session.rollback()
        # The next statement begins a new transaction: still a's role, a's schema.
        assert await session.scalar(text("SELECT current_user")) == a.role
        with pytest.raises(DBAPIError) as caught:
            await session.execute(text(f'SELECT * FROM "{b.schema}".notes'))
        assert is_permission_error(caught.value)
    assert await _count(three.db.engine, a) == 0


async def test_the_bare_tenant_connection_is_as_routed_and_refused_as_a_session(
    three: Three,
) -> None:
    """Hot reads run on the bare asyncpg connection: the same role, schema and timeout, and
    another tenant's schema refused by PostgreSQL itself."""
    a, b, _ = three.tenants
    async with tenant_session(three.db.engine, b) as session:
        await session.execute(insert(notes).values(tenant_slug=b.slug, body="b's secret"))
    async with tenant_connection(three.db.engine, a) as conn:
        who, timeout, path = await conn.fetchrow(
            "SELECT current_user, current_setting('statement_timeout'),"
            " current_setting('search_path')"
        )
        assert (who, timeout, path) == (a.role, "15s", a.schema)
        assert await conn.fetchval("SELECT count(*) FROM notes") == 0  # its own, unqualified
    for sql in (f'SELECT * FROM "{b.schema}".notes', "SELECT * FROM platform.tenants"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with tenant_connection(three.db.engine, a) as conn:
                await conn.fetch(sql)
    async with three.db.engine.connect() as conn:  # nothing leaks through the pool
        assert await conn.scalar(text("SELECT current_user")) == "postgres"


async def test_a_role_that_cannot_be_set_leaves_no_open_transaction(three: Three) -> None:
    engine = Database(three.db.url, DatabaseOptions(pool_size=1, max_overflow=0)).engine
    a = three.tenants[0]
    ghost = issue_tenant_context(uuid.UUID(int=a.tenant_id.int ^ 1), "ghost-firm")
    try:
        with pytest.raises(DBAPIError, match="does not exist"):
            async with tenant_session(engine, ghost) as session:
                await session.execute(select(notes.c.id))
        async with engine.connect() as conn:  # the same backend, healthy and idle
            assert await conn.scalar(text("SELECT current_user")) != ghost.role
        async with tenant_session(engine, a) as session:
            assert await session.scalar(text("SELECT current_user")) == a.role
    finally:
        await engine.dispose()


async def test_a_transaction_begun_without_the_role_is_refused(three: Three) -> None:
    """Fail closed: if the SET LOCAL lines did not travel with BEGIN, nothing runs."""
    a = three.tenants[0]
    async with three.db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # the transaction is already open, as the owner
        raw = (await conn.get_raw_connection()).driver_connection
        assert isinstance(raw, RoutedConnection)
        raw.tenant_enter = f'SET LOCAL ROLE "{a.role}";'
        try:
            with pytest.raises(TenantRoutingError):
                await conn.execute(
                    text(f"INSERT INTO \"{a.schema}\".notes (tenant_slug, body) VALUES ('x', 'y')")
                )
        finally:
            raw.leave_tenant()
        await conn.rollback()
    assert await _count(three.db.engine, a) == 0


ACTIONS = st.sampled_from(["insert", "savepoint_rollback", "raise", "read", "pair"])


@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(st.tuples(st.integers(0, 2), ACTIONS, st.integers(0, 2)), min_size=1, max_size=12)
)
async def test_interleavings_never_show_another_tenants_row(
    three: Three, ops: list[tuple[int, str, int]]
) -> None:
    engine = Database(three.db.url, DatabaseOptions(pool_size=2, max_overflow=0)).engine
    try:
        expected = {ctx.slug: await _count(engine, ctx) for ctx in three.tenants}
        for who, action, other in ops:
            ctx = three.tenants[who]
            if action == "pair":  # two tenants at once on a two-connection pool
                await asyncio.gather(
                    _insert(engine, ctx, expected), _insert(engine, three.tenants[other], expected)
                )
            elif action == "insert":
                await _insert(engine, ctx, expected)
            elif action == "savepoint_rollback":
                async with tenant_session(engine, ctx) as session:
                    savepoint = await session.begin_nested()
                    await session.execute(insert(notes).values(tenant_slug=ctx.slug, body="sp"))
                    await savepoint.rollback()
                    assert await session.scalar(text("SELECT current_user")) == ctx.role
                    await _assert_only_own_rows(session, ctx)
            elif action == "raise":
                with pytest.raises(RuntimeError):
                    await _insert_then_fail(engine, ctx)
            async with tenant_session(engine, ctx) as session:
                await _assert_only_own_rows(session, ctx)
                assert (
                    await session.scalar(select(func.count()).select_from(notes))
                    == expected[ctx.slug]
                )
    finally:
        await engine.dispose()


async def _insert(engine, ctx: TenantContext, expected: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    async with tenant_session(engine, ctx) as session:
        await session.execute(insert(notes).values(tenant_slug=ctx.slug, body="n"))
        await _assert_only_own_rows(session, ctx)
    expected[ctx.slug] += 1


async def _insert_then_fail(engine, ctx: TenantContext) -> None:  # type: ignore[no-untyped-def]
    async with tenant_session(engine, ctx) as session:
        await session.execute(insert(notes).values(tenant_slug=ctx.slug, body="x"))
        raise RuntimeError("boom")


async def _count(engine, ctx: TenantContext) -> int:  # type: ignore[no-untyped-def]
    async with tenant_session(engine, ctx) as session:
        return int(await session.scalar(select(func.count()).select_from(notes)) or 0)


async def _assert_only_own_rows(session, ctx: TenantContext) -> None:  # type: ignore[no-untyped-def]
    owners = set((await session.scalars(select(notes.c.tenant_slug))).all())
    assert owners <= {ctx.slug}, f"{ctx.slug} saw rows of {owners - {ctx.slug}}"


async def test_connections_are_recycled_after_many_tenants(three: Three) -> None:
    engine = Database(three.db.url, DatabaseOptions(pool_size=1, max_overflow=0)).engine
    recycle_after_tenants(engine, limit=2)
    try:
        pids = []
        for ctx in [*three.tenants, *three.tenants]:
            async with tenant_session(engine, ctx) as session:
                pids.append(await session.scalar(text("SELECT pg_backend_pid()")))
        # Two tenants per backend, then a fresh one: the third tenant gets a new backend.
        assert pids[0] == pids[1]
        assert pids[2] != pids[1]
    finally:
        await engine.dispose()


# --- (c) over HTTP -------------------------------------------------------------------------


async def test_another_tenants_note_is_a_404_and_changes_nothing(
    client: AsyncTestClient[Litestar], three: Three, settings: Settings
) -> None:
    a, b, _ = three.tenants
    as_a = bearer(await client_token(three.db, settings, a))
    as_b = bearer(await client_token(three.db, settings, b))
    created = await client.post(
        f"/v1/tenants/{b.slug}/_probe/notes", json={"body": "b only"}, headers=as_b
    )
    assert created.status_code == 201, created.text
    note_id = created.json()["id"]
    path_b = f"/v1/tenants/{b.slug}/_probe/notes/{note_id}"
    assert (await client.get(path_b, headers=as_b)).status_code == 200

    # A's token on B's path, A's path with B's id, and an unknown tenant: all the same 404.
    unchanged = lambda: _count(three.db.engine, b)  # noqa: E731
    await assert_cross_tenant_404(client, "GET", path_b, headers=as_a)
    await assert_cross_tenant_404(client, "DELETE", path_b, headers=as_a, unchanged=unchanged)
    path_a = f"/v1/tenants/{a.slug}/_probe/notes/{note_id}"
    await assert_cross_tenant_404(client, "GET", path_a, headers=as_a)
    await assert_cross_tenant_404(client, "DELETE", path_a, headers=as_a, unchanged=unchanged)
    unknown = f"/v1/tenants/no-such-firm/_probe/notes/{note_id}"
    await assert_cross_tenant_404(client, "GET", unknown, headers=as_a)


async def test_a_suspended_tenant_gets_403_on_tenant_routes(
    client: AsyncTestClient[Litestar], three: Three, settings: Settings
) -> None:
    a = three.tenants[0]
    as_a = bearer(await client_token(three.db, settings, a))
    async with three.db.sessionmaker.begin() as session:
        await set_status(session, a.slug, "suspended")
    response = await client.post(
        f"/v1/tenants/{a.slug}/_probe/notes", json={"body": "x"}, headers=as_a
    )
    assert response.status_code == 403
    assert response.json()["type"].endswith("/tenant-suspended")
    assert await _count(three.db.engine, a) == 0
