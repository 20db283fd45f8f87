"""Prometheus figures beyond HTTP: tokens, the outbox, queues, tenant schemas, jobs.

Labels stay bounded: route templates, grant types, queue and job names; never a tenant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from bpo.core.db import Database
from bpo.core.tenancy import tenant_session
from bpo.jobs.outbox import enqueue
from bpo.jobs.worker import start_worker, stop_worker
from bpo.settings import Settings
from tests.support.clients import make_client
from tests.support.jobs import record_effect, wait_for
from tests.support.processes import free_port
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]


def figure(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}{{{wanted}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


async def test_scrape_reports_tokens_outbox_and_tenant_schemas(
    client: Client, db: Database
) -> None:
    firm = await make_tenant(db, "metrics-firm")
    await make_tenant(db, "metrics-other")
    secret = await make_client(db, firm, "metrics-client", ["work:read"])
    form = {"grant_type": "client_credentials", "client_id": "metrics-client"}
    for _ in range(3):
        assert (
            await client.post("/oauth/token", data={**form, "client_secret": secret})
        ).is_success
    await client.post("/oauth/token", data={**form, "client_secret": "wrong"})
    async with tenant_session(db.engine, firm) as session:  # no relay runs: it stays pending
        await enqueue(session, record_effect, "waiting", tenant=firm)

    text = (await client.get("/metrics")).text

    assert figure(text, "bpo_tokens_issued_total", grant_type="client_credentials") == 3.0
    assert figure(text, "bpo_outbox_pending") == 1.0
    lag = figure(text, "bpo_outbox_lag_seconds")
    assert lag is not None and lag >= 0.0
    assert figure(text, "bpo_tenant_schemas", state="current") == 2.0
    assert figure(text, "bpo_tenant_schemas", state="behind") == 0.0
    assert figure(text, "bpo_queue_depth", queue="default") is not None
    assert "metrics-firm" not in text and firm.schema not in text  # no tenant as a label


async def test_a_worker_serves_its_job_counts(settings: Settings, db: Database) -> None:
    port = free_port()
    worker_settings = dataclasses.replace(
        settings, worker_scheduler=False, worker_metrics_port=port
    )
    worker = await asyncio.to_thread(start_worker, worker_settings)
    try:
        ping = worker.broker.get_actor("ping")
        await asyncio.to_thread(ping.send, f"ping-{uuid.uuid4()}")

        async def counted() -> bool:
            async with httpx.AsyncClient() as http:
                body = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            return figure(body, "bpo_jobs_total", actor="ping", outcome="ok") == 1.0

        await wait_for(counted, timeout=20)
    finally:
        await asyncio.to_thread(stop_worker, worker, 10_000)
