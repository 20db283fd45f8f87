"""What a job sees while it runs: its message id, its tenant, and a database.

Dramatiq runs each message on one of its worker threads; bpo's jobs are coroutines, and
`job_runner` runs each on an event loop of that thread's own (with an engine of that
thread's own), after opening the message's tenant context. Dramatiq's AsyncIO middleware
would hand every coroutine to one shared loop thread and wait for it: two more thread
switches per job, which capped a worker process near 1,900 no-op jobs/s (docs).
`exactly_once()` gives a job its transaction together with the record that this message
was processed, so a redelivered message changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core import tracing
from bpo.core.db import Database, DatabaseOptions
from bpo.core.tenancy import (
    TenantContext,
    issue_tenant_context,
    recycle_after_tenants,
    tenant_session,
)
from bpo.jobs.models import FailedJob, ProcessedMessage, TenantProcessedMessage
from bpo.jobs.registry import JobSpec
from bpo.settings import Settings

log = structlog.get_logger("bpo.jobs")
TENANT_OPTION = "bpo_tenant"  # message option naming the tenant a job acts for
TRACE_OPTION = "bpo_trace"  # W3C trace context of the request that enqueued it (if traced)

_settings: Settings | None = None
_thread = threading.local()  # each worker thread's event loop and Database
_current: contextvars.ContextVar[JobContext] = contextvars.ContextVar("bpo_job")
_slugs: dict[uuid.UUID, str] = {}  # slugs never change (a trigger refuses it)


class JobTimeLimitExceeded(Exception):
    """The job ran past its time limit and was cancelled (its transaction rolled back)."""


class AlreadyProcessed(Exception):
    """This message's effect committed before: the job ends, successfully, doing nothing."""


@dataclass(frozen=True, slots=True)
class JobContext:
    message_id: uuid.UUID
    actor: str
    tenant: TenantContext | None
    db: Database

    def session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A transaction in the job's tenant (as its role), or on platform for platform jobs."""
        if self.tenant is not None:
            return tenant_session(self.db.engine, self.tenant, "worker")
        return self.db.sessionmaker.begin()


def current_job() -> JobContext:
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("not inside a job") from None


@asynccontextmanager
async def exactly_once() -> AsyncIterator[AsyncSession]:
    """The job's transaction, which also records the message id: if this message already
    committed its effect, entering raises AlreadyProcessed (the runner ends the job)."""
    job = current_job()
    table = TenantProcessedMessage if job.tenant is not None else ProcessedMessage
    async with job.session() as session:
        first = await session.scalar(
            pg_insert(table)
            .values(message_id=job.message_id)
            .on_conflict_do_nothing()
            .returning(table.message_id)
        )
        if first is None:
            raise AlreadyProcessed(str(job.message_id))
        yield session


def job_runner(spec: JobSpec) -> Callable[..., Any]:
    """The function Dramatiq calls for `spec`: runs the coroutine on the worker's loop."""

    def run(*args: Any, **kwargs: Any) -> Any:
        message = CurrentMessage.get_current_message()
        assert message is not None, "worker middleware missing"
        loop = _thread_loop()
        task = loop.create_task(_run(spec, message, args, kwargs))
        try:
            return loop.run_until_complete(task)
        except BaseException:
            # Dramatiq's time limit (or shutdown) raised into this thread mid-job: cancel
            # the task, so it gives its connection back instead of lingering on the loop.
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(task)
            raise

    run.__name__ = run.__qualname__ = spec.name
    return run


async def _run(spec: JobSpec, message: Any, args: Any, kwargs: Any) -> Any:
    db = worker_database()
    tenant_id = message.options.get(TENANT_OPTION)
    tenant = await _tenant(db, uuid.UUID(tenant_id)) if tenant_id else None
    if tenant_id and tenant is None:
        log.warning("job_for_missing_tenant", actor=spec.name, tenant_id=tenant_id)
        return None
    job = JobContext(_message_uuid(message.message_id), spec.name, tenant, db)
    token = _current.set(job)
    deadline = asyncio.timeout(spec.time_limit_ms / 1000)
    span = tracing.job_span(
        spec.name,
        message.options.get(TRACE_OPTION),
        **{
            "messaging.message.id": message.message_id,
            "bpo.tenant": tenant.slug if tenant else None,
        },
    )
    try:
        with span:
            async with deadline:
                return await spec.fn(*args, **kwargs)
    except TimeoutError:
        if not deadline.expired():
            raise  # the job's own timeout, not its time limit
        raise JobTimeLimitExceeded(
            f"{spec.name} ran past its time limit of {spec.time_limit_ms} ms"
        ) from None
    except AlreadyProcessed:
        log.info("job_already_processed", actor=spec.name, message_id=message.message_id)
        return None
    finally:
        _current.reset(token)


