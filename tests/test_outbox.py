"""Jobs through the outbox: nothing for a rollback, nothing lost after a crash, effects once.

Runs against the session's broker (Redis, or the embedded one) and, when
BPO_TEST_AMQP_URL is set, RabbitMQ too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.jobs.models import OutboxMessage, TenantProcessedMessage
from bpo.jobs.outbox import UnknownJob, enqueue
from bpo.settings import Settings
from tests.support.jobs import (
    add_effects_table,
    effect_counts,
    outbox_pending,
    record_effect,
    running_worker,
    spawn_worker,
    wait_for,
)
from tests.support.tenants import make_tenant

AMQP_URL = os.environ.get("BPO_TEST_AMQP_URL")
BROKERS = [
    pytest.param("session", id="redis"),
    pytest.param(
        "amqp",
        id="rabbitmq",
        marks=pytest.mark.skipif(not AMQP_URL, reason="BPO_TEST_AMQP_URL not set (CI sets it)"),
    ),
]


@pytest.fixture(params=BROKERS)
def broker_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "amqp":
        assert AMQP_URL
        return dataclasses.replace(settings, broker_url=AMQP_URL)
    return settings


@pytest.fixture
async def firm(db: Database) -> TenantContext:
    tenant = await make_tenant(db, "outbox-firm")
    await add_effects_table(db.engine, tenant)
    return tenant


async def test_a_rolled_back_enqueue_never_runs(
    broker_settings: Settings, db: Database, firm: TenantContext
) -> None:
    class Undo(Exception):
        pass

    async with running_worker(broker_settings):
        try:
            async with tenant_session(db.engine, firm) as session:
                await enqueue(session, record_effect, "rolled-back", tenant=firm)
                raise Undo
        except Undo:
            pass
        # A committed job enqueued after it: once that has run, the other had every chance.
        async with tenant_session(db.engine, firm) as session:
            await enqueue(session, record_effect, "committed", tenant=firm)

        async def committed_ran() -> bool:
            return "committed" in await effect_counts(db.engine, firm)

        await wait_for(committed_ran)
        await asyncio.sleep(0.3)
    assert await effect_counts(db.engine, firm) == {"committed": 1}
    async with db.engine.connect() as conn:
        actors = (await conn.execute(select(OutboxMessage.kwargs, OutboxMessage.args))).all()
    assert [args for _, args in actors] == [["committed"]]  # no row for the rollback


async def test_a_crash_between_commit_and_relay_still_runs_the_job_once(
    broker_settings: Settings, db: Database, firm: TenantContext
) -> None:
    # A process commits an enqueue and is killed before any relay could see it.
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, uuid
        import tests.support.jobs as jobs
        from bpo.core.db import Database
        from bpo.core.tenancy import issue_tenant_context, tenant_session
        from bpo.jobs.outbox import enqueue

        async def main():
            db = Database({db.url!r})
            tenant = issue_tenant_context(uuid.UUID({str(firm.tenant_id)!r}), {firm.slug!r})
            async with tenant_session(db.engine, tenant) as session:
                await enqueue(session, jobs.record_effect, "survivor", tenant=tenant)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    crashed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert await outbox_pending(db.engine) == 1

    async with running_worker(broker_settings):

        async def ran() -> bool:
            return await effect_counts(db.engine, firm) == {"survivor": 1}

        await wait_for(ran)
    assert await outbox_pending(db.engine) == 0


async def test_a_message_published_twice_changes_state_once(
    broker_settings: Settings, db: Database, firm: TenantContext
) -> None:
    async with running_worker(broker_settings):
        async with tenant_session(db.engine, firm) as session:
            message_id = await enqueue(session, record_effect, "twice", tenant=firm)

        async def ran() -> bool:
            return (await effect_counts(db.engine, firm)).get("twice") == 1

        await wait_for(ran)
        # As if the relay died after publishing but before marking the row sent: it is
        # published again, with the same message id.
        async with db.engine.begin() as conn:
            await conn.execute(
                update(OutboxMessage).where(OutboxMessage.id == message_id).values(sent_at=None)
            )

        async def republished() -> bool:
            return await outbox_pending(db.engine) == 0

        await wait_for(republished)
        await asyncio.sleep(0.5)  # time for the second delivery to run (and change nothing)
    assert await effect_counts(db.engine, firm) == {"twice": 1}
    async with tenant_session(db.engine, firm) as session:
        processed = await session.scalars(select(TenantProcessedMessage.message_id))
        assert list(processed) == [message_id]


async def test_enqueue_refuses_unknown_jobs_and_arguments_json_cannot_carry(
    db: Database, firm: TenantContext
) -> None:
    async with tenant_session(db.engine, firm) as session:
        with pytest.raises(UnknownJob):
            await enqueue(session, "no_such_job", tenant=firm)
        with pytest.raises(TypeError):
            await enqueue(session, record_effect, object(), tenant=firm)
    assert await outbox_pending(db.engine) == 0


async def test_a_tenant_role_enqueues_for_its_own_tenant_only(db: Database) -> None:
    mine = await make_tenant(db, "own-jobs")
    other = await make_tenant(db, "other-jobs")
    async with tenant_session(db.engine, mine) as session:
        await enqueue(session, record_effect, "mine", tenant=mine)
    # Row-level security refuses a row for another tenant, or for none...
    for target in (other, None):
        with pytest.raises(DBAPIError, match="row-level security"):
            async with tenant_session(db.engine, mine) as session:
                await enqueue(session, record_effect, "theirs", tenant=target)
    # ...and the role cannot read the outbox at all (not even its own rows).
    with pytest.raises(DBAPIError, match="permission denied"):
        async with tenant_session(db.engine, mine) as session:
            await session.execute(text("SELECT count(*) FROM platform.outbox"))
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(OutboxMessage.tenant_id))).scalars().all()
    assert rows == [mine.tenant_id]


async def test_kill_9_during_2000_jobs_leaves_every_effect_exactly_once(
    broker_settings: Settings, db: Database, firm: TenantContext
) -> None:
    """Workers are killed with SIGKILL again and again while 2,000 jobs run; the Redis
    broker hands a dead worker's messages to the next one after its heartbeat timeout."""
    keys = [f"k{i:04d}" for i in range(2000)]
    async with tenant_session(db.engine, firm) as session:
        for key in keys:
            await enqueue(session, record_effect, key, tenant=firm)
    kills, started_at = 0, 0
    deadline = asyncio.get_running_loop().time() + 240
    worker = spawn_worker(broker_settings, BPO_BROKER_HEARTBEAT_TIMEOUT_MS="1500")
    try:
        while True:
            await asyncio.sleep(0.05)
            done = len(await effect_counts(db.engine, firm))
            if done == len(keys):
                break
            assert asyncio.get_running_loop().time() < deadline, f"{done} of 2000 done"
            if kills < 5 and done >= started_at + 100:  # this worker is mid-way: kill it
                worker.send_signal(signal.SIGKILL)
                await asyncio.to_thread(worker.wait, 10)
                kills, started_at = kills + 1, done
                worker = spawn_worker(broker_settings, BPO_BROKER_HEARTBEAT_TIMEOUT_MS="1500")
    finally:
        worker.send_signal(signal.SIGKILL)
        await asyncio.to_thread(worker.wait, 10)
    counts = await effect_counts(db.engine, firm)
    assert kills == 5, "the jobs finished before the workers were killed: nothing was tested"
    assert set(counts) == set(keys)
    assert set(counts.values()) == {1}
