"""The relay: publishes committed outbox rows to the broker, then marks them sent.

It runs in the worker process, on its own thread and event loop, with two plain asyncpg
connections: one LISTENs on the outbox channel (a trigger NOTIFYs at every commit that
wrote rows), the other claims due rows with `FOR UPDATE SKIP LOCKED`, so several relays
share the work without ever publishing the same row at once. A row is marked sent in the
transaction that claimed it, after the broker accepted it: if the process dies in between,
the row is published again, with the same message id, and the job's `exactly_once()`
makes the second delivery change nothing. Without notifications (a lost connection) it
still polls every `poll_s` seconds, and it wakes for delayed rows when they fall due.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import dramatiq
import pika
import structlog
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bpo.core.db import asyncpg_dsn
from bpo.jobs.broker import PipelinedRedisBroker
from bpo.jobs.context import TENANT_OPTION, TRACE_OPTION
from bpo.jobs.loops import LoopThread
from bpo.jobs.outbox import OUTBOX_CHANNEL

log = structlog.get_logger("bpo.relay")

_CLAIM = """
SELECT id, tenant_id, actor, queue, args, kwargs, created_at, trace_context
  FROM platform.outbox
 WHERE sent_at IS NULL AND available_at <= now()
 ORDER BY available_at, id LIMIT $1 FOR UPDATE SKIP LOCKED
"""
_MARK_SENT = "UPDATE platform.outbox SET sent_at = now() WHERE id = ANY($1::uuid[])"
_NEXT_DUE = (
    "SELECT extract(epoch FROM min(available_at) - now()) FROM platform.outbox"
    " WHERE sent_at IS NULL"
)


def message_of(row: Any) -> dramatiq.Message[Any]:
    options: dict[str, Any] = {TENANT_OPTION: str(row["tenant_id"])} if row["tenant_id"] else {}
    if row["trace_context"]:
        trace = row["trace_context"]
        options[TRACE_OPTION] = trace if isinstance(trace, dict) else json.loads(trace)
    return dramatiq.Message(
        queue_name=row["queue"],
        actor_name=row["actor"],
        args=tuple(row["args"]),
        kwargs=row["kwargs"],
        options=options,
        message_id=str(row["id"]),
        message_timestamp=int(row["created_at"].timestamp() * 1000),
    )


class Publisher:
    """Hands a batch to the broker; returns once the broker holds every message of it."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def publish(self, messages: list[dramatiq.Message[Any]]) -> None:
        for message in messages:
            self.broker.enqueue(message)


class RedisPublisher(Publisher):
    """One round trip per batch (PipelinedRedisBroker.enqueue_many)."""

    def publish(self, messages: list[dramatiq.Message[Any]]) -> None:
        broker: Any = self.broker
        broker.enqueue_many(messages)


class AmqpPublisher(Publisher):
    """One round trip per batch: the batch is an AMQP transaction (tx.select / tx.commit),
    which RabbitMQ accepts as a whole or not at all, instead of a publisher confirm per
    message. Frames are buffered and flushed by the commit (pika's blocking channel would
    flush each publish); the message properties are the ones Dramatiq's enqueue sets."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        super().__init__(broker)
        self._transactional: set[int] = set()

    def publish(self, messages: list[dramatiq.Message[Any]]) -> None:
        broker: Any = self.broker
        for queue_name in {m.queue_name for m in messages}:
            broker.declare_queue(queue_name, ensure=True)
        channel = broker.channel
        if id(channel) not in self._transactional:
            channel.tx_select()
            self._transactional = {id(channel)}
        try:
            for message in messages:
                channel._impl.basic_publish(
                    exchange="",
                    routing_key=message.queue_name,
                    body=message.encode(),
                    properties=pika.BasicProperties(
                        delivery_mode=2, priority=message.options.get("broker_priority")
                    ),
                )
            channel.tx_commit()
        except Exception:
            self._transactional.clear()
            raise


def publisher_for(broker: dramatiq.Broker) -> Publisher:
    if isinstance(broker, PipelinedRedisBroker):
        return RedisPublisher(broker)
    if isinstance(broker, RabbitmqBroker):
        return AmqpPublisher(broker)
    return Publisher(broker)


class Relay(LoopThread):
    name = "bpo-relay"

    def __init__(
        self,
        database_url: str,
        broker: dramatiq.Broker,
        *,
        batch: int = 500,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__()
        self._dsn = asyncpg_dsn(database_url)
        self.broker = broker
        self._publisher = publisher_for(broker)
        self._batch = batch
        self._poll_s = poll_s
        self.published = 0

    async def serve(self) -> None:
        listener = await asyncpg.connect(self._dsn, server_settings=_APP)
        conn = await asyncpg.connect(self._dsn, server_settings=_APP)
        try:
            await conn.set_type_codec(
                "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )
            await listener.add_listener(OUTBOX_CHANNEL, lambda *_: self.wake())
            while not self._stopping:
                if await self._relay_batch(conn) == self._batch:
                    continue  # more are waiting
                await self.sleep(await self._idle_for(conn))
        finally:
            await asyncio.gather(listener.close(), conn.close(), return_exceptions=True)

    async def _relay_batch(self, conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            rows = await conn.fetch(_CLAIM, self._batch)
            if not rows:
                return 0
            self._publisher.publish([message_of(row) for row in rows])
            await conn.execute(_MARK_SENT, [row["id"] for row in rows])
        self.published += len(rows)
        return len(rows)

    async def _idle_for(self, conn: asyncpg.Connection) -> float:
        due_in = await conn.fetchval(_NEXT_DUE)
        if due_in is None:
            return self._poll_s
        return max(0.0, min(self._poll_s, float(due_in)))


_APP = {"application_name": "bpo-relay"}
