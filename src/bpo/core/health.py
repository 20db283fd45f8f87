"""Liveness and readiness probes, and the Prometheus exposition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bpo.core.errors import ProblemDocument, problem_response

CHECK_TIMEOUT_S = 2.0
log = structlog.get_logger("bpo.health")


class Liveness(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


@get(
    "/health/live",
    tags=["health"],
    summary="The process is up",
    sync_to_thread=False,
    operation_id="getLiveness",
)
def live() -> Liveness:
    return Liveness(status="ok")


@get(
    "/health/ready",
    tags=["health"],
    summary="The database and the broker answer",
    description=(
        "503 while the database is down. While only the broker is down the API is still "
        "ready (`status: degraded`): jobs wait in the outbox and flow when it returns."
    ),
    responses={
        503: ResponseSpec(
            data_container=ProblemDocument,
            description="A dependency is down; `checks` names which.",
            media_type="application/problem+json",
        )
    },
    operation_id="getReadiness",
)
async def ready(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    checks = await state.readiness()
    down = [name for name, result in checks.items() if result != "ok"]
    public = {name: "ok" if result == "ok" else "down" for name, result in checks.items()}
    if not down:
        return Response(Readiness(status="ready", checks=checks))
    if set(down) <= state.readiness.optional:
        log.warning("degraded", **{name: checks[name] for name in down})
        return Response(Readiness(status="degraded", checks=public))
    # Anyone may ask: the answer says what is down, never why (addresses, user names and
    # driver messages stay in the log).
    log.warning("not_ready", **{name: checks[name] for name in down})
    return problem_response(
        request,
        503,
        "service-unavailable",
        f"not ready: {', '.join(down)} {'is' if len(down) == 1 else 'are'} down",
        headers={"Retry-After": "5"},
        extensions={"checks": public},
    )


@get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics of this process",
    media_type=CONTENT_TYPE_LATEST,
    operation_id="getMetrics",
)
async def metrics(state: State) -> Response[bytes]:
    await state.metrics.refresh()
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class ReadinessProbe:
    """Checks the database and the broker; concurrent callers share the check in flight.

    A probe storm (many replicas' orchestrators, a load balancer, a benchmark) then costs the
    database one `SELECT 1` at a time instead of one per request; every answer still comes
    from a check that was running when the request arrived.
    """

    def __init__(
        self,
        checks: dict[str, Callable[[], Awaitable[None]]],
        optional: frozenset[str] = frozenset(),
    ) -> None:
        self._checks = checks
        # Dependencies the process serves without (degraded, still ready): taking every
        # replica out of its load balancer for them would turn a partial outage into a
        # whole one.
        self.optional = optional
        self._in_flight: asyncio.Future[dict[str, str]] | None = None

    async def __call__(self) -> dict[str, str]:
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.ensure_future(self._run())
        return await asyncio.shield(self._in_flight)

    async def _run(self) -> dict[str, str]:
        results = await asyncio.gather(*(_reason(check) for check in self._checks.values()))
        return {name: result or "ok" for name, result in zip(self._checks, results, strict=True)}


async def _reason(check: Callable[[], Awaitable[None]]) -> str | None:
    """None when the check passes; otherwise the first line of why it failed."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await check()
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the caller
        text = str(exc).strip().splitlines()
        return text[0][:200] if text else type(exc).__name__
    return None


route_handlers = [live, ready, metrics]
