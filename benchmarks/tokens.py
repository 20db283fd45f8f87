"""Identity figure 1 (the OAuth slice), printed: the token endpoint.

1. Client-credentials tokens per second on one `bpo serve` process (Granian, one process),
   with p50/p99 latency (goal >= 1,500 tokens/s). N keep-alive connections each POST
   `grant_type=client_credentials` with HTTP Basic to /oauth/token for D seconds after a
   warm-up, cycling through 50 API clients. A 200 is an ES256-signed token whose
   `platform.token_events` row was committed before the answer. The rate limits are raised
   out of the way (each request is still counted in Redis, per client and per address).
   Concurrent requests share their round trips (bpo.core.coalesce). For scale, the same load
   generator against a server that only returns canned responses (the client's own ceiling
   here), and GET /health/live on the same `bpo serve` (the HTTP stack's ceiling).

The load generator is a small keep-alive HTTP/1.1 client on asyncio (uvloop when installed)
in this process. The machine's cores (2 here) are shared by the client, the server,
PostgreSQL and Redis: the CPU each used during a run is printed with the figures, read from
/proc. Logs at WARNING (no access log), as benchmarks/health.py runs.

Usage: python benchmarks/tokens.py [--seconds 10] [--trials 3] [--warmup 2] [--connections 16]
       [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
       [--broker-url redis://127.0.0.1:6379/0] [--quick]
(benchmarks/identity.py runs this figure and the authenticated read cost, benchmarks/reads.py.)
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _identity
from benchmarks._identity import (
    CLIENT_ID,
    HEADER,
    Bench,
    cpu_line,
    report_failures,
    row,
    server_env,
    token_events,
)
from benchmarks._load import (
    content_length,
    first_response,
    free_port,
    get_request,
    load,
    measure,
    python_argv,
    run,
    spawned,
)

# --- a server that only returns canned responses: the client's ceiling ------------------

_CANNED_BODY = b'{"access_token":"' + b"x" * 700 + b'","token_type":"Bearer"}'
_CANNED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_CANNED_BODY)).encode() + b"\r\n\r\n" + _CANNED_BODY
)


class _Canned(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport: asyncio.WriteTransport = transport  # uvloop's is no asyncio.Transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            total = end + 4 + content_length(self.buffer[:end])
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.transport.write(_CANNED)


def serve_canned(port: int) -> None:
    async def forever() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Canned, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    run(forever())


def token_request(port: int, client_id: str, secret: str) -> bytes:
    body = b"grant_type=client_credentials"
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    head = (
        f"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Basic {basic}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def client_ceiling(bench: Bench) -> None:
    args, watch = bench.args, bench.watch
    port = free_port()
    argv = python_argv(f"from benchmarks.tokens import serve_canned\nserve_canned({port})")
    with spawned(argv, dict(os.environ), port, "/") as server:
        request = token_request(port, CLIENT_ID, "x" * 43)
        run(load(port, request, args.connections, min(args.warmup, 1.0)))
        canned = dataclasses.replace(watch, server=server.process.pid)
        m = measure(port, request, args.connections, min(args.seconds, 5.0), canned)
    print(row("client ceiling (canned 200s, no app)", m))
    print(
        f"  client CPU {m.result.client_cpu / m.result.ok * 1e6:.0f} µs per request "
        f"({m.share('client'):.0f}% of a core); canned server {m.share('server'):.0f}%"
    )


def tokens(bench: Bench) -> None:
    args, fixture, watch = bench.args, bench.fixture, bench.watch
    port = free_port()
    env = server_env(bench.url, args.broker_url, bench.secret_key, port)
    argv = [sys.executable, "-m", "bpo", "serve"]
    issued = 0
    with spawned(argv, env, port, "/health/ready") as server:
        watch = dataclasses.replace(watch, server=server.process.pid)
        requests = [token_request(port, client_id, secret) for client_id, secret in fixture.clients]
        request = requests[0]
        status, body = first_response(port, request)
        if status != 200:
            print(f"!! POST /oauth/token answered {status}: {body.decode(errors='replace')}")
            print(f"!! server output:\n{server.tail()}")
            raise SystemExit(f"POST /oauth/token answered {status}")
        issued += 1
        live_request = get_request(port, "/health/live")
        run(load(port, live_request, args.connections, min(args.warmup, 1.0)))
        live = measure(port, live_request, args.connections, min(args.seconds, 5.0), watch)
        print(row("GET /health/live (same bpo serve)", live))
        warm = run(load(port, requests, args.connections, args.warmup))
        issued += warm.ok
        trials = []
        for trial in range(args.trials):
            measured = measure(port, requests, args.connections, args.seconds, watch)
            issued += measured.result.ok
            trials.append(measured)
            label = f"POST /oauth/token, {args.connections} conns, trial {trial + 1}"
            print(row(label, measured))
        # The machine is shared and noisy: the figure is the median trial, all of them shown.
        m = sorted(trials, key=lambda t: t.result.rate)[len(trials) // 2]
        print(f"  median trial: {m.result.rate:,.0f} tokens/s")
        print(cpu_line(m, "token"))
        report_failures(m, server)
        one = measure(port, requests, 1, min(args.seconds, 5.0), watch)
        issued += one.result.ok
        print(row("POST /oauth/token, 1 connection (no queue)", one))
        report_failures(one, server)
        if warm.failed:
            print(f"  !! warm-up statuses {dict(warm.statuses)}")
    rows = run(token_events(bench.url))
    goal = "met" if m.result.rate >= 1500 else "NOT met"
    print(
        f"=> {m.result.rate:,.0f} tokens/s per process, p99 {m.result.ms(0.99):.1f} ms "
        f"(goal >= 1,500/s: {goal} on this shared 2-core machine); a core of its own would "
        f"allow at most ~{1e6 / max(m.per_request_us('server'), 1):,.0f}/s at this server CPU "
        f"per token; token_events rows {rows} for {issued} tokens issued"
    )


def figure(bench: Bench) -> None:
    args = bench.args
    print(f"\n1. client-credentials tokens, {args.warmup:g} s warm-up then {args.seconds:g} s")
    print(HEADER)
    client_ceiling(bench)
    tokens(bench)


if __name__ == "__main__":
    _identity.main(__doc__, {"tokens": figure})
