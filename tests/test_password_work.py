"""argon2 work is bounded per process: at most `concurrent` checks at once, at most `queued`
waiting, and the rest refused at once with a 429 problem instead of piling up threads."""

from __future__ import annotations

import asyncio
import threading
import time

from bpo.core.security import PasswordWork, PasswordWorkBusy, hash_password


async def test_checks_run_a_bounded_number_at_a_time_and_excess_is_refused() -> None:
    work = PasswordWork(concurrent=2, queued=8)
    lock = threading.Lock()
    running = peak = 0

    def slow_check(_: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return True

    results = await asyncio.gather(
        *(work.run(slow_check, "x") for _ in range(20)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, PasswordWorkBusy)]
    assert peak == 2
    assert len(refused) == 12 and all(r.status == 429 for r in refused)
    assert results.count(True) == 8
    # Once the queue drains, checks are accepted again.
    assert await work.run(slow_check, "x") is True


async def test_real_argon2_verification_goes_through_the_gate() -> None:
    work = PasswordWork()
    stored = hash_password("correct horse battery staple")
    assert await work.verify(stored, "correct horse battery staple")
    assert not await work.verify(stored, "wrong")
    assert (await work.hash("another one")).startswith("$argon2id$")
