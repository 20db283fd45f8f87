"""Keeping the warm pool full."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from bpo.jobs.context import worker_database, worker_settings
from bpo.jobs.registry import job
from bpo.platform.tenants.provisioning import fill_pool

log = structlog.get_logger("bpo.tenants")


@job(queue="default", max_retries=5)
async def refill_tenant_pool() -> None:
    """Top the warm pool up to BPO_TENANT_POOL_SIZE schemas at head."""
    added = await fill_pool(worker_database().engine, worker_settings().tenant_pool_size)
    if added:
        log.info("tenant_pool_refilled", added=added)


def request_pool_refill(state: Any) -> None:
    """Ask a worker to refill the pool after a signup took from it.

    Best effort: the signup has committed either way, and with the pool empty signups take
    the cold path; `bpo tenants pool-fill` refills by hand.
    """

    async def send() -> None:
        try:
            await asyncio.to_thread(state.jobs.send, "refill_tenant_pool")
        except Exception as exc:  # the signup has committed; a missed refill is not its failure
            log.warning("tenant_pool_refill_not_sent", error=str(exc))

    task = asyncio.get_running_loop().create_task(send())
    state.background_tasks.add(task)
    task.add_done_callback(state.background_tasks.discard)
