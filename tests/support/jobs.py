"""Jobs for the job-machinery tests, and a worker to run them (in this process or another).

The jobs write into `job_effects`, a tenant table without a unique key: a job that ran
twice would leave two rows, so counting rows per key proves exactly-once effects.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import BigInteger, Column, MetaData, Table, Text, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bpo.core.tenancy import TenantContext
from bpo.jobs.context import exactly_once
from bpo.jobs.registry import JOB_MODULES, job
from bpo.jobs.worker import RunningWorker, start_worker, stop_worker
from bpo.settings import Settings
from tests.support.processes import bpo_env

EFFECTS = Table(
    "job_effects",
    MetaData(schema="tenant"),
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False),
)


@job(queue="default", max_retries=3, min_backoff=20, max_backoff=200)
async def record_effect(key: str) -> None:
    async with exactly_once() as session:
        await session.execute(EFFECTS.insert().values(key=key))


@job(queue="default", max_retries=1, min_backoff=20, max_backoff=50)
async def record_unless_file_exists(path: str, key: str) -> None:
    """Fails (every retry) while `path` exists; then records its effect."""
    if await asyncio.to_thread(Path(path).exists):
        raise RuntimeError(f"the switch {path} is on")
    async with exactly_once() as session:
        await session.execute(EFFECTS.insert().values(key=key))


@job(queue="default", max_retries=0, time_limit=300)
async def record_after_a_long_wait(key: str) -> None:
    """Holds a transaction open past its 300 ms time limit."""
    async with exactly_once() as session:
        await session.execute(EFFECTS.insert().values(key=key))
        await asyncio.sleep(5)


@job(queue="default", max_retries=3, min_backoff=20, max_backoff=200, time_limit=60_000)
async def record_slowly(key: str, seconds: float) -> None:
    """Works `seconds`, then records its effect: long enough to be caught mid-way."""
    await asyncio.sleep(seconds)
    async with exactly_once() as session:
        await session.execute(EFFECTS.insert().values(key=key))


async def add_effects_table(engine: AsyncEngine, tenant: TenantContext) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            f'CREATE TABLE "{tenant.schema}".job_effects '
            "(id bigserial PRIMARY KEY, key text NOT NULL)"
        )


async def effect_counts(engine: AsyncEngine, tenant: TenantContext) -> dict[str, int]:
    async with engine.connect() as conn:
        conn = await conn.execution_options(schema_translate_map={"tenant": tenant.schema})
        rows = await conn.execute(select(EFFECTS.c.key, func.count()).group_by(EFFECTS.c.key))
        return {str(key): int(count) for key, count in rows.all()}


async def wait_for(predicate, timeout: float = 20.0, every: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate.__name__}")
        await asyncio.sleep(every)


def worker_settings(settings: Settings, **changes: object) -> Settings:
    """Test workers: no scheduler (it would fill the warm pool) unless asked for."""
    return dataclasses.replace(settings, worker_scheduler=False, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def running_worker(settings: Settings, **changes: object) -> AsyncIterator[RunningWorker]:
    worker = await asyncio.to_thread(start_worker, worker_settings(settings, **changes))
    try:
        yield worker
    finally:
        await asyncio.to_thread(stop_worker, worker, 10_000)


async def outbox_pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(text("SELECT count(*) FROM platform.outbox WHERE sent_at IS NULL"))
            or 0
        )


_WORKER_SCRIPT = (
    "import tests.support.jobs\n"
    "from bpo.jobs.worker import run_worker\n"
    "from bpo.settings import Settings\n"
    "run_worker(Settings.from_env())\n"
)


def spawn_worker(settings: Settings, **extra: str) -> subprocess.Popen[str]:
    """`bpo worker` in another process, with these test jobs declared too."""
    assert settings.database_url and settings.broker_url
    env = bpo_env(
        BPO_DATABASE_URL=settings.database_url,
        BPO_BROKER_URL=settings.broker_url,
        BPO_BROKER_NAMESPACE=settings.broker_namespace,
        BPO_SECRET_KEY=settings.secret_key or "",
        BPO_WORKER_SCHEDULER="false",
        BPO_LOG_LEVEL="WARNING",
        **extra,
    )
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER_SCRIPT],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


assert "tests.support.jobs" not in JOB_MODULES  # declared only where tests import this module
