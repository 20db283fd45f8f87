"""Actors of the job machinery itself."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert

from bpo.core import idempotency
from bpo.jobs.context import worker_database
from bpo.jobs.models import JobHeartbeat, OutboxMessage, ProcessedMessage
from bpo.jobs.registry import job
from bpo.jobs.scheduler import periodic_jobs

SENT_ROWS_KEPT = timedelta(days=1)
PROCESSED_IDS_KEPT = timedelta(days=14)  # redeliveries come within minutes, not weeks


@job(queue="default", max_retries=3)
async def ping(token: str) -> None:
    """Record that a worker processed `token`; a redelivered message changes nothing."""
    db = worker_database()
    async with db.sessionmaker.begin() as session:
        await session.execute(
            pg_insert(JobHeartbeat)
            .values(token=token, worker_pid=os.getpid())
            .on_conflict_do_nothing(index_elements=[JobHeartbeat.token])
        )


@job(queue="default", max_retries=3, every=timedelta(hours=1))
async def sweep_job_tables() -> None:
    """Forget outbox rows sent a day ago, Idempotency-Keys after 24 hours, and platform
    jobs' processed ids after 14 days.

    Sent rows are kept at least one period of the longest periodic job: a period's row is
    what stops a scheduler from enqueuing that period twice. (Tenants' processed ids are
    swept with the retention jobs, schema by schema.)"""
    longest = max([spec.every for spec in periodic_jobs() if spec.every], default=None)
    keep = max(SENT_ROWS_KEPT, longest or SENT_ROWS_KEPT)
    async with worker_database().sessionmaker.begin() as session:
        await session.execute(
            delete(OutboxMessage).where(OutboxMessage.sent_at < func.now() - keep)
        )
        await idempotency.sweep(session)
        await session.execute(
            delete(ProcessedMessage).where(
                ProcessedMessage.processed_at < func.now() - PROCESSED_IDS_KEPT
            )
        )
