"""Request id, access log and Prometheus metrics for every HTTP exchange.

This wraps Litestar's whole ASGI handler (not a route middleware), so 404s, 405s and
errors raised before routing get a request id, a log line and a metric too.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.pool import QueuePool

from bpo.core.errors import problem_asgi_response
from bpo.core.ids import uuid7

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_QUIET_PATHS = frozenset({"/health/live", "/metrics"})
# Fields a request may carry once (RFC 9110 §5.3: not lists). Two of them make the request
# ambiguous: one layer could read the first, another the last (two Authorization headers
# would let a proxy and the app disagree on who is calling). Refused before anything runs.
_SINGLETON_FIELDS = frozenset(
    {b"authorization", b"idempotency-key", b"content-type", b"content-length", b"host"}
)

access_log = structlog.get_logger("bpo.access")
log = structlog.get_logger("bpo.metrics")


class Metrics:
    """The process's metrics, in a registry of its own (one per app, so tests can build many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bpo_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "bpo_http_request_duration_seconds",
            "Time from request start to the last byte of the response.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "bpo_http_requests_in_progress", "Requests being served now.", registry=self.registry
        )
        ProcessCollector(registry=self.registry)
        self._counters: dict[str, Counter] = {}
        self._scrapers: list[Scraper] = []

    def counter(self, name: str, documentation: str, labels: Sequence[str]) -> Counter:
        """A counter of this registry, made on first use (domains count their own events).
        Labels must take few values: never a tenant, a user or an id."""
        if name not in self._counters:
            self._counters[name] = Counter(name, documentation, labels, registry=self.registry)
        return self._counters[name]

    def add_scraper(self, scraper: Scraper, every_s: float = 10.0) -> None:
        """Figures read from the database or the broker when scraped, at most every
        `every_s`: many replicas' scrapes then cost a query each per interval, not more."""
        self._scrapers.append(_Throttled(scraper, every_s, self.registry))

    async def refresh(self) -> None:
        for scraper in self._scrapers:
            await scraper(self.registry)

    def watch_pool(self, pool: object) -> None:
        """Export the SQLAlchemy connection pool's occupancy."""
        if isinstance(pool, QueuePool):
            self.registry.register(_PoolCollector(pool))


Scraper = Callable[[CollectorRegistry], Awaitable[None]]


GaugeReader = Callable[[], Awaitable[dict[tuple[str, ...], float]]]


def gauge_scraper(
    name: str, documentation: str, labels: Sequence[str], read: GaugeReader
) -> Scraper:
    """A scraper setting one gauge from `read()`: {label values: figure} (() without labels)."""
    made: list[Gauge] = []

    async def scrape(registry: CollectorRegistry) -> None:
        values = await read()
        if not made:
            made.append(Gauge(name, documentation, labels, registry=registry))
        gauge = made[0]
        if labels:
            gauge.clear()  # a label value that vanished (a drained queue) goes too
            for key, value in values.items():
                gauge.labels(*key).set(value)
        else:
            gauge.set(values.get((), 0.0))

    return scrape


class _Throttled:
    def __init__(self, scraper: Scraper, every_s: float, registry: CollectorRegistry) -> None:
        self._scraper, self._every, self._last = scraper, every_s, -every_s
        self._lock = asyncio.Lock()

    async def __call__(self, registry: CollectorRegistry) -> None:
        async with self._lock:  # concurrent scrapes share one refresh
            if time.monotonic() - self._last < self._every:
                return
            try:
                await self._scraper(registry)
            except Exception:  # a figure missing from one scrape beats a failed scrape
                log.warning("metrics_scrape_failed", scraper=repr(self._scraper), exc_info=True)
            self._last = time.monotonic()


class _PoolCollector(Collector):
    def __init__(self, pool: QueuePool) -> None:
        self._pool = pool

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "bpo_db_pool_checked_out", "Connections in use.", value=self._pool.checkedout()
        )
        yield GaugeMetricFamily(
            "bpo_db_pool_size", "Connections held by the pool.", value=self._pool.size()
        )


class RequestContextMiddleware:
    """Outermost ASGI layer: request id in, header out, one access-log line, metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "HEAD":
            # RFC 9110 §9.3.2: HEAD is GET without the body, for every GET route.
            scope = {**scope, "method": "GET"}
        request_id = _incoming_request_id(scope) or str(uuid7())
        scope.setdefault("state", {})["request_id"] = request_id
        repeated = _repeated_field(scope)
        if repeated is not None:
            detail = f"the request carries the {repeated} header more than once"
            await problem_asgi_response(scope, send, 400, "ambiguous-request", detail)
            return
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*_with_head_allowed(message.get("headers", ())), header]
            elif method == "HEAD" and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_progress.dec()
            elapsed = time.perf_counter() - started
            label = method if method in _METHODS else "OTHER"
            route = scope.get("path_template") or "unmatched"
            self.metrics.requests.labels(label, route, str(status)).inc()
            self.metrics.duration.labels(label, route).observe(elapsed)
            quiet = scope["path"] in _QUIET_PATHS and status < 400
            if not quiet and access_log.isEnabledFor(logging.INFO):  # skip the processors
                access_log.info(
                    "request",
                    method=method,
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            structlog.contextvars.reset_contextvars(**tokens)


def _repeated_field(scope: Scope) -> str | None:
    seen: set[bytes] = set()
    for name, _ in scope["headers"]:
        lowered = name.lower()
        if lowered in _SINGLETON_FIELDS:
            if lowered in seen:
                return lowered.decode().title()
            seen.add(lowered)
    return None


def _with_head_allowed(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Where GET is allowed, so is HEAD (answered above): say so in `Allow`."""
    out = []
    for name, value in headers:
        if name.lower() == b"allow" and b"GET" in value and b"HEAD" not in value:
            methods = sorted({m.strip() for m in value.split(b",")} | {b"HEAD"})
            value = b", ".join(methods)
        out.append((name, value))
    return out


def _incoming_request_id(scope: Scope) -> str | None:
    """Honour a caller's X-Request-ID when it is a sane token; otherwise make our own."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.match(candidate) else None
    return None
