"""Job figures for Prometheus: the outbox and queue depth (read when the API is scraped)
and, in each worker, jobs done and failed (served on BPO_WORKER_METRICS_PORT)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import dramatiq
import redis.asyncio as aioredis
from dramatiq.broker import MessageProxy
from prometheus_client import CollectorRegistry, Counter, start_http_server
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bpo.core.observability import GaugeReader
from bpo.jobs.broker import REDIS_SCHEMES
from bpo.jobs.registry import JOBS

_OUTBOX = text(
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(available_at)), 0) "
    "FROM platform.outbox WHERE sent_at IS NULL AND available_at <= now()"
)


def outbox_readers(engine: AsyncEngine) -> tuple[GaugeReader, GaugeReader]:
    """Jobs committed but not yet handed to the broker, and how long the oldest has waited
    (the relay's lag: it grows when the broker is down or the relay falls behind)."""
    figures: dict[str, float] = {}

    async def pending() -> dict[tuple[str, ...], float]:
        async with engine.connect() as conn:
            count, lag = (await conn.execute(_OUTBOX)).one()
        figures["lag"] = float(lag)
        return {(): float(count)}

    async def lag() -> dict[tuple[str, ...], float]:
        return {(): figures.get("lag", 0.0)}  # read by `pending`, scraped just before

    return pending, lag


def queue_depth_reader(broker_url: str, namespace: str) -> GaugeReader | None:
    """Messages waiting per queue on Redis (RabbitMQ's own exporter reports its queues)."""
    if urlsplit(broker_url).scheme not in REDIS_SCHEMES:
        return None
    client: Any = aioredis.Redis.from_url(broker_url, socket_timeout=2)

    async def depth() -> dict[tuple[str, ...], float]:
        queues = sorted({spec.queue for spec in JOBS.values()})
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(f"{namespace}:{queue}")
        return {(q,): float(n) for q, n in zip(queues, await pipe.execute(), strict=True)}

    return depth


class JobMetrics(dramatiq.Middleware):
    """Counts each job's outcome; label values are job names (a fixed, small set)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.done = Counter(
            "bpo_jobs", "Job attempts, by job and outcome.", ["actor", "outcome"], registry=registry
        )
        self.failed = Counter(
            "bpo_jobs_failed",
            "Jobs given up on after their retries (listed for staff admins).",
            ["actor"],
            registry=registry,
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self.done.labels(message.actor_name, "ok" if exception is None else "error").inc()

    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.failed.labels(message.actor_name).inc()


def serve_worker_metrics(broker: dramatiq.Broker, port: int) -> None:
    """The worker's own /metrics (a thread of prometheus_client's) when a port is set."""
    registry = CollectorRegistry()
    broker.add_middleware(JobMetrics(registry))
    start_http_server(port, addr="0.0.0.0", registry=registry)  # scraped from other hosts
