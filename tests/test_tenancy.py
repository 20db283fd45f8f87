"""The tenant registry and provisioning: slugs, warm and cold signups, nothing half-made."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from bpo.core.db import Database
from bpo.core.errors import Problem
from bpo.core.tenant_migrations import schema_revisions, tenant_head
from bpo.platform.tenants.provisioning import fill_pool, pool_size
from bpo.platform.tenants.service import create_tenant, slug_problem
from tests.support.tenants import counts, make_tenant


@pytest.mark.parametrize(
    ("slug", "says"),
    [
        ("ab", "3 to 40"),
        ("a" * 41, "3 to 40"),
        ("Acme", "lowercase"),
        ("acme_ltd", "start with a letter"),
        ("1acme", "start with a letter"),
        ("acme-", "start with a letter"),
        ("ac me", "start with a letter"),
        ("platform", "reserved"),
        ("public", "reserved"),
        ("pg-catalog", "reserved"),
    ],
)
async def test_bad_slugs_are_refused_and_nothing_is_made(
    db: Database, slug: str, says: str
) -> None:
    before = await counts(db.engine)
    with pytest.raises(Problem) as caught:
        async with db.sessionmaker.begin() as session:
            await create_tenant(session, slug, "Firm")
    assert caught.value.status == 422
    assert says in (caught.value.detail or "")
    assert caught.value.extensions["errors"][0]["pointer"] == "#/slug"
    assert await counts(db.engine) == before


def test_pg_prefixed_slugs_cannot_even_be_spelled() -> None:
    assert slug_problem("pg_toast") is not None
    assert slug_problem("acme-trading") is None


async def test_duplicate_slug_is_a_conflict_and_nothing_is_made(db: Database) -> None:
    await make_tenant(db, "acme")
    before = await counts(db.engine)
    with pytest.raises(Problem) as caught:
        async with db.sessionmaker.begin() as session:
            await create_tenant(session, "acme", "Another Acme")
    assert caught.value.status == 409
    assert await counts(db.engine) == before


async def test_cold_signup_builds_schema_and_role_at_head(db: Database) -> None:
    assert await pool_size(db.engine) == 0
    async with db.sessionmaker.begin() as session:
        created = await create_tenant(session, "cold-firm", "Cold Firm")
    assert created.from_pool is False
    tenant = created.tenant
    async with db.engine.connect() as conn:
        role = (
            await conn.execute(
                text(
                    "SELECT r.rolcanlogin, pg_has_role(r.oid, 'bpo_tenants', 'MEMBER') "
                    "FROM pg_roles r WHERE r.rolname = :r"
                ),
                {"r": tenant.role_name},
            )
        ).one()
    assert tuple(role) == (False, True)  # NOLOGIN, in the tenants group
    assert (await schema_revisions(db.engine))[tenant.schema_name] == tenant_head()


async def test_warm_signup_takes_a_pooled_schema(db: Database) -> None:
    before = await counts(db.engine)
    assert await fill_pool(db.engine, 2) == 2
    assert await fill_pool(db.engine, 2) == 0  # already full
    async with db.sessionmaker.begin() as session:
        created = await create_tenant(session, "warm-firm", "Warm Firm")
    assert created.from_pool is True
    assert await pool_size(db.engine) == 1
    schemas, roles, tenants = await counts(db.engine)
    # one tenant and one schema still pooled: two schemas and roles were built, not three
    assert (schemas, roles, tenants) == (before[0] + 2, before[1] + 2, before[2] + 1)


async def test_concurrent_signups_claim_different_pooled_schemas(db: Database) -> None:
    await fill_pool(db.engine, 3)

    async def signup(slug: str) -> bool:
        async with db.sessionmaker.begin() as session:
            created = await create_tenant(session, slug, slug)
            await asyncio.sleep(0.05)  # hold the claim while the others claim
            return created.from_pool

    results = await asyncio.gather(*(signup(f"firm-{i}") for i in range(3)))
    assert results == [True, True, True]
    assert await pool_size(db.engine) == 0
    assert (await counts(db.engine))[2] == 3


async def test_a_failed_provision_leaves_nothing_behind(db: Database) -> None:
    """Two signups race for one slug: the loser's cold schema and role vanish with it."""
    before = await counts(db.engine)
    first = db.sessionmaker()
    second = db.sessionmaker()
    try:
        await create_tenant(first, "racer", "First")  # not committed yet
        loser = asyncio.create_task(create_tenant(second, "racer", "Second"))
        await asyncio.sleep(0.3)  # the second blocks on the unique slug
        await first.commit()
        with pytest.raises(IntegrityError):
            await loser
        await second.rollback()
    finally:
        await first.close()
        await second.close()
    schemas, roles, tenants = await counts(db.engine)
    assert (schemas, roles, tenants) == (before[0] + 1, before[1] + 1, before[2] + 1)


async def test_a_slug_never_changes(db: Database) -> None:
    await make_tenant(db, "fixed-name")
    with pytest.raises(DBAPIError, match="immutable"):
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE platform.tenants SET slug = 'other-name' WHERE slug = 'fixed-name'")
            )
