"""Actors of the job machinery itself."""

from __future__ import annotations

import os

from sqlalchemy.dialects.postgresql import insert as pg_insert

from bpo.jobs.context import worker_database
from bpo.jobs.models import JobHeartbeat
from bpo.jobs.registry import job


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
