"""Periodic jobs: one scheduler at a time enqueues each job once per period.

Whoever holds a PostgreSQL advisory lock schedules (`bpo scheduler`, or any worker started
with BPO_WORKER_SCHEDULER on); the others retry the lock every few seconds and take over
when the holder's connection dies. Each period's outbox row has a deterministic id (the job
and the period's number), so even two schedulers racing at a hand-over enqueue it once.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import asyncpg
import structlog

from bpo.core.db import asyncpg_dsn
from bpo.core.logging import configure_logging
from bpo.core.process import install_stop_handlers
from bpo.jobs.loops import LoopThread
from bpo.jobs.registry import JOBS, JobSpec, load_job_modules
from bpo.settings import Settings

log = structlog.get_logger("bpo.scheduler")
LOCK_KEY = 0x62706F5F7363686E  # "bpo_schn": one scheduler per database
_PERIOD_IDS = uuid.UUID("6d1c3f0e-6a55-4c8e-9a59-5b0c3c1e7a10")
_INSERT = """
INSERT INTO platform.outbox (id, tenant_id, actor, queue, args, kwargs)
SELECT unnest($1::uuid[]), NULL, unnest($2::text[]), unnest($3::text[]), '[]', '{}'
ON CONFLICT (id) DO NOTHING
"""


def period_id(name: str, period: int) -> uuid.UUID:
    return uuid.uuid5(_PERIOD_IDS, f"{name}:{period}")


def periodic_jobs() -> list[JobSpec]:
    load_job_modules()
    return [spec for spec in JOBS.values() if spec.every is not None]


class Scheduler(LoopThread):
    name = "bpo-scheduler"

    def __init__(self, database_url: str, *, tick_s: float = 1.0, retry_s: float = 5.0) -> None:
        super().__init__()
        self._dsn = asyncpg_dsn(database_url)
        self._tick_s = tick_s
        self._retry_s = retry_s
        self.holding = False
        self.enqueued = 0

    async def serve(self) -> None:
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "bpo-scheduler"}
        )
        try:
            await conn.set_type_codec(
                "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )
            self.holding = False
            while not self._stopping:
                if not self.holding:
                    self.holding = bool(
                        await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
                    )
                    if self.holding:
                        log.info("scheduler_holds_the_lock")
                if self.holding:
                    await self.tick(conn, time.time())
                await self.sleep(self._tick_s if self.holding else self._retry_s)
        finally:
            self.holding = False
            await conn.close()  # releases the lock

    async def tick(self, conn: asyncpg.Connection, now: float) -> None:
        """Enqueue every periodic job whose current period has no row yet."""
        specs = periodic_jobs()
        ids, actors, queues = [], [], []
        for spec in specs:
            assert spec.every is not None
            ids.append(period_id(spec.name, int(now // spec.every.total_seconds())))
            actors.append(spec.name)
            queues.append(spec.queue)
        if ids:
            status = await conn.execute(_INSERT, ids, actors, queues)
            self.enqueued += int(status.split()[-1])


def run_scheduler(settings: Settings) -> None:
    """`bpo scheduler`: schedule until SIGINT/SIGTERM."""
    assert settings.database_url is not None
    configure_logging(settings.log_level, settings.log_json)
    stop = threading.Event()
    install_stop_handlers(stop)
    scheduler = Scheduler(settings.database_url)
    scheduler.start()
    log.info("scheduler_started", jobs=sorted(spec.name for spec in periodic_jobs()))
    stop.wait()
    scheduler.stop()
    log.info("scheduler_stopped")
