"""A TCP proxy on loopback in front of PostgreSQL, which a test can cut and restore.

It stands in for a network outage: the real database keeps running, but every connection
through the proxy dies and new ones are refused until `restore()`. It runs its own event loop
in a thread, so it keeps forwarding while a test client blocks the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit


class DatabaseProxy:
    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        socket_dir = parse_qs(parts.query).get("host", [None])[0]
        self._unix_path = str(Path(socket_dir) / ".s.PGSQL.5432") if socket_dir else None
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._user = parts.username or "postgres"
        self._database = parts.path
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def start(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._start())

    def close(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    @property
    def url(self) -> str:
        return urlunsplit(
            ("postgresql", f"{self._user}@127.0.0.1:{self.port}", self._database, "", "")
        )

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.sleep(0.05)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._unix_path:
                up_reader, up_writer = await asyncio.open_unix_connection(self._unix_path)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(sink)
            with contextlib.suppress(Exception):
                sink.transport.abort()
