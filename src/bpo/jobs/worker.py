"""`bpo worker`: a Dramatiq worker in this process, stopped gracefully by SIGINT/SIGTERM."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage

from bpo.core import tracing
from bpo.core.logging import configure_logging
from bpo.core.process import install_stop_handlers
from bpo.jobs.broker import build_broker
from bpo.jobs.context import WorkerContext, job_runner
from bpo.jobs.metrics import serve_worker_metrics
from bpo.jobs.registry import bind_jobs
from bpo.jobs.relay import Relay
from bpo.jobs.scheduler import Scheduler
from bpo.settings import Settings

log = structlog.get_logger("bpo.worker")


@dataclass
class RunningWorker:
    """Dramatiq's worker plus the threads beside it: the outbox relay, maybe the scheduler."""

    worker: dramatiq.Worker
    relay: Relay
    scheduler: Scheduler | None

    @property
    def broker(self) -> dramatiq.Broker:
        return self.worker.broker


def start_worker(
    settings: Settings, *, namespace: str | None = None, relay: bool = True
) -> RunningWorker:
    """Build the broker from settings, bind every job, start consuming and relaying."""
    assert settings.broker_url is not None and settings.database_url is not None
    broker = build_broker(
        settings.broker_url,
        namespace=namespace or settings.broker_namespace,
        heartbeat_timeout_ms=settings.broker_heartbeat_timeout_ms,
    )
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(WorkerContext(settings))
    if settings.otel_endpoint:
        tracing.enable(settings.otel_endpoint, settings.otel_service_name)
    if settings.worker_metrics_port is not None:
        serve_worker_metrics(broker, settings.worker_metrics_port)
    actors = bind_jobs(broker, job_runner)
    worker = dramatiq.Worker(
        broker,
        worker_threads=settings.worker_threads,
        worker_timeout=settings.worker_timeout_ms,
    )
    worker.queue_prefetch = settings.worker_prefetch
    worker.start()
    # The relay publishes through a broker of its own: its batches are transactions (AMQP)
    # or pipelines (Redis), on connections the consumers never wait behind.
    relay_broker = build_broker(
        settings.broker_url,
        namespace=namespace or settings.broker_namespace,
        heartbeat_timeout_ms=settings.broker_heartbeat_timeout_ms,
        confirm_delivery=False,
    )
    running = RunningWorker(worker, Relay(settings.database_url, relay_broker), None)
    if relay:
        running.relay.start()
    if settings.worker_scheduler:
        running.scheduler = Scheduler(settings.database_url)
        running.scheduler.start()
    log.info("worker_started", queues=sorted(broker.get_declared_queues()), actors=sorted(actors))
    return running


def stop_worker(running: RunningWorker, timeout_ms: int = 30_000) -> None:
    if running.scheduler is not None:
        running.scheduler.stop()
    running.relay.stop()
    running.relay.broker.close()
    running.worker.stop(timeout=timeout_ms)
    tracing.flush()
    running.broker.close()


def run_worker(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_json)
    stop = threading.Event()
    install_stop_handlers(stop)
    worker = start_worker(settings)
    stop.wait()
    log.info("worker_stopping")
    stop_worker(worker)
