"""The processes under test: API replicas (one, or two behind a proxy), the worker, the
webhook receiver, and whose CPU is whose.

Two replicas: behind nginx when the machine has it (installed by hand, e.g. Debian's
nginx-light; this script never installs anything), with a generated configuration in a
temporary folder: one worker process, round robin per request over the two replicas'
ports, upstream keep-alive. Without nginx: both replicas listen on one port, which Granian
opens with SO_REUSEPORT, and the kernel spreads the client's connections (not requests)
over them. `bpo serve` checks that its port is free before it starts, and that check
refuses a port another replica holds, so in that case each replica runs `bpo serve`'s own
code with that one check left out (REUSEPORT_SERVE).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._load import Proc, Server, Watch, _role, python_argv, spawned
from sqlalchemy import text

from bpo.core.db import Database
from bpo.jobs.jobs import ping
from bpo.jobs.outbox import enqueue

SERVE = [sys.executable, "-m", "bpo", "serve"]
REUSEPORT_SERVE = python_argv(
    "import bpo.cli\n"
    "bpo.cli.check_port_free = lambda host, port: None  # the port is shared on purpose\n"
    "sys.argv = ['bpo', 'serve']\n"
    "bpo.cli.main()"
)
WORKER = [sys.executable, "-m", "bpo", "worker"]
RECEIVER = "from benchmarks.tokens import serve_canned\nserve_canned({port})"  # 200 to all


def nginx_binary() -> str | None:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if os.access(found, os.X_OK) else None


def nginx_version(binary: str) -> str:
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


@dataclass
class Front:
    """One configuration: where the client connects, and the processes behind it."""

    label: str
    port: int
    replicas: list[Server]
    how: str  # how requests reach the replicas
    proxy: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)  # the proxy's error log

    def roles(self) -> dict[int, str]:
        named = {r.process.pid: f"api {n}" for n, r in enumerate(self.replicas, start=1)}
        if self.proxy is not None:
            named[self.proxy.pid] = "proxy"
        return named


def replica_env(base: dict[str, str], port: int, public: str) -> dict[str, str]:
    return base | {"BPO_PORT": str(port), "BPO_PUBLIC_URL": public}


@contextlib.contextmanager
def one_replica(base: dict[str, str], port: int) -> Iterator[Front]:
    env = replica_env(base, port, f"http://127.0.0.1:{port}")
    with spawned(SERVE, env, port, "/health/ready") as server:
        yield Front("one replica", port, [server], "the client connects to `bpo serve` directly")


@contextlib.contextmanager
def two_replicas(
    base: dict[str, str], front: int, ports: tuple[int, int], proxy: str
) -> Iterator[Front]:
    """`proxy`: nginx or reuseport."""
    public = f"http://127.0.0.1:{front}"
    with contextlib.ExitStack() as stack:
        if proxy == "nginx":
            starting = [
                spawned(SERVE, replica_env(base, p, public), p, "/health/ready") for p in ports
            ]
            with ThreadPoolExecutor(len(starting)) as pool:  # both start at once
                entered = [pool.submit(stack.enter_context, cm) for cm in starting]
                replicas = [future.result() for future in entered]
            binary = nginx_binary()
            assert binary is not None
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bpo-nginx-")))
            process = stack.enter_context(nginx(binary, folder, front, ports))
            how = (
                f"nginx {nginx_version(binary)} ({binary}): 1 worker process, round robin per "
                f"request over ports {ports[0]} and {ports[1]}, upstream keep-alive 64"
            )
            yield Front("two replicas", front, replicas, how, process, [folder / "error.log"])
        else:
            env = replica_env(base, front, public)
            first = stack.enter_context(spawned(REUSEPORT_SERVE, env, front, "/health/ready"))
            second = stack.enter_context(shared_port_replica(env, front))
            how = (
                f"no nginx: two processes listening on port {front} with SO_REUSEPORT (Granian "
                "sets it); the kernel spreads connections, not requests, over them"
            )
            yield Front("two replicas", front, [first, second], how)


@contextlib.contextmanager
def nginx(
    binary: str, folder: Path, front: int, ports: tuple[int, int]
) -> Iterator[subprocess.Popen[bytes]]:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in ports)
    user = "user root root;" if os.geteuid() == 0 else ""  # temp files in this folder
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream bpo {{
{servers}
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen 127.0.0.1:{front};
        location / {{
            proxy_pass http://bpo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffer_size 64k;
            proxy_buffers 16 64k;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""
    )
    argv = [binary, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")]
    with (folder / "stdout.log").open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_http(front, "/health/ready", process, folder / "error.log")
        yield process
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def shared_port_replica(env: dict[str, str], port: int) -> Iterator[Server]:
    """The second process on `port`: ready once two sockets listen there and it answers
    (a probe may reach either process; the warm-up runs before anything is measured)."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(REUSEPORT_SERVE, env=env, stdout=log, stderr=subprocess.STDOUT)
        server = Server(process, log, port)
        try:
            deadline = time.monotonic() + 30
            while listeners(port) < 2:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the second replica did not listen:\n{server.tail()}")
                time.sleep(0.1)
            _wait_http(port, "/health/ready", process, None)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:`port` (from /proc/net/tcp)."""
    wanted = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == wanted and row.split()[3] == "0A")


def _wait_http(port: int, path: str, process: subprocess.Popen[bytes], log: Path | None) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            text = log.read_text(errors="replace") if log and log.exists() else ""
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{text}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answered on port {port} in 30 s") from None
            time.sleep(0.1)


# --- the worker and the webhook receiver ------------------------------------------------


@contextlib.contextmanager
def worker(env: dict[str, str], database_url: str) -> Iterator[Server]:
    """One `bpo worker` (relay, scheduler, every queue), ready once it has run a ping job."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(WORKER, env=env, stdout=log, stderr=subprocess.STDOUT)
        server = Server(process, log, 0)
        try:
            if not asyncio.run(_pinged(database_url, process)):
                raise RuntimeError(f"`bpo worker` ran no ping job in 30 s:\n{server.tail()}")
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _pinged(url: str, process: subprocess.Popen[bytes]) -> bool:
    token = f"load-{uuid.uuid4().hex}"
    db = Database(url)
    try:
        async with db.sessionmaker.begin() as session:
            await enqueue(session, ping, token, tenant=None)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            async with db.engine.connect() as conn:
                found = await conn.execute(
                    text("SELECT 1 FROM platform.job_heartbeats WHERE token = :token"),
                    {"token": token},
                )
                if found.first() is not None:
                    return True
            await asyncio.sleep(0.1)
    finally:
        await db.dispose()
    return False


