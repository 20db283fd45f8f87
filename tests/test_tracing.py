"""OpenTelemetry traces, sent by the real OTLP/HTTP exporter to a collector on loopback.

Off by default (nothing is sent, the outbox row carries no context); with
BPO_OTEL_ENDPOINT set, a request is a server span continuing the caller's `traceparent`, its
SQL are child spans, and a job it enqueued runs in a span of the same trace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import text

from bpo.core import tracing
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.jobs.outbox import enqueue
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.jobs import add_effects_table, record_effect, running_worker, wait_for
from tests.support.tenants import make_tenant

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP trace receiver: decodes each export into (trace id, span id, parent,
    name, attributes)."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(_span(s) for s in scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, prefix: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["name"].startswith(prefix)]


def _span(span: Any) -> dict[str, Any]:
    attributes = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
    return {
        "trace": span.trace_id.hex(),
        "id": span.span_id.hex(),
        "parent": span.parent_span_id.hex(),
        "name": span.name,
        "attributes": attributes,
    }


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    found = Collector()
    yield found
    tracing.disable()  # later tests run untraced, with nothing left to export
    found.server.shutdown()


@pytest.fixture
async def firm(db: Database) -> TenantContext:
    tenant = await make_tenant(db, "traced-firm")
    await add_effects_table(db.engine, tenant)
    return tenant


async def flushed(collector: Collector, prefix: str) -> list[dict[str, Any]]:
    async def arrived() -> bool:
        await asyncio.to_thread(tracing.flush)
        return bool(collector.named(prefix))

    await wait_for(arrived, timeout=10)
    return collector.named(prefix)


async def test_a_request_is_a_server_span_with_its_sql_as_children(
    settings: Settings, db: Database, collector: Collector
) -> None:
    traced = dataclasses.replace(settings, otel_endpoint=collector.url)
    parent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    async with AsyncTestClient(app=build_app(traced)) as client:
        response = await client.get("/health/ready", headers={"traceparent": parent})
    assert response.status_code == 200
    (server,) = await flushed(collector, "GET /health/ready")
    assert server["trace"] == CALLER_TRACE and server["parent"] == CALLER_SPAN
    assert server["attributes"]["http.route"] == "/health/ready"
    assert server["attributes"]["http.response.status_code"] == 200
    sql = [s for s in collector.spans if s["trace"] == CALLER_TRACE and s["id"] != server["id"]]
    assert sql and all(s["parent"] == server["id"] for s in sql)
    assert any("SELECT" in s["name"] or "SELECT" in str(s["attributes"]) for s in sql)


async def test_a_job_continues_the_trace_that_enqueued_it(
    settings: Settings, db: Database, firm: TenantContext, collector: Collector
) -> None:
    traced = dataclasses.replace(settings, otel_endpoint=collector.url)
    tracing.enable(collector.url, "bpo")
    tracer = tracing._tracer
    with tracer.start_as_current_span("POST /v1/something") as request_span:
        async with tenant_session(db.engine, firm) as session:
            await enqueue(session, record_effect, "traced", tenant=firm)
        request_context = request_span.get_span_context()
    async with running_worker(traced):

        async def recorded() -> bool:
            async with db.engine.connect() as conn:
                sql = f'SELECT count(*) FROM "{firm.schema}".job_effects'
                return bool(await conn.scalar(text(sql)))

        await wait_for(recorded)
    (job,) = await flushed(collector, "job record_effect")
    assert job["trace"] == f"{request_context.trace_id:032x}"
    assert job["parent"] == f"{request_context.span_id:016x}"
    assert job["attributes"]["bpo.tenant"] == "traced-firm"


async def test_untraced_requests_leave_no_context_in_the_outbox(
    db: Database, firm: TenantContext
) -> None:
    async with tenant_session(db.engine, firm) as session:  # no span is current here
        await enqueue(session, record_effect, "plain", tenant=firm)
    async with db.engine.connect() as conn:
        contexts = (await conn.execute(text("SELECT trace_context FROM platform.outbox"))).all()
    assert contexts == [(None,)]
