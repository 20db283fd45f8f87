"""Fixed-window rate limits: one atomic counter per key and window.

In Redis, a Lua script increments the counter and sets its expiry in one step, so every API
process shares the same count and a crash between the two cannot leave a counter that never
expires. Without Redis (a RabbitMQ broker and no BPO_REDIS_URL) the counters are per process,
which the docs say plainly.

If Redis fails, the limiter lets the request through and logs it: a limiter outage must not
become an outage of the token endpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog

from bpo.core.coalesce import Coalescer
from bpo.core.errors import Problem

log = structlog.get_logger(__name__)

# KEYS: counters; ARGV: for each counter its increment, then its window in seconds.
# Returns {count, ttl ms} per counter, so many limits (of many requests) cost one round trip.
_HIT = """
local out = {}
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[2 * i - 1])
  local count = redis.call('INCRBY', key, amount)
  if count == amount then redis.call('PEXPIRE', key, ARGV[2 * i] * 1000) end
  out[#out + 1] = count
  out[#out + 1] = redis.call('PTTL', key)
end
return out
"""

# Failed password checks (sign-in, re-authentication) are counted over this window.
FAILURE_WINDOW_S = 900

# One request's counters: (key, window seconds) each, and the increment.
_Hits = tuple[list[tuple[str, int]], int]


@dataclass(frozen=True, slots=True)
class Limit:
    name: str  # says which limit in the problem response: "token requests per client"
    key: str
    allowed: int
    window_s: int


class RateLimiter:
    def __init__(self, redis_url: str | None, prefix: str = "bpo:rl") -> None:
        self.prefix = prefix
        self._redis: aioredis.Redis | None = None
        if redis_url:
            pool = aioredis.BlockingConnectionPool.from_url(
                redis_url, max_connections=16, timeout=1.0, socket_timeout=1.0
            )
            self._redis = aioredis.Redis(connection_pool=pool)
            self._script = self._redis.register_script(_HIT)
        self._hits = Coalescer(self._hit_in_redis)
        self._local: dict[str, tuple[int, float]] = {}

    async def hit(self, limit: Limit, amount: int = 1) -> float | None:
        """Count `amount` against `limit`; the seconds to wait when it is exceeded, else None."""
        exceeded = await self.hit_all([limit], amount)
        return exceeded[1] if exceeded else None

    async def enforce(self, limit: Limit) -> None:
        """Count one against `limit`; over it, a 429 problem naming the limit."""
        wait = await self.hit(limit)
        if wait is not None:
            raise Problem(
                429,
                "rate-limited",
                f"at most {limit.allowed} {limit.name} per {limit.window_s} s; retry later",
                headers={"Retry-After": retry_after(wait)},
            )

    async def hit_all(self, limits: list[Limit], amount: int = 1) -> tuple[Limit, float] | None:
        """Count `amount` against every limit at once; the first exceeded limit and the
        seconds to wait, else None. Concurrent callers share one round trip to Redis."""
        keys = [(self._key(limit), limit.window_s) for limit in limits]
        if self._redis is None:
            counts = [self._hit_local(key, window_s, amount) for key, window_s in keys]
        else:
            counted = await self._hits((keys, amount))
            if counted is None:
                return None
            counts = counted
        for limit, (count, ttl_s) in zip(limits, counts, strict=True):
            if count > limit.allowed:
                return limit, max(ttl_s, 1.0)
        return None

    async def _hit_in_redis(self, batch: list[_Hits]) -> list[list[tuple[int, float]] | None]:
        """Every request's counters in one script call; None for all if Redis fails."""
        assert self._redis is not None
        keys = [key for counters, _ in batch for key, _ in counters]
        args = [
            arg for counters, amount in batch for _, window in counters for arg in (amount, window)
        ]
        try:
            raw = await self._script(keys=keys, args=args)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("rate_limiter_unavailable", error=str(exc))
            return [None] * len(batch)
        pairs = [(int(raw[i]), max(int(raw[i + 1]), 0) / 1000) for i in range(0, len(raw), 2)]
        out: list[list[tuple[int, float]] | None] = []
        for counters, _ in batch:
            out.append(pairs[: len(counters)])
            pairs = pairs[len(counters) :]
        return out

    def _key(self, limit: Limit) -> str:
        return f"{self.prefix}:{limit.key}:{int(time.time() // limit.window_s)}"

    async def count(self, limit: Limit) -> int:
        """The current count (for throttles that count failures only)."""
        key = self._key(limit)
        if self._redis is None:
            value, expires = self._local.get(key, (0, 0.0))
            return value if expires > time.monotonic() else 0
        try:
            raw = await self._redis.get(key)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("rate_limiter_unavailable", error=str(exc))
            return 0
        return int(raw or 0)

    def _hit_local(self, key: str, window_s: int, amount: int) -> tuple[int, float]:
        now = time.monotonic()
        count, expires = self._local.get(key, (0, now + window_s))
        if expires <= now:
            count, expires = 0, now + window_s
        count += amount
        self._local[key] = (count, expires)
        if len(self._local) > 100_000:  # drop expired windows now and then
            self._local = {k: v for k, v in self._local.items() if v[1] > now}
        return count, expires - now

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def retry_after(seconds: float) -> str:
    return str(math.ceil(seconds))
