"""OpenTelemetry traces: requests, SQL and jobs, sent over OTLP/HTTP. Off by default.

With BPO_OTEL_ENDPOINT unset nothing here imports the SDK and every helper is a cheap no-op:
a process without traces pays one `if` per request. With it set, the API wraps each request
in a server span (continuing a caller's `traceparent`), each engine's statements become
child spans, and a job enqueued inside a traced request carries the W3C trace context in
its outbox row, so the worker's span continues the request's trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

_tracer: Any = None  # set by enable(); None means tracing is off in this process
_processors: dict[str, Any] = {}


def enable(endpoint: str, service_name: str) -> None:
    """Send this process's spans to the OTLP/HTTP `endpoint` (idempotent per endpoint)."""
    global _tracer
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        trace.set_tracer_provider(provider)
    if endpoint not in _processors:
        exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces", timeout=5)
        _processors[endpoint] = BatchSpanProcessor(exporter, schedule_delay_millis=500)
        provider.add_span_processor(_processors[endpoint])
    _tracer = trace.get_tracer("bpo")


def disable() -> None:
    """Stop tracing in this process (tests that turned it on, then off)."""
    global _tracer
    _tracer = None
    for processor in _processors.values():
        processor.shutdown()
    _processors.clear()


def enabled() -> bool:
    return _tracer is not None


def flush() -> None:
    """Export what is buffered (a worker's shutdown, a test)."""
    for processor in _processors.values():
        processor.force_flush(5_000)


def instrument_engine(engine: AsyncEngine) -> None:
    """SQL statements of `engine` as client spans under the current one: the statement's
    text (never its parameters). Engine events, not opentelemetry-instrumentation-sqlalchemy,
    which refuses SQLAlchemy 2.1."""
    if _tracer is None:
        return
    from opentelemetry import trace

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def start(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        tracer = _tracer
        if tracer is None or not trace.get_current_span().get_span_context().is_valid:
            return  # no request or job around it: a pool ping, a background loop
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = tracer.start_span(verb, kind=trace.SpanKind.CLIENT)
        span.set_attribute("db.system.name", "postgresql")
        span.set_attribute("db.query.text", statement[:2000])
        conn.info.setdefault("otel_spans", []).append(span)

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def end(conn: Any, *args: Any) -> None:
        if spans := conn.info.get("otel_spans"):
            spans.pop().end()

    @event.listens_for(engine.sync_engine, "handle_error")
    def failed(context: Any) -> None:
        if spans := context.connection.info.get("otel_spans") if context.connection else None:
            span = spans.pop()
            span.set_status(trace.StatusCode.ERROR, type(context.original_exception).__name__)
            span.end()


def carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers, to travel with a job (None: no trace)."""
    if _tracer is None:
        return None
    from opentelemetry import propagate, trace

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers or None


@contextlib.contextmanager
def job_span(name: str, parent: dict[str, str] | None, **attributes: Any) -> Iterator[None]:
    """A consumer span for one job run, continuing the trace that enqueued it."""
    if _tracer is None:
        yield
        return
    from opentelemetry import propagate, trace

    context = propagate.extract(parent or {})
    kind = trace.SpanKind.CONSUMER
    with _tracer.start_as_current_span(f"job {name}", context=context, kind=kind) as span:
        for key, value in attributes.items():
            if value is not None:
                span.set_attribute(key, value)
        yield


class TracingMiddleware:
    """A server span per HTTP request, named by its route template (bounded names)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or _tracer is None:
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate, trace

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        context = propagate.extract(headers)
        status = 500
        method = scope["method"]

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        kind = trace.SpanKind.SERVER
        with _tracer.start_as_current_span(method, context=context, kind=kind) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = scope.get("path_template") or "unmatched"
                span.update_name(f"{method} {route}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                request_id = scope.get("state", {}).get("request_id")
                if request_id:
                    span.set_attribute("bpo.request_id", request_id)
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
