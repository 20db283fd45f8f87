"""Keeping the warm pool full."""

from __future__ import annotations

from datetime import timedelta

import structlog

from bpo.jobs.context import worker_database, worker_settings
from bpo.jobs.registry import job
from bpo.platform.tenants.provisioning import fill_pool

log = structlog.get_logger("bpo.tenants")


@job(queue="default", max_retries=5, every=timedelta(minutes=5))
async def refill_tenant_pool() -> None:
    """Top the warm pool up to BPO_TENANT_POOL_SIZE schemas at head (after every signup,
    and every five minutes, so a worker's first minutes after a deploy refill it too)."""
    added = await fill_pool(worker_database().engine, worker_settings().tenant_pool_size)
    if added:
        log.info("tenant_pool_refilled", added=added)