def _message_uuid(message_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(message_id)
    except ValueError:  # not sent through the outbox: derive a stable id
        return uuid.uuid5(uuid.NAMESPACE_URL, f"bpo-message:{message_id}")


async def _tenant(db: Database, tenant_id: uuid.UUID) -> TenantContext | None:
    slug = _slugs.get(tenant_id)
    if slug is None:
        async with db.engine.connect() as conn:
            slug = await conn.scalar(
                text("SELECT slug FROM platform.tenants WHERE id = :id"), {"id": tenant_id}
            )
        if slug is None:
            return None
        _slugs[tenant_id] = slug
    return issue_tenant_context(tenant_id, slug)


class WorkerContext(dramatiq.Middleware):
    """Gives jobs this worker's settings and each worker thread its loop and engine, and
    records messages that exhausted their retries in `failed_jobs`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        global _settings
        _settings = self.settings

    def before_worker_thread_shutdown(self, broker: dramatiq.Broker, thread: Any) -> None:
        loop: asyncio.AbstractEventLoop | None = getattr(_thread, "loop", None)
        database: Database | None = getattr(_thread, "database", None)
        if loop is not None:
            if database is not None:
                loop.run_until_complete(database.dispose())
            loop.close()
        _thread.loop = _thread.database = None

    def before_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        """A failed message (retries exhausted) is about to go to the dead-letter queue:
        record it first, so a crash in between loses nothing (a redelivery upserts)."""
        try:
            asyncio.run(_record_failure(message))  # the consumer's thread; failures are rare
        except Exception as exc:  # the broker's dead-letter queue still holds the message
            log.error("failed_job_not_recorded", message_id=message.message_id, error=str(exc))


async def _record_failure(message: Any) -> None:
    tenant_id = message.options.get(TENANT_OPTION)
    # Dramatiq's Retries middleware keeps the last traceback; its last line names the error.
    trace = str(message.options.get("traceback") or "unknown error").strip()
    row = {
        "id": _message_uuid(message.message_id),
        "tenant_id": uuid.UUID(tenant_id) if tenant_id else None,
        "actor": message.actor_name,
        "queue": message.queue_name,
        "args": list(message.args),
        "kwargs": dict(message.kwargs),
        "error": trace[-4000:],
        "retries": int(message.options.get("retries", 0)),
    }
    database = _new_database(pool_size=1)
    try:
        async with database.sessionmaker.begin() as session:
            await session.execute(
                pg_insert(FailedJob)
                .values(row)
                .on_conflict_do_update(
                    index_elements=[FailedJob.id],
                    set_={"error": row["error"], "retries": row["retries"]},
                )
            )
    finally:
        await database.dispose()
    log.warning("job_failed", actor=message.actor_name, message_id=message.message_id)


def worker_settings() -> Settings:
    if _settings is None:
        raise RuntimeError("no worker is running in this process")
    return _settings


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_thread, "loop", None)
    if loop is None:
        loop = _thread.loop = asyncio.new_event_loop()
    return loop


def worker_database() -> Database:
    """This worker thread's engine (made on first use, inside the thread's loop)."""
    database: Database | None = getattr(_thread, "database", None)
    if database is None:
        # One job at a time per thread: two connections cover a job that opens a second.
        database = _thread.database = _new_database(pool_size=2)
    return database


def _new_database(pool_size: int) -> Database:
    settings = worker_settings()
    if settings.database_url is None:
        raise RuntimeError("the worker has no database configured (BPO_DATABASE_URL)")
    database = Database(
        settings.database_url,
        DatabaseOptions(
            pool_size=pool_size,
            max_overflow=0,
            connect_timeout=settings.db_connect_timeout,
            statement_timeout_ms=settings.api_statement_timeout_ms * 4,
            application_name="bpo-worker",
        ),
    )
    recycle_after_tenants(database.engine, settings.tenants_per_connection)
    tracing.instrument_engine(database.engine)
    return database
