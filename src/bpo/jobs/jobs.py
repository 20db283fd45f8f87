"""Actors of the job machinery itself."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy import and_, delete, func, or_
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

    A periodic job's sent rows are kept at least one of its periods: a period's row is what
    stops a scheduler from enqueuing that period twice (a weekly job's rows a week; every
    other row, a posting's announcements included, a day). (Tenants' processed ids are
    swept with the retention jobs, schema by schema.)"""
    longer = {
        spec.name: spec.every
        for spec in periodic_jobs()
        if spec.every is not None and spec.every > SENT_ROWS_KEPT
    }
    old = OutboxMessage.sent_at < func.now() - SENT_ROWS_KEPT
    if longer:
        old = and_(
            old,
            or_(
                OutboxMessage.actor.not_in(list(longer)),
                *(
                    and_(OutboxMessage.actor == name, OutboxMessage.sent_at < func.now() - every)
                    for name, every in longer.items()
                ),
            ),
        )
    async with worker_database().sessionmaker.begin() as session:
        await session.execute(delete(OutboxMessage).where(old))
        await idempotency.sweep(session)
        await session.execute(
            delete(ProcessedMessage).where(
                ProcessedMessage.processed_at < func.now() - PROCESSED_IDS_KEPT
            )
        )
