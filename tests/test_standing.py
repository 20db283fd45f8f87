"""The guard's standing cache: an authenticated request costs no database round trip, yet a
change of access is seen at once here and within a notification's delivery in every other
process, and never trusted while the notification channel is down."""

from __future__ import annotations

import subprocess
import sys

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.core.db import Database, asyncpg_dsn
from bpo.settings import Settings
from tests.support.auth import bearer, make_user, user_token
from tests.support.jobs import wait_for
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]


def elsewhere(url: str, sql: str) -> None:
    """Run `sql` from another process (its commit reaches this one only by NOTIFY)."""
    code = (
        "import asyncio, asyncpg, sys\n"
        "async def main():\n"
        "    conn = await asyncpg.connect(sys.argv[1])\n"
        "    await conn.execute(sys.argv[2])\n"
        "    await conn.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code, asyncpg_dsn(url), sql], check=True)


async def test_a_change_made_in_another_process_is_seen_within_a_notification(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "standing-firm")
    user_id = await make_user(db, "sue@standing.example", tenants={firm: "tenant_admin"})
    headers = bearer(await user_token(db, settings, user_id, tenant=firm, role="tenant_admin"))
    path = f"/v1/tenants/{firm.slug}/users"
    assert (await client.get(path, headers=headers)).status_code == 200  # now cached
    app = client.app
    standing = app.state.standing

    async def listening() -> bool:
        return bool(standing.usable)

    await wait_for(listening, timeout=10)
    generation = standing.generation
    elsewhere(
        settings.database_url or "",
        f"UPDATE platform.memberships SET status = 'deactivated' WHERE user_id = '{user_id}'",
    )

    async def refused() -> bool:
        return (await client.get(path, headers=headers)).status_code == 401

    await wait_for(refused, timeout=2)  # the NOTIFY emptied the cache
    assert standing.generation > generation


async def test_while_the_listener_is_down_the_cache_is_not_trusted(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "blind-firm")
    user_id = await make_user(db, "bo@blind.example", tenants={firm: "tenant_admin"})
    headers = bearer(await user_token(db, settings, user_id, tenant=firm, role="tenant_admin"))
    path = f"/v1/tenants/{firm.slug}/users"
    standing = client.app.state.standing

    async def listening() -> bool:
        return bool(standing.usable)

    await wait_for(listening, timeout=10)
    assert (await client.get(path, headers=headers)).status_code == 200  # cached
    async with db.engine.begin() as conn:  # cut the listener off
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'bpo-listen-bpo_access'"
                " AND datname = current_database()"
            )
        )

    async def deaf() -> bool:
        return not standing.usable

    await wait_for(deaf, timeout=5)
    # A change that no notification reports while the listener is down (another process).
    elsewhere(
        settings.database_url or "",
        f"UPDATE platform.users SET status = 'deactivated' WHERE id = '{user_id}'",
    )
    answer = await client.get(path, headers=headers)
    assert answer.status_code == 401  # asked the database, not the cache
    await wait_for(listening, timeout=10)  # and it reconnects


async def test_a_cached_standing_spares_the_database_round_trip(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "quiet-firm")
    user_id = await make_user(db, "qi@quiet.example", tenants={firm: "tenant_admin"})
    headers = bearer(await user_token(db, settings, user_id, tenant=firm, role="tenant_admin"))
    standing = client.app.state.standing

    async def listening() -> bool:
        return bool(standing.usable)

    await wait_for(listening, timeout=10)
    path = f"/v1/tenants/{firm.slug}/work/calendar"
    assert (await client.get(path, headers=headers)).status_code == 200
    (entry,) = standing._rows.values()  # the access statement's answer, read once
    for _ in range(5):
        assert (await client.get(path, headers=headers)).status_code == 200
    (again,) = standing._rows.values()
    assert again is entry  # answered from the cache: not read again, not put again
