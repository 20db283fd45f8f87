"""Jobs for benchmarks/jobs.py, declared in the worker it spawns (and in the benchmark)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from bpo.jobs.registry import job

_lock = threading.Lock()
_starts: list[float] = []  # when each no-op job began (epoch seconds)
_waits: list[float] = []  # ... minus when it was enqueued (just before its commit)


@job(queue="default", max_retries=0)
async def noop(enqueued_at: float) -> None:
    now = time.time()
    with _lock:
        _starts.append(now)
        _waits.append(now - enqueued_at)


@job(queue="default", max_retries=0)
async def report(path: str, reset: bool = False, full: bool = False) -> None:
    """Write how many no-op jobs started (and when, if `full`) to `path`."""
    with _lock:
        data: dict[str, object] = {"count": len(_starts)}
        if full:
            data.update(starts=list(_starts), waits=list(_waits))
        if reset:
            _starts.clear()
            _waits.clear()
    target = Path(path)
    partial = target.with_suffix(".part")
    partial.write_text(json.dumps(data))
    partial.rename(target)  # whole, or not there yet
