"""The Dramatiq broker, chosen by the URL's scheme, and a cheap reachability check."""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import dramatiq
import redis.asyncio as aioredis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO

REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps")
# AMQP 0-9-1 protocol header; a live broker answers with a Connection.Start method frame.
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
_AMQP_METHOD_FRAME = 1


class BrokerUnavailable(Exception):
    """The broker did not answer."""


def build_broker(
    url: str,
    *,
    namespace: str = "bpo",
    heartbeat_timeout_ms: int = 60_000,
    confirm_delivery: bool = True,
) -> dramatiq.Broker:
    """A Redis or RabbitMQ broker for `url`, able to run `async def` actors.

    Redis: a consumer silent for `heartbeat_timeout_ms` is taken for dead and its unacked
    messages are delivered again (RabbitMQ does that when the connection drops)."""
    scheme = urlsplit(url).scheme
    broker: dramatiq.Broker
    if scheme in REDIS_SCHEMES:
        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=url,
            namespace=namespace,
            heartbeat_timeout=heartbeat_timeout_ms,
            # Dead workers' messages are requeued by "maintenance", run on a random share
            # of broker commands: Dramatiq's 0.1% meant ~100 s at an idle consumer's 10
            # fetches a second; 2% brings that to a few seconds at the cost of a cheap scan.
            maintenance_chance=20_000,
        )
    elif scheme in AMQP_SCHEMES:
        # Confirms per message, unless the caller batches in AMQP transactions (the relay).
        broker = RabbitmqBroker(url=url, confirm_delivery=confirm_delivery)
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
