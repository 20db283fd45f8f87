"""Retries, the failed-jobs view and replay (staff admins), and the periodic scheduler."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import timedelta
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text

from bpo.core.db import Database
from bpo.core.tenancy import tenant_session
from bpo.jobs.models import FailedJob, OutboxMessage
from bpo.jobs.outbox import enqueue
from bpo.jobs.scheduler import Scheduler, period_id
from bpo.settings import Settings
from tests.support.auth import bearer, make_user, staff_admin_token, user_token
from tests.support.jobs import (
    add_effects_table,
    effect_counts,
    record_after_a_long_wait,
    record_unless_file_exists,
    running_worker,
    wait_for,
)
from tests.support.processes import bpo_env, spawn
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]


async def test_a_job_that_keeps_failing_is_listed_and_replayed_by_staff_admins(
    client: Client, db: Database, settings: Settings, tmp_path: Path
) -> None:
    firm = await make_tenant(db, "failing-firm")
    await add_effects_table(db.engine, firm)
    switch = tmp_path / "fail"
    switch.touch()
    as_staff_admin = bearer(await staff_admin_token(db, settings))
    async with running_worker(settings):
        async with tenant_session(db.engine, firm) as session:
            message_id = await enqueue(
                session, record_unless_file_exists, str(switch), "after-replay", tenant=firm
            )

        async def failed() -> bool:
            async with db.sessionmaker() as session:
                return await session.get(FailedJob, message_id) is not None

        await wait_for(failed)  # a first run and one retry, then it lands in failed_jobs
        listed = await client.get("/v1/staff/jobs/failed", headers=as_staff_admin)
        assert listed.status_code == 200, listed.text
        [row] = listed.json()["items"]
        assert row["id"] == str(message_id)
        assert row["actor"] == "record_unless_file_exists"
        assert row["tenant_id"] == str(firm.tenant_id)
        assert row["retries"] == 2 and "the switch" in row["error"]
        assert await effect_counts(db.engine, firm) == {}

        switch.unlink()  # the cause is fixed: replay
        replayed = await client.post(
            f"/v1/staff/jobs/failed/{message_id}/replay", headers=as_staff_admin
        )
        assert replayed.status_code == 202, replayed.text
        again = await client.post(
            f"/v1/staff/jobs/failed/{message_id}/replay", headers=as_staff_admin
        )
        assert again.status_code == 409 and "replayed" in again.json()["detail"]

        async def ran() -> bool:
            return await effect_counts(db.engine, firm) == {"after-replay": 1}

        await wait_for(ran)
    shown = await client.get(f"/v1/staff/jobs/failed/{message_id}", headers=as_staff_admin)
    assert shown.json()["replayed_as"] == replayed.json()["message_id"]
    pending = await client.get("/v1/staff/jobs/failed", headers=as_staff_admin)
    assert pending.json()["items"] == []  # replayed rows are hidden unless asked for
    everything = await client.get(
        "/v1/staff/jobs/failed", params={"include_replayed": "true"}, headers=as_staff_admin
    )
    assert len(everything.json()["items"]) == 1


async def test_failed_jobs_are_for_staff_admins_only(
    client: Client, db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "curious-firm")
    member = await make_user(db, "admin@curious.example", tenants={firm: "tenant_admin"})
    as_tenant_admin = bearer(
        await user_token(db, settings, member, tenant=firm, role="tenant_admin")
    )
    refused = await client.get("/v1/staff/jobs/failed", headers=as_tenant_admin)
    assert refused.status_code in (403, 404)
    as_staff_admin = bearer(await staff_admin_token(db, settings))
    unknown = await client.post(
        f"/v1/staff/jobs/failed/{uuid.uuid4()}/replay", headers=as_staff_admin
    )
    assert unknown.status_code == 404
    bad = await client.get(
        "/v1/staff/jobs/failed", params={"cursor": "nope"}, headers=as_staff_admin
    )
    assert bad.status_code == 400


async def test_one_scheduler_at_a_time_enqueues_each_period_once(
    settings: Settings, db: Database
) -> None:
    assert settings.database_url
    first = Scheduler(settings.database_url, tick_s=0.05, retry_s=0.1)
    second = Scheduler(settings.database_url, tick_s=0.05, retry_s=0.1)
    first.start()
    second.start()
    try:

        async def one_holds() -> bool:
            return first.holding or second.holding

        await wait_for(one_holds)
        await asyncio.sleep(0.5)  # many ticks
        assert [first.holding, second.holding].count(True) == 1
        async with db.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.actor == "refill_tenant_pool")
            )
        assert count == 1  # one row for the current five-minute period, however many ticks
        holder, standby = (first, second) if first.holding else (second, first)
        holder.stop()

        async def taken_over() -> bool:
            return standby.holding

        await wait_for(taken_over, timeout=10)
    finally:
        first.stop()
        second.stop()
    async with db.engine.connect() as conn:
        ids = (await conn.execute(select(OutboxMessage.id))).scalars().all()
        lock_holders = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
    assert len(ids) == len(set(ids))
    assert any(i == period_id("refill_tenant_pool", p) for i in ids for p in _recent_periods())
    assert lock_holders == 0  # released with the connections


def _recent_periods() -> list[int]:
    import time

    now = int(time.time() // 300)
    return [now - 1, now]


async def test_bpo_scheduler_enqueues_periodic_jobs_and_stops_cleanly(
    settings: Settings, db: Database
) -> None:
    assert settings.database_url
    process = spawn("scheduler", env=bpo_env(BPO_DATABASE_URL=settings.database_url))
    try:

        async def enqueued() -> bool:
            async with db.engine.connect() as conn:
                actors = (await conn.execute(select(OutboxMessage.actor))).scalars().all()
            return "refill_tenant_pool" in actors

        await wait_for(enqueued, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=20)
    assert process.returncode == 0, stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "scheduler_holds_the_lock" in events and events[-1] == "scheduler_stopped"


async def test_the_sweep_forgets_old_sent_rows_and_processed_ids_only(
    settings: Settings, db: Database
) -> None:
    old_sent, new_sent, old_unsent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    old_id, new_id = uuid.uuid4(), uuid.uuid4()
    async with db.engine.begin() as conn:
        for ident, sent in (
            (old_sent, timedelta(days=2)),
            (new_sent, timedelta(hours=1)),
            (old_unsent, None),
        ):
            await conn.execute(
                text(
                    "INSERT INTO platform.outbox (id, actor, queue, args, kwargs, created_at,"
                    " available_at, sent_at) VALUES (:id, 'ping', 'default', '[]', '{}',"
                    " now() - interval '3 days', now() + interval '1 day',"
                    " now() - CAST(:sent AS interval))"
                ),
                {"id": ident, "sent": sent},
            )
        for ident, age in ((old_id, timedelta(days=20)), (new_id, timedelta(days=1))):
            await conn.execute(
                text(
                    "INSERT INTO platform.processed_messages (message_id, processed_at)"
                    " VALUES (:id, now() - CAST(:age AS interval))"
                ),
                {"id": ident, "age": age},
            )
    async with running_worker(settings):
        async with db.sessionmaker.begin() as session:
            await enqueue(session, "sweep_job_tables", tenant=None)

        async def swept() -> bool:
            async with db.engine.connect() as conn:
                return not await conn.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.id == old_sent)
                )

        await wait_for(swept)
    async with db.engine.connect() as conn:
        kept = set((await conn.execute(select(OutboxMessage.id))).scalars())
        processed = await conn.execute(text("SELECT message_id FROM platform.processed_messages"))
        ids = set(processed.scalars())
    assert {new_sent, old_unsent} <= kept and old_sent not in kept
    assert new_id in ids and old_id not in ids


async def test_a_job_over_its_time_limit_is_stopped_and_changes_nothing(
    settings: Settings, db: Database
) -> None:
    firm = await make_tenant(db, "slow-firm")
    await add_effects_table(db.engine, firm)
    async with running_worker(settings, worker_threads=1):  # the same thread runs both
        async with tenant_session(db.engine, firm) as session:
            slow = await enqueue(session, record_after_a_long_wait, "slow", tenant=firm)
            await enqueue(session, record_unless_file_exists, "/nonexistent", "next", tenant=firm)

        async def failed() -> bool:
            async with db.sessionmaker() as session:
                return await session.get(FailedJob, slow) is not None

        async def next_ran() -> bool:
            return "next" in await effect_counts(db.engine, firm)

        await wait_for(failed)
        await wait_for(next_ran)
        async with db.sessionmaker() as session:
            row = await session.get(FailedJob, slow)
        assert row is not None and "JobTimeLimitExceeded" in row.error
    # The cancelled job's transaction rolled back; its connection went back to the pool.
    assert await effect_counts(db.engine, firm) == {"next": 1}
    async with db.engine.connect() as conn:
        lingering = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bpo-worker'"
                " AND datname = current_database() AND state <> 'idle'"
            )
        )
    assert lingering == 0
