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

log = structlog.get_logger(__name__)

# KEYS[1] counter; ARGV[1] window seconds, ARGV[2] increment. Returns {count, ttl ms}.
_HIT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1] * 1000) end
return {count, redis.call('PTTL', KEYS[1])}
"""


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
        self._local: dict[str, tuple[int, float]] = {}

    async def hit(self, limit: Limit, amount: int = 1) -> float | None:
        """Count `amount` against `limit`; the seconds to wait when it is exceeded, else None."""
        window = int(time.time() // limit.window_s)
        key = f"{self.prefix}:{limit.key}:{window}"
        if self._redis is None:
            count, ttl_s = self._hit_local(key, limit.window_s, amount)
        else:
            try:
                count, ttl_ms = await self._script(keys=[key], args=[limit.window_s, amount])
            except (aioredis.RedisError, OSError) as exc:
                log.warning("rate_limiter_unavailable", error=str(exc))
                return None
            ttl_s = max(int(ttl_ms), 0) / 1000
        if count > limit.allowed:
            return max(ttl_s, 1.0)
        return None

    async def count(self, limit: Limit) -> int:
        """The current count (for throttles that count failures only)."""
        window = int(time.time() // limit.window_s)
        key = f"{self.prefix}:{limit.key}:{window}"
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
