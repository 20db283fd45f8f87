"""The Dramatiq broker, chosen by the URL's scheme, and a cheap reachability check."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import redis
import redis.asyncio as aioredis
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import AsyncIO

HEARTBEAT_EVERY_S = 1.0  # Redis consumers: see _AckBatchingConsumer._beat
REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps")
# AMQP 0-9-1 protocol header; a live broker answers with a Connection.Start method frame.
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
_AMQP_METHOD_FRAME = 1


class BrokerUnavailable(Exception):
    """The broker did not answer."""


Row = tuple[Any, ...]  # a script call's arguments after Dramatiq's common ones


class PipelinedRedisBroker(RedisBroker):
    """Dramatiq's Redis broker, sending its per-message scripts a batch per round trip.

    Dramatiq runs one Lua script call per enqueue and per ack and waits for each answer;
    on this machine those waits bounded a worker process (benchmarks/jobs.py). The scripts
    and their arguments are Dramatiq's own (as `RedisBroker._dispatch` builds them), only
    pipelined: `enqueue_many` for the relay, and acks gathered by the consumer until it
    next asks for messages (a crash before that redelivers them; jobs are idempotent).
    """

    _loaded_sha: str | None = None

    @property
    def consumer_class(self) -> type[Any]:
        return _AckBatchingConsumer

    def dispatch_many(self, command: str, queue_name: str, rows: list[Row]) -> None:
        """Run `command` once per row of extra arguments, in one round trip."""
        if not rows:
            return
        try:
            self._dispatch_pipelined(command, queue_name, rows)
        except redis.exceptions.NoScriptError:  # Redis restarted and forgot the script
            self._loaded_sha = None
            self._dispatch_pipelined(command, queue_name, rows)

    def _dispatch_pipelined(
        self, command: str, queue_name: str, rows: list[tuple[Any, ...]]
    ) -> None:
        broker: Any = self
        sha = self._dispatch_sha()
        pipe = broker.client.pipeline(transaction=False)
        now = int(time.time() * 1000)
        head = [now, queue_name, broker.broker_id, broker.heartbeat_timeout]
        tail = [broker.dead_message_ttl]
        for row in rows:
            maintain = broker._should_do_maintenance(command)
            args = [command, *head, *tail, maintain, broker._max_unpack_size(), *row]
            pipe.evalsha(sha, 1, broker.namespace, *args)
        pipe.execute()

    def _dispatch_sha(self) -> str:
        # evalsha straight into the pipeline: redis-py's Script objects would check
        # SCRIPT EXISTS in an extra round trip before every pipeline.
        broker: Any = self
        sha: str | None = self._loaded_sha
        if sha is None:
            script = broker.scripts["dispatch"]
            sha = self._loaded_sha = broker.client.script_load(script.script)
        return sha

    def enqueue_many(self, messages: list[dramatiq.Message[Any]]) -> None:
        by_queue: dict[str, list[Row]] = {}
        for message in messages:
            redis_id = str(uuid.uuid4())
            copy = message.copy(options={"redis_message_id": redis_id})
            by_queue.setdefault(copy.queue_name, []).append((redis_id, copy.encode()))
        for queue_name, rows in by_queue.items():
            self.dispatch_many("enqueue", queue_name, rows)


class _AckBatchingConsumer(_RedisConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._pending_acks: list[Any] = []
        self._last_beat = 0.0

    def _beat(self) -> None:
        """Dramatiq heartbeats only inside its scripts, so a consumer whose prefetch is
        full (long jobs) goes quiet and looks dead. A ZADD a second keeps it alive, which
        is what lets the heartbeat timeout be short (seconds, not a minute)."""
        now = time.monotonic()
        if now - self._last_beat < HEARTBEAT_EVERY_S:
            return
        self._last_beat = now
        broker: Any = self.broker
        beats = f"{broker.namespace}:__heartbeats__"
        broker.client.zadd(beats, {broker.broker_id: int(time.time() * 1000)})

    def ack(self, message: Any) -> None:
        self._pending_acks.append(message)

    def _flush_acks(self) -> None:
        acks, self._pending_acks = self._pending_acks, []
        try:
            rows = [(m.options["redis_message_id"],) for m in acks]
            self.broker.dispatch_many("ack", self.queue_name, rows)
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]
        finally:
            for message in acks:
                self.queued_message_ids.discard(message.message_id)

    def __next__(self) -> Any:
        # Before fetching more (the outstanding count must drop first), or every 64.
        if self._pending_acks and (not self.message_cache or len(self._pending_acks) >= 64):
            self._flush_acks()
        try:
            self._beat()
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]
        return super().__next__()  # type: ignore[no-untyped-call]

    def _hand_back_cache(self) -> None:
        """Dramatiq hands back the worker's queue on shutdown but not this cache: what a
        fetch brought and the consumer had not yet passed on sat in our unacked set until
        the heartbeat timeout (a minute for a worker told so) instead of going back now."""
        cached, self.message_cache = self.message_cache, []
        ids = [dramatiq.Message.decode(data).options["redis_message_id"] for data in cached if data]
        if ids:
            broker: Any = self.broker
            try:
                broker.do_requeue(self.queue_name, *ids)
            except redis.ConnectionError as exc:  # the heartbeat timeout hands them back
                raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def close(self) -> None:
        try:
            if self._pending_acks:
                self._flush_acks()
            self._hand_back_cache()
        finally:
            super().close()


class BatchAckRabbitmqBroker(RabbitmqBroker):
    """Dramatiq's RabbitMQ broker with consumers that acknowledge in batches.

    Dramatiq acks each message on its own (a frame and a socket flush each); these
    consumers ack every finished delivery below the oldest one still running with one
    `basic.ack multiple=true` (the others one by one), each time they ask for more."""

    @property
    def consumer_class(self) -> type[Any]:
        return _BatchAckRabbitmqConsumer


class _BatchAckRabbitmqConsumer(_RabbitmqConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._done: list[int] = []

    def ack(self, message: Any) -> None:
        try:
            self.known_tags.remove(message._tag)
        except KeyError:
            return  # a tag from before a reconnect: RabbitMQ redelivers that message
        self._done.append(message._tag)

    def _flush_acks(self) -> None:
        running = min(self.known_tags, default=None)
        below = [t for t in self._done if running is None or t < running]
        above = [t for t in self._done if running is not None and t > running]
        acks = [(max(below), True)] if below else []
        acks += [(tag, False) for tag in above]
        self._done = []
        channel = self.channel
        for tag, multiple in acks:
            self.connection.add_callback_threadsafe(
                functools.partial(channel.basic_ack, tag, multiple=multiple)
            )

    def __next__(self) -> Any:
        if self._done:
            self._flush_acks()
        return super().__next__()  # type: ignore[no-untyped-call]


def build_broker(
    url: str,
    *,
    namespace: str = "bpo",
    heartbeat_timeout_ms: int = 5_000,
    confirm_delivery: bool = True,
) -> dramatiq.Broker:
    """A Redis or RabbitMQ broker for `url`, able to run `async def` actors.

    Redis: a consumer silent for `heartbeat_timeout_ms` is taken for dead and its unacked
    messages are delivered again (RabbitMQ does that when the connection drops). Consumers
    beat every second whatever they are doing, so 5 s is safe and a dead worker's messages
    are back in the queue within about 6 s, behind what was queued before them
    (benchmarks/redelivery.py)."""
    scheme = urlsplit(url).scheme
    broker: dramatiq.Broker
    if scheme in REDIS_SCHEMES:
        broker = PipelinedRedisBroker(  # type: ignore[no-untyped-call]
            url=url,
            namespace=namespace,
            heartbeat_timeout=heartbeat_timeout_ms,
            # Dead workers' messages are requeued by "maintenance", run on a random share
            # of broker commands: Dramatiq's 0.1% meant ~100 s at an idle consumer's 10
            # fetches a second; 10% makes it about a second, for one small ZRANGEBYSCORE.
            maintenance_chance=100_000,
        )
    elif scheme in AMQP_SCHEMES:
        # Confirms per message, unless the caller batches in AMQP transactions (the relay).
        broker = BatchAckRabbitmqBroker(url=url, confirm_delivery=confirm_delivery)
    else:
        raise ValueError(f"unsupported broker URL scheme {scheme!r}")
    broker.add_middleware(AsyncIO())
    return broker


class BrokerProbe:
    """Answers "is the broker up?" without Dramatiq's blocking clients."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._parts = urlsplit(url)
        self._redis: aioredis.Redis | None = None

    async def check(self, timeout: float = 2.0) -> None:
        """Raise BrokerUnavailable unless the broker answers within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                if self._parts.scheme in REDIS_SCHEMES:
                    await self._check_redis(timeout)
                else:
                    await self._check_amqp()
        except TimeoutError:
            raise BrokerUnavailable(f"no answer within {timeout:g} s") from None
        except BrokerUnavailable:
            raise
        except (OSError, aioredis.RedisError) as exc:
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _check_redis(self, timeout: float) -> None:
        if self._redis is None:
            # A small blocking pool: callers wait for a connection instead of failing.
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=4,
                timeout=timeout,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
            )
            self._redis = aioredis.Redis(connection_pool=pool)
        await self._redis.ping()

    async def _check_amqp(self) -> None:
        host = self._parts.hostname or "localhost"
        tls = self._parts.scheme == "amqps"
        port = self._parts.port or (5671 if tls else 5672)
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl.create_default_context() if tls else None
        )
        try:
            writer.write(_AMQP_HEADER)
            await writer.drain()
            frame = await reader.readexactly(7)
        except asyncio.IncompleteReadError as exc:
            raise BrokerUnavailable("the broker closed the connection") from exc
        finally:
            writer.close()
        if frame[0] != _AMQP_METHOD_FRAME:
            raise BrokerUnavailable("the peer does not speak AMQP 0-9-1")
