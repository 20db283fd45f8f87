"""`bpo worker`: a Dramatiq worker in this process, stopped gracefully by SIGINT/SIGTERM."""

from __future__ import annotations

import threading

import dramatiq
import structlog

from bpo.core.logging import configure_logging
from bpo.core.process import install_stop_handlers
from bpo.jobs.broker import build_broker
from bpo.jobs.context import WorkerContext
from bpo.jobs.registry import bind_jobs
from bpo.settings import Settings

log = structlog.get_logger("bpo.worker")


def start_worker(settings: Settings, *, namespace: str | None = None) -> dramatiq.Worker:
    """Build the broker from settings, bind every job and start consuming (non-blocking)."""
    assert settings.broker_url is not None
    broker = build_broker(settings.broker_url, namespace=namespace or settings.broker_namespace)
    broker.add_middleware(WorkerContext(settings))
    actors = bind_jobs(broker)
    worker = dramatiq.Worker(
        broker,
        worker_threads=settings.worker_threads,
        worker_timeout=settings.worker_timeout_ms,
    )
    worker.start()
    log.info("worker_started", queues=sorted(broker.get_declared_queues()), actors=sorted(actors))
    return worker


def stop_worker(worker: dramatiq.Worker, timeout_ms: int = 30_000) -> None:
    worker.stop(timeout=timeout_ms)
    worker.broker.close()


def run_worker(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_json)
    stop = threading.Event()
    install_stop_handlers(stop)
    worker = start_worker(settings)
    _top_up_tenant_pool(worker.broker)
    stop.wait()
    log.info("worker_stopping")
    stop_worker(worker)


def _top_up_tenant_pool(broker: dramatiq.Broker) -> None:
    """Signups after a deploy find warm schemas: the pool is topped up when a worker starts
    (and after every signup); several workers asking at once is harmless."""
    try:
        broker.get_actor("refill_tenant_pool").send()
    except Exception as exc:  # a worker without its broker fails elsewhere, loudly
        log.warning("tenant_pool_refill_not_sent", error=str(exc))
