"""The broker is chosen by URL, and a job runs end to end through the real broker."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import select

from bpo.core.db import Database
from bpo.jobs.broker import BrokerProbe, BrokerUnavailable, PipelinedRedisBroker, build_broker
from bpo.jobs.models import JobHeartbeat
from bpo.jobs.worker import start_worker, stop_worker
from bpo.settings import Settings
from tests.conftest import Services

AMQP_URL = os.environ.get("BPO_TEST_AMQP_URL")


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", RedisBroker),
        ("unix:///tmp/redis.sock", RedisBroker),
        ("amqp://guest:guest@127.0.0.1:5672/%2F", RabbitmqBroker),
    ],
)
def test_broker_kind_follows_the_url_scheme(url: str, kind: type) -> None:
    broker = build_broker(url)
    assert isinstance(broker, kind)
    assert any(type(m).__name__ == "AsyncIO" for m in broker.middleware)


def test_unknown_broker_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="kafka"):
        build_broker("kafka://127.0.0.1:9092")


async def wait_for_heartbeat(db: Database, token: str, timeout: float = 20.0) -> JobHeartbeat:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with db.sessionmaker() as session:
            row = await session.scalar(select(JobHeartbeat).where(JobHeartbeat.token == token))
        if row is not None:
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {token} did not run within {timeout} s")
        await asyncio.sleep(0.05)


async def run_ping_through(settings: Settings, namespace: str, db: Database) -> None:
    worker = await asyncio.to_thread(start_worker, settings, namespace=namespace)
    try:
        token = f"ping-{uuid.uuid4()}"
        ping = worker.broker.get_actor("ping")
        message = await asyncio.to_thread(ping.send, token)
        row = await wait_for_heartbeat(db, token)
        assert row.worker_pid == os.getpid()  # the in-process worker ran it
        # Redelivery of the same message is a no-op: still exactly one row.
        await asyncio.to_thread(worker.broker.enqueue, message)
        await asyncio.sleep(0.5)
        async with db.sessionmaker() as session:
            rows = (
                await session.scalars(select(JobHeartbeat).where(JobHeartbeat.token == token))
            ).all()
        assert len(rows) == 1
    finally:
        await asyncio.to_thread(stop_worker, worker, 10_000)


async def test_ping_job_runs_through_the_session_broker(
    settings: Settings, services: Services, db: Database
) -> None:
    await run_ping_through(settings, services.namespace, db)


@pytest.mark.skipif(not AMQP_URL, reason="BPO_TEST_AMQP_URL not set (CI sets it)")
async def test_ping_job_runs_through_rabbitmq(
    settings: Settings, services: Services, db: Database
) -> None:
    assert AMQP_URL is not None
    await run_ping_through(
        dataclasses.replace(settings, broker_url=AMQP_URL), services.namespace, db
    )


async def test_broker_probe_answers_for_the_session_broker(services: Services) -> None:
    probe = BrokerProbe(services.broker_url)
    try:
        await probe.check(2.0)
    finally:
        await probe.close()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1/"])
async def test_broker_probe_names_a_dead_broker(url: str) -> None:
    probe = BrokerProbe(url)
    try:
        with pytest.raises(BrokerUnavailable):
            await probe.check(1.0)
    finally:
        await probe.close()


@pytest.mark.skipif(not AMQP_URL, reason="BPO_TEST_AMQP_URL not set (CI sets it)")
async def test_broker_probe_speaks_amqp() -> None:
    assert AMQP_URL is not None
    await BrokerProbe(AMQP_URL).check(2.0)


def test_pipelined_enqueue_survives_redis_forgetting_its_scripts(services: Services) -> None:
    if not services.broker_url.startswith(("redis", "unix")):
        pytest.skip("the session broker is not Redis")
    broker = build_broker(services.broker_url, namespace=f"bpo-test-{uuid.uuid4().hex[:8]}")
    assert isinstance(broker, PipelinedRedisBroker)
    broker.declare_queue("default")
    try:
        message = dramatiq.Message(
            queue_name="default", actor_name="ping", args=("x",), kwargs={}, options={}
        )
        broker.enqueue_many([message, message.copy()])
        broker.client.script_flush()  # as after a Redis restart
        broker.enqueue_many([message.copy()])
        assert broker.do_qsize("default") == 3
    finally:
        broker.flush_all()
        broker.close()
