"""Coalescing: calls from concurrent requests served by one call over all their inputs.

The token endpoint's I/O (read the client, count the rate limits, record the outcome) costs
more CPU per round trip than the work itself. A Coalescer hands each caller's input to one
batch: while a batch is in flight the next inputs gather, so under load one round trip (and
one commit) serves many requests, and a lone request waits for nothing (no timer holds it
back). This is DataLoader's batching and a database's group commit, for our own round trips.
Every caller gets its own result, or the exception the batch raised: a caller whose row was
not written never answers as if it were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

MAX_BATCH = 500


class Coalescer(Generic[In, Out]):
    def __init__(self, run: Callable[[list[In]], Awaitable[list[Out]]]) -> None:
        self._run = run
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def __call__(self, item: In) -> Out:
        done: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        # A caller that goes away (client disconnect) cancels only its own future; the batch
        # skips it when settling.
        return await done

    async def _drain(self) -> None:
        batch: list[tuple[In, asyncio.Future[Out]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    results = await self._run([item for item, _ in batch])
                except Exception as exc:  # every caller of this batch gets it
                    _fail(batch, exc)
                else:
                    for (_, done), result in zip(batch, results, strict=True):
                        if not done.done():
                            done.set_result(result)
                batch = []
        finally:  # cancelled (shutdown): nobody may wait for a batch that will not run
            _fail(batch + self._pending, RuntimeError("stopped before this call was served"))
            self._pending, self._drainer = [], None


def _fail(batch: list[tuple[In, asyncio.Future[Out]]], error: BaseException) -> None:
    for _, done in batch:
        if not done.done():
            done.set_exception(error)
            done.exception()  # retrieved here: a caller that went away leaves no warning
