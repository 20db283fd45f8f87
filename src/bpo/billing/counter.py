"""`api_calls` without a write per request: counts in memory, one batch a second.

Each API process counts authenticated calls per tenant and flushes the counts every
second as usage events keyed by (process, flush number), so a flush retried after an
error is not counted twice. A crash loses at most the last second's calls (the price of
keeping the hot path free of writes; see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bpo.billing.service import Usage, record_usage_batch

log = structlog.get_logger("bpo.billing")
API_CALLS = "api_calls"


class ApiCallCounter:
    def __init__(self, engine: AsyncEngine, every_s: float = 1.0) -> None:
        self._engine = engine
        self._every_s = every_s
        self._counts: Counter[uuid.UUID] = Counter()
        self._process = uuid.uuid4().hex[:12]
        self._flushes = 0
        self._unsent: list[list[Usage]] = []
        self._task: asyncio.Task[None] | None = None

    def count(self, tenant_id: uuid.UUID) -> None:
        self._counts[tenant_id] += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()  # what was counted since the last flush

    async def flush(self) -> int:
        """Write the counts so far; returns how many calls were written."""
        counts, self._counts = self._counts, Counter()
        if counts:
            self._flushes += 1
            at, key = datetime.now(UTC), f"api:{self._process}:{self._flushes}"
            self._unsent.append(
                [Usage(t, API_CALLS, Decimal(n), key, at) for t, n in counts.items()]
            )
        written = 0
        while self._unsent:
            # A failed batch is retried as it was (same key, same counts): if it had in
            # fact committed, the retry is a duplicate and changes nothing.
            batch = self._unsent[0]
            try:
                async with self._engine.begin() as conn:
                    await record_usage_batch(conn, batch)
            except Exception as exc:
                log.warning("api_calls_not_recorded", error=str(exc) or type(exc).__name__)
                break
            self._unsent.pop(0)
            written += int(sum(u.quantity for u in batch))
        return written

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            await self.flush()
