"""PostgreSQL LISTEN on a dedicated connection, reconnecting: a process hears what another
process's commit announced (NOTIFY is delivered at commit, to every listener).

`connected` says whether a notification could be missed right now: a consumer that caches
what the notifications invalidate must not trust its cache while it is False.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog

from bpo.core.db import asyncpg_dsn

log = structlog.get_logger("bpo.notifications")
RETRY_S = (0.1, 0.5, 1.0, 2.0, 5.0)


class Listener:
    def __init__(
        self,
        url: str,
        channel: str,
        on_notify: Callable[[str], None],
        on_connected: Callable[[], None] = lambda: None,
    ) -> None:
        self.url, self.channel = asyncpg_dsn(url), channel
        self.on_notify, self.on_connected = on_notify, on_connected
        self.connected = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
                failures = 0
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("listener_lost", channel=self.channel, error=str(exc))
            finally:
                self.connected = False
            await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
            failures += 1

    async def _listen(self) -> None:
        conn = await asyncpg.connect(
            self.url, timeout=5, server_settings={"application_name": f"bpo-listen-{self.channel}"}
        )
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_lost(_: object) -> None:
            if not lost.done():
                lost.set_result(None)

        conn.add_termination_listener(on_lost)
        try:
            await conn.add_listener(self.channel, lambda *args: self.on_notify(str(args[3])))
            self.connected = True
            self.on_connected()  # whatever was missed while disconnected is forgotten now
            while not lost.done():  # a keepalive: a half-open connection is found and closed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(lost), timeout=15)
                if not lost.done():
                    await conn.execute("SELECT 1", timeout=5)
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)
