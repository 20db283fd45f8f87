"""Keeping the hourly rollups current."""

from __future__ import annotations

from datetime import timedelta

from bpo.billing.service import roll_up
from bpo.jobs.context import worker_database
from bpo.jobs.registry import job

BATCH = 50_000


@job(queue="default", max_retries=5, every=timedelta(minutes=1))
async def roll_up_usage() -> None:
    """Fold every pending usage event into its hour, a batch per transaction."""
    engine = worker_database().engine
    while True:
        async with engine.begin() as conn:
            moved = await roll_up(conn, BATCH)
        if moved == 0:
            return
