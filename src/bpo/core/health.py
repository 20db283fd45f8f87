"""Liveness and readiness probes, and the Prometheus exposition."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bpo.core.errors import ProblemDocument, problem_response

CHECK_TIMEOUT_S = 2.0


class Liveness(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


@get("/health/live", tags=["health"], summary="The process is up", sync_to_thread=False)
def live() -> Liveness:
    return Liveness(status="ok")


@get(
    "/health/ready",
    tags=["health"],
    summary="The database and the broker answer",
    responses={
        503: ResponseSpec(
            data_container=ProblemDocument,
            description="A dependency is down; `checks` names which.",
            media_type="application/problem+json",
        )
    },
)
async def ready(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    db_error, broker_error = await asyncio.gather(
        _check(state.db.ping(CHECK_TIMEOUT_S)),
        _check(state.broker_probe.check(CHECK_TIMEOUT_S)),
    )
    checks = {"database": db_error or "ok", "broker": broker_error or "ok"}
    down = [name for name, result in checks.items() if result != "ok"]
    if not down:
        return Response(Readiness(status="ready", checks=checks))
    detail = "; ".join(f"{name} is unavailable: {checks[name]}" for name in down)
    return problem_response(
        request,
        503,
        "service-unavailable",
        detail,
        headers={"Retry-After": "5"},
        extensions={"checks": checks},
    )


@get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics of this process",
    media_type=CONTENT_TYPE_LATEST,
    sync_to_thread=False,
)
def metrics(state: State) -> Response[bytes]:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _check(probe: Any) -> str | None:
    try:
        await probe
    except Exception as exc:  # any failure means "not ready"; the reason goes to the caller
        text = str(exc).strip().splitlines()
        return text[0][:200] if text else type(exc).__name__
    return None


route_handlers = [live, ready, metrics]
