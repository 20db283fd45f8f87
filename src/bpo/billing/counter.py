"""`api_calls` without a write per request: counts in memory, one batch a second.

Each API process counts authenticated calls per tenant and flushes the counts every
second as usage events keyed by (process, flush number), so a flush retried after an
error is not counted twice. A crash loses at most the last second's calls (the price of
keeping the hot path free of writes; see docs/architecture.md).

The plan's `api_calls_per_minute` is enforced here too, without a round trip per call:
each process counts its own calls per minute and refuses past the limit at once; each
flush adds its calls to a shared counter (Redis, via the rate limiter) and, when the
tenant's calls across processes pass the limit, refuses the tenant's calls until the
minute ends. Across processes the limit is therefore reached at most a second late.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bpo.billing.service import Usage, record_usage_batch
from bpo.core.errors import Problem
from bpo.core.ratelimit import Limit, RateLimiter

log = structlog.get_logger("bpo.billing")
API_CALLS = "api_calls"
RATE_LIMIT = "api_calls_per_minute"
LIMITS_TTL_S = 30.0  # a plan change reaches the counters within this long

_LIMITS = text(
    "SELECT s.tenant_id, (p.limits ->> 'api_calls_per_minute')::bigint"
    " FROM platform.subscriptions s JOIN platform.plans p ON p.key = s.plan"
    " WHERE s.tenant_id = ANY(:tenants) AND s.status <> 'canceled'"
)


class OverLimit(Problem):
    """429: the plan's calls per minute are used up (the call is refused and not billed)."""

    def __init__(self, allowed: int, reset_in_s: float) -> None:
        wait = max(1, math.ceil(reset_in_s))
        resets = datetime.fromtimestamp(time.time() + reset_in_s, UTC).replace(microsecond=0)
        super().__init__(
            429,
            "plan-limit-exceeded",
            f"the plan allows {allowed} API calls per minute; the limit resets in {wait} s"
            f" ({resets.isoformat()})",
            headers={"Retry-After": str(wait)},
            limit=RATE_LIMIT,
            allowed=allowed,
            resets_at=resets.isoformat(),
        )
        self.allowed = allowed
        self.reset_in_s = reset_in_s


class ApiCallCounter:
    def __init__(
        self, engine: AsyncEngine, limiter: RateLimiter | None = None, every_s: float = 1.0
    ) -> None:
        self._engine = engine
        self._limiter = limiter
        # tenant -> (calls allowed per minute or None, when that was read)
        self._limits: dict[uuid.UUID, tuple[int | None, float]] = {}
        self._minute = 0
        self._this_minute: Counter[uuid.UUID] = Counter()
        self._blocked: dict[uuid.UUID, float] = {}  # tenant -> when its minute ends
        self._every_s = every_s
        self._counts: Counter[uuid.UUID] = Counter()
        self._process = uuid.uuid4().hex[:12]
        self._flushes = 0
        self._unsent: list[list[Usage]] = []
        self._task: asyncio.Task[None] | None = None

    def count(self, tenant_id: uuid.UUID) -> None:
        """Count one call, or raise OverLimit (the call is refused and not billed)."""
        limit = self._limits.get(tenant_id, (None, 0.0))[0]
        if limit is not None:
            now = time.time()
            minute = int(now // 60)
            if minute != self._minute:
                self._minute, self._this_minute = minute, Counter()
                self._blocked.clear()
            if self._this_minute[tenant_id] >= limit or tenant_id in self._blocked:
                raise OverLimit(limit, 60 - now % 60)
            self._this_minute[tenant_id] += 1
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
        with contextlib.suppress(Exception):  # limits are kept as they were on a failure
            await self._share(counts)
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

    async def _share(self, counts: Counter[uuid.UUID]) -> None:
        """Refresh the plan limits of the tenants just seen; add their calls to the shared
        per-minute counters and block the tenants that went past their limit."""
        now = time.time()
        stale = [t for t in counts if now - self._limits.get(t, (None, 0.0))[1] > LIMITS_TTL_S]
        if stale:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_LIMITS, {"tenants": stale})).all()
            found: dict[uuid.UUID, int | None] = {row[0]: row[1] for row in rows}
            for tenant in stale:
                self._limits[tenant] = (found.get(tenant), now)
        if self._limiter is None:
            return
        for tenant, calls in counts.items():
            allowed = self._limits[tenant][0]
            if allowed is None:
                continue
            limit = Limit(RATE_LIMIT, f"plan-calls:{tenant}", allowed, 60)
            if await self._limiter.hit(limit, calls) is not None:
                self._blocked[tenant] = now
