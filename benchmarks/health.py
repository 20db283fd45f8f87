"""Requests/s and latency of GET /health/ready (and /health/live) on one `bpo serve` process.

The baseline later figures are compared to. The load comes from a second process on
loopback: a small keep-alive HTTP/1.1 client on asyncio (no dependency), N connections for
D seconds per path. On 2 cores the client takes CPU from the server; the ratio ready/live in
the same run is the comparable figure.

Usage: python benchmarks/health.py [connections=16] [seconds=10] [--warmup 1] [--quick]
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli
from benchmarks._services import services


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def one_connection(port: int, path: str, until: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    errors = 0
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
    finally:
        writer.close()
    return errors


async def load(
    port: int, path: str, connections: int, seconds: float
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    started = time.perf_counter()
    errors = await asyncio.gather(
        *(one_connection(port, path, until, latencies) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, sorted(latencies), sum(errors)


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))] * 1000


def main() -> None:
    parser = _cli.parser(__doc__)
    parser.add_argument("connections", type=int, nargs="?", default=16)
    parser.add_argument("seconds", type=float, nargs="?", default=10.0, help="per path")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per path, unmeasured")
    args = _cli.parse(parser, {"connections": 4, "seconds": 1.0, "warmup": 0.3})
    connections, seconds = args.connections, args.seconds
    with services() as found:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BPO_")},
            "BPO_DATABASE_URL": found.database_url,
            "BPO_BROKER_URL": found.broker_url,
            "BPO_PORT": str(port),
            "BPO_LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "bpo", "serve"], env=env, stderr=subprocess.DEVNULL
        )
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            where = "embedded" if found.embedded else "external"
            broker = found.broker_url.split(":")[0]
            print(
                f"one `bpo serve` process (Granian), {connections} connections x {seconds:g} s; "
                f"database {where}, broker {broker}"
            )
            results = {}
            for path in ("/health/live", "/health/ready"):
                asyncio.run(load(port, path, connections, args.warmup))  # warm-up
                rate, latencies, errors = asyncio.run(load(port, path, connections, seconds))
                results[path] = rate
                print(
                    f"{path:<14} {rate:8.0f} req/s  p50 {percentile(latencies, 0.5):6.2f} ms  "
                    f"p99 {percentile(latencies, 0.99):6.2f} ms  non-200: {errors}"
                )
            print(f"ready / live = {results['/health/ready'] / results['/health/live']:.2f}")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(20)


if __name__ == "__main__":
    main()
