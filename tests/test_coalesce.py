"""Coalescing concurrent calls into one batch (bpo.core.coalesce), and the rate limiter that
uses it against the real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bpo.core.coalesce import Coalescer
from bpo.core.ratelimit import Limit, RateLimiter
from bpo.settings import Settings


async def test_concurrent_calls_share_a_batch_and_each_gets_its_own_result() -> None:
    batches: list[list[int]] = []

    async def double(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return [item * 2 for item in items]

    coalesced = Coalescer(double)
    assert await asyncio.gather(*(coalesced(i) for i in range(50))) == [i * 2 for i in range(50)]
    assert batches == [list(range(50))]
    assert await coalesced(7) == 14  # a lone call runs at once, in a batch of its own
    assert batches[-1] == [7]


async def test_a_failed_batch_fails_every_caller_in_it_and_the_next_batch_runs() -> None:
    fail = True

    async def flaky(items: list[str]) -> list[str]:
        await asyncio.sleep(0.01)
        if fail:
            raise ConnectionError("database went away")
        return items

    coalesced = Coalescer(flaky)
    answers = await asyncio.gather(*(coalesced(str(i)) for i in range(5)), return_exceptions=True)
    assert all(isinstance(answer, ConnectionError) for answer in answers)
    fail = False
    assert await asyncio.gather(coalesced("a"), coalesced("b")) == ["a", "b"]


async def test_a_caller_that_goes_away_does_not_stop_the_others() -> None:
    served: list[int] = []

    async def slow(items: list[int]) -> list[int]:
        await asyncio.sleep(0.05)
        served.extend(items)
        return items

    coalesced = Coalescer(slow)
    leaving = asyncio.create_task(coalesced(1))
    staying = asyncio.create_task(coalesced(2))
    await asyncio.sleep(0.01)
    leaving.cancel()
    assert await staying == 2
    assert served == [1, 2]  # the batch still ran: a row already handed over is written
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_concurrent_hits_share_redis_round_trips_and_count_exactly(
    settings: Settings,
) -> None:
    assert settings.limiter_redis_url is not None
    limiter = RateLimiter(settings.limiter_redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}:rl")
    per_address = Limit("requests from this address", "ip:1", 100, 60)
    per_client = [Limit("requests for this client", f"c:{i}", 5, 60) for i in range(4)]
    try:
        answers = await asyncio.gather(
            *(limiter.hit_all([per_address, per_client[i % 4]]) for i in range(40))
        )
        allowed = [answer for answer in answers if answer is None]
        assert len(allowed) == 20  # 4 clients x 5 each, all under the address's 100
        refused = [answer for answer in answers if answer is not None]
        assert {limit.name for limit, _ in refused} == {"requests for this client"}
        assert all(0 < wait <= 60 for _, wait in refused)
        # 40 counted against the address already: 60 more fit, then it refuses.
        more = await asyncio.gather(*(limiter.hit_all([per_address]) for _ in range(70)))
        assert sum(answer is None for answer in more) == 60
    finally:
        await limiter.close()
