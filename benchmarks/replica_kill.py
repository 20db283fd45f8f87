"""Drill: an API replica killed with SIGKILL behind nginx, under load (issue 25), printed.

Two `bpo serve` replicas sit behind nginx (its config written here: an upstream of both,
keepalive, `proxy_next_upstream error timeout`, which retries idempotent requests only).
Clients send GETs (/health/ready, which reads the database) and POSTs (/oauth/token with
an unknown client: a database read, then 400 invalid_client) through nginx. Half-way, one
replica gets SIGKILL. Printed: answers by kind before and after the kill, per method; the
failures and how long after the kill the last one came. GETs in flight on the dead replica
are retried by nginx on the other one; POSTs are not (a client retries them with its
Idempotency-Key).

Needs nginx (Debian's nginx-light); without it the drill says so and exits 0.
Usage: python benchmarks/replica_kill.py [--seconds 20] [--connections 16] [--quick]
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli
from benchmarks._load import free_port, spawned
from benchmarks._services import services

SECRET = "replica-kill-drill-secret-key-0123456789"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SAMPLES: dict[str, str] = {}  # an answer of each unexpected kind, printed with the figures

_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream bpo {{
        server 127.0.0.1:{a} max_fails=1 fail_timeout=10s;
        server 127.0.0.1:{b} max_fails=1 fail_timeout=10s;
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://bpo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502;
        }}
    }}
}}
"""


def serve_env(database_url: str, broker_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env.update(
        BPO_DATABASE_URL=database_url,
        BPO_BROKER_URL=broker_url,
        BPO_SECRET_KEY=SECRET,
        BPO_PORT=str(port),
        BPO_LOG_LEVEL="ERROR",
        BPO_TOKEN_RATE_PER_IP="1000000",
        BPO_TOKEN_RATE_PER_CLIENT="1000000",
    )
    return env


async def client(port: int, stop: asyncio.Event, log: list[tuple[float, str, str]]) -> None:
    """One keep-alive connection, alternating GET and POST; logs (time, method, outcome)."""
    body = b"grant_type=client_credentials&client_id=nobody&client_secret=nothing"
    requests = {
        "GET": b"GET /health/ready HTTP/1.1\r\nHost: bpo\r\n\r\n",
        "POST": (
            "POST /oauth/token HTTP/1.1\r\nHost: bpo\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body,
    }
    expected = {"GET": 200, "POST": 400}  # invalid_client, credentials in the body
    turn = 0
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            log.append((time.monotonic(), "GET", "connect-error"))
            continue
        try:
            while not stop.is_set():
                method = "GET" if turn % 2 == 0 else "POST"
                turn += 1
                writer.write(requests[method])
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                answer = await reader.readexactly(length)
                status = int(head[9:12])
                outcome = "ok" if status == expected[method] else f"status {status}"
                if outcome != "ok" and outcome not in SAMPLES:
                    SAMPLES[outcome] = answer[:200].decode(errors="replace")
                log.append((time.monotonic(), method, outcome))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.append((time.monotonic(), "?", f"cut ({type(exc).__name__})"))
        finally:
            writer.close()


async def drive(port: int, seconds: float, connections: int, kill) -> tuple[list, float]:  # type: ignore[no-untyped-def,type-arg]
    stop, log = asyncio.Event(), []
    tasks = [asyncio.create_task(client(port, stop, log)) for _ in range(connections)]
    await asyncio.sleep(seconds / 2)
    killed_at = time.monotonic()
    kill()
    await asyncio.sleep(seconds / 2)
    stop.set()
    await asyncio.gather(*tasks)
    return log, killed_at


def report(log: list[tuple[float, str, str]], killed_at: float, seconds: float) -> None:
    for label, rows in (
        ("before the kill", [r for r in log if r[0] < killed_at]),
        ("after the kill", [r for r in log if r[0] >= killed_at]),
    ):
        counts = collections.Counter((method, outcome) for _, method, outcome in rows)
        rate = len(rows) / (seconds / 2)
        print(f"{label}: {len(rows):,} answers ({rate:,.0f}/s)", flush=True)
        for (method, outcome), n in sorted(counts.items()):
            print(f"    {method:4} {outcome:28} {n:,}")
    for outcome, sample in SAMPLES.items():
        print(f"    e.g. {outcome}: {' '.join(sample.split())[:120]}")
    failures = [r for r in log if r[2] != "ok"]
    if failures:
        last = max(r[0] for r in failures) - killed_at
        print(f"failures: {len(failures)}; the last {last * 1000:.0f} ms after the kill")
    else:
        print("failures: 0")


def main() -> None:
    parser = _cli.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    args = _cli.parse(parser, {"seconds": 4.0, "connections": 4})
    if not Path(NGINX).exists():
        print("nginx is not installed (apt-get install nginx-light): drill skipped")
        return
    with services() as svc, tempfile.TemporaryDirectory(prefix="bpo-drill-") as tmp:
        ports = [free_port(), free_port()]
        argv = [sys.executable, "-m", "bpo", "serve"]
        with (
            spawned(
                argv,
                serve_env(svc.database_url, svc.broker_url, ports[0]),
                ports[0],
                "/health/ready",
            ) as a,
            spawned(
                argv,
                serve_env(svc.database_url, svc.broker_url, ports[1]),
                ports[1],
                "/health/ready",
            ),
        ):
            port = free_port()
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(_CONF.format(tmp=tmp, a=ports[0], b=ports[1], port=port))
            proxy = subprocess.Popen([NGINX, "-c", str(conf), "-p", tmp])
            try:
                time.sleep(0.5)
                print(
                    f"two replicas behind nginx, {args.connections} connections, "
                    f"{args.seconds:g} s; SIGKILL to one replica half-way",
                    flush=True,
                )
                log, killed_at = asyncio.run(
                    drive(
                        port,
                        args.seconds,
                        args.connections,
                        lambda: a.process.send_signal(signal.SIGKILL),
                    )
                )
                report(log, killed_at, args.seconds)
            finally:
                proxy.terminate()
                proxy.wait(10)


if __name__ == "__main__":
    main()
