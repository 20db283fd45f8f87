"""`bpo serve`'s HTTP server: Granian's Rust HTTP stack in this process, on uvloop.

Granian parses HTTP and writes responses outside Python, which left about 20% more server
CPU for the application than uvicorn did (benchmarks/identity.py: 1,903 against 1,561
client-credentials tokens/s in one run). Its embedded server keeps one process, so signals,
logging and the process id are ours; SIGINT/SIGTERM stop accepting connections, let the
requests in flight finish (for at most SHUTDOWN_GRACE_S) and then run the application's
shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import structlog
import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.errors import FatalError
from granian.server.embed import Server

log = structlog.get_logger("bpo.serve")


SHUTDOWN_GRACE_S = 20.0  # infra/k8s: terminationGracePeriodSeconds leaves room for it


def _give_up() -> None:
    log.error("api_stop_timeout", grace_s=SHUTDOWN_GRACE_S)
    os._exit(1)


class ServerFailed(Exception):
    """The application did not start (its lifespan startup raised)."""


def run_http(app: Any, host: str, port: int, *, backlog: int = 1024) -> None:
    """Serve `app` until SIGINT/SIGTERM; raises ServerFailed if it could not start."""
    # Granian logs "experimental" and per-worker lines at INFO; ours are the useful ones.
    logging.getLogger("_granian").setLevel(logging.ERROR)
    uvloop.run(_serve(app, host, port, backlog))


async def _serve(app: Any, host: str, port: int, backlog: int) -> None:
    server = Server(
        app,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.auto,
        websockets=False,
        backlog=backlog,
        log_enabled=False,
    )
    loop = asyncio.get_running_loop()

    def stop() -> None:
        server.stop()  # type: ignore[no-untyped-call]
        # The bound on draining: past it the requests still open are cut, as an
        # orchestrator's SIGKILL would (its grace period is set above this).
        loop.call_later(SHUTDOWN_GRACE_S, _give_up)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    log.info("api_starting", host=host, port=port)
    try:
        await server.serve()
    except FatalError as exc:  # the application's lifespan startup raised
        raise ServerFailed(f"the API could not start on {host}:{port}: {exc}") from exc
    log.info("api_stopped")