def receiver(port: int) -> contextlib.AbstractContextManager[Server]:
    """The firms' webhook receiver: a canned 200 for every delivery (benchmarks/tokens.py)."""
    return spawned(python_argv(RECEIVER.format(port=port)), dict(os.environ), port, "/")


# --- whose CPU is whose -------------------------------------------------------------------


def machine_cpu() -> float:
    """CPU seconds every core has been busy since boot (/proc/stat: all but idle and
    iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user .. steal, less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_by_role(
    before: dict[int, Proc], after: dict[int, Proc], named: dict[int, str], watch: Watch
) -> dict[str, float]:
    """CPU seconds between two snapshots by role: the processes in `named` and their
    children under their names; the rest as benchmarks/_load.py sees them (client,
    postgres, redis, other:<command>)."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for pid, proc in after.items():
        # A kernel worker renames itself with each job (kworker/u8:0-events, ...): the same
        # process whatever its name, unless its ticks went down (a pid used again).
        earlier = before.get(pid)
        delta = proc.ticks - (earlier.ticks if earlier and earlier.ticks <= proc.ticks else 0)
        if delta:
            role = _named(pid, after, named) or _role(pid, proc, watch)
            if role.startswith("other:kworker"):
                role = "other:kworker (kernel)"
            used[role] = used.get(role, 0.0) + delta / tick
    return used


def _named(pid: int, snapshot: dict[int, Proc], named: dict[int, str]) -> str | None:
    seen = 0
    while pid in snapshot and seen < 64:
        if pid in named:
            return named[pid]
        pid, seen = snapshot[pid].ppid, seen + 1
    return None
