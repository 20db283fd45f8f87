"""A thread running one asyncio loop of database work, restarted after connection losses.

The relay and the scheduler are such loops; each runs beside Dramatiq's threads in the
worker process (the scheduler also alone, as `bpo scheduler`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import asyncpg
import structlog

log = structlog.get_logger("bpo.jobs")


class LoopThread:
    name = "bpo-loop"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # it closed meanwhile: nothing to wake
                self._loop.call_soon_threadsafe(self._wake.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        assert self._wake is not None
        self._wake.set()

    async def serve(self) -> None:
        """Run until stopped; raise on a lost connection (the loop reconnects)."""
        raise NotImplementedError

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while not self._stopping:
            try:
                await self.serve()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("reconnecting", loop=self.name, error=str(exc) or type(exc).__name__)
                await self.sleep(1.0)
            except Exception as exc:  # e.g. the broker refusing: retry shortly
                log.error("loop_failed", loop=self.name, error=str(exc) or type(exc).__name__)
                await self.sleep(1.0)

    async def sleep(self, seconds: float) -> None:
        """Sleep up to `seconds`, or until woken or stopped."""
        assert self._wake is not None
        if seconds <= 0 or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()
