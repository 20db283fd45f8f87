"""The load generator and CPU watch of the HTTP benchmarks (tokens.py, reads.py).

A small keep-alive HTTP/1.1 client on asyncio (uvloop when installed) in the benchmark's
own process; CPU per process read from /proc between two snapshots (server, PostgreSQL,
Redis, client, other); server subprocesses with their output kept for a failure report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import uvloop
from sqlalchemy import text

from bpo.core.db import Database

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]


def python_argv(code: str) -> list[str]:
    """A Python process that runs `code` with this checkout's `benchmarks` importable."""
    return [sys.executable, "-c", f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n{code}"]


# --- the load generator -----------------------------------------------------------------


def run(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            return int(value)
        if name == b"transfer-encoding":
            raise RuntimeError("chunked responses are not expected here")
    return 0


@dataclass
class Result:
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    sample: bytes = b""  # the first response that was not a 200
    reconnects: int = 0
    client_cpu: float = 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    @property
    def failed(self) -> int:
        return sum(self.statuses.values()) - self.ok

    def ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def _connection(
    port: int, requests: list[bytes], offset: int, until: float, result: Result
) -> None:
    sent = offset
    while time.perf_counter() < until:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < until:
                started = time.perf_counter()
                writer.write(requests[sent % len(requests)])
                sent += 1
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(content_length(head))
                result.latencies.append(time.perf_counter() - started)
                status = int(head[9:12])
                result.statuses[status] += 1
                if not 200 <= status < 300 and not result.sample:
                    result.sample = head + body
        except (asyncio.IncompleteReadError, ConnectionError):
            result.reconnects += 1  # the server closed the connection: open another
        finally:
            writer.close()


async def load(port: int, request: bytes | list[bytes], connections: int, seconds: float) -> Result:
    """Each connection sends the requests in turn (starting at its own offset)."""
    requests = request if isinstance(request, list) else [request]
    result = Result()
    cpu = time.process_time()
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(_connection(port, requests, i, until, result) for i in range(connections))
    )
    result.seconds = time.perf_counter() - started
    result.client_cpu = time.process_time() - cpu
    return result


def get_request(port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- CPU, per process, from /proc -------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Proc:
    comm: str
    ticks: int  # user + system
    ppid: int
    cmdline: str  # PostgreSQL's only (it names the database a backend serves)


@dataclass(frozen=True)
class Watch:
    """Whose CPU is whose: the server under test, and our PostgreSQL's processes."""

    server: int = 0
    postmaster: int | None = None  # unknown when PostgreSQL runs elsewhere
    database: str = ""


def cpu_snapshot() -> dict[int, Proc]:
    """Every process we may read, with its CPU ticks so far."""
    snapshot = {}
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            cmdline = Path(entry.path, "cmdline").read_text() if comm == "postgres" else ""
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])
        snapshot[int(entry.name)] = Proc(comm, ticks, int(fields[1]), cmdline)
    return snapshot


def _role(pid: int, proc: Proc, watch: Watch) -> str:
    if pid == watch.server:
        return "server"
    if pid == os.getpid():
        return "client"
    if proc.comm.startswith("redis"):
        return "redis"
    if proc.comm != "postgres":
        return f"other:{proc.comm}"
    if watch.postmaster is None:
        return "postgres"
    if watch.postmaster not in (pid, proc.ppid):
        return "other:postgres (another server)"
    # A client backend's title names its database and peer; auxiliary processes' do not.
    backend = "(" in proc.cmdline or "[local]" in proc.cmdline
    if backend and f" {watch.database} " not in proc.cmdline:
        return "other:postgres (other databases)"
    return "postgres"


def cpu_used(before: dict[int, Proc], after: dict[int, Proc], watch: Watch) -> dict[str, float]:
    """CPU seconds between two snapshots: server, postgres, redis, client, other:<command>."""
    used: dict[str, float] = {}
    for pid, proc in after.items():
        earlier = before.get(pid)
        delta = proc.ticks - (earlier.ticks if earlier and earlier.comm == proc.comm else 0)
        if delta:
            role = _role(pid, proc, watch)
            used[role] = used.get(role, 0.0) + delta / _TICK
    return used


@dataclass
class Measured:
    result: Result
    cpu: dict[str, float]

    def seconds_of(self, role: str) -> float:
        if role == "other":
            return sum(v for k, v in self.cpu.items() if k.startswith("other:"))
        return self.cpu.get(role, 0.0)

    def per_request_us(self, role: str) -> float:
        return self.seconds_of(role) / max(self.result.ok, 1) * 1e6

    def share(self, role: str) -> float:
        """Percent of one core."""
        return self.seconds_of(role) / self.result.seconds * 100

    def busiest_others(self, count: int = 2) -> str:
        others = sorted(
            ((v, k.removeprefix("other:")) for k, v in self.cpu.items() if k.startswith("other:")),
            reverse=True,
        )
        return ", ".join(
            f"{name} {v / self.result.seconds * 100:.0f}%" for v, name in others[:count]
        )


def measure(
    port: int, request: bytes | list[bytes], connections: int, seconds: float, watch: Watch
) -> Measured:
    before = cpu_snapshot()
    result = run(load(port, request, connections, seconds))
    return Measured(result, cpu_used(before, cpu_snapshot(), watch))


async def postmaster_of(url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine."""
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            backend = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            proc = cpu_snapshot().get(backend)
    finally:
        await db.dispose()
    return proc.ppid if proc and proc.comm == "postgres" else None


# --- processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    port: int

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        self.log.seek(0)
        return "\n".join(self.log.read().decode(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def spawned(
    argv: list[str], env: dict[str, str], port: int, ready: str, cpus: set[int] | None = None
) -> Iterator[Server]:
    """A server subprocess, its output in a temporary file; ready when `ready` answers 200.
    With `cpus`, the process (and every thread it starts) runs on those cores only."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin
        )
        server = Server(process, log, port)
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{argv} exited with {process.returncode}:\n{server.tail()}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=2):
                        break
                except (urllib.error.URLError, OSError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{argv} not ready in 30 s:\n{server.tail()}") from None
                    time.sleep(0.1)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def first_response(port: int, request: bytes) -> tuple[int, bytes]:
    async def once() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(content_length(head))
            return int(head[9:12]), body
        finally:
            writer.close()

    return run(once())
