"""The Litestar application. `create_app(settings)` builds it; importing does nothing."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import AsyncGenerator, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Contact
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import __version__
from bpo.audit import routes as audit_routes
from bpo.billing import routes as billing_routes
from bpo.billing.counter import ApiCallCounter
from bpo.compliance import routes as compliance_routes
from bpo.console import routes as console_routes
from bpo.console.session import Sealer
from bpo.core import health, tracing
from bpo.core.db import Database, DatabaseOptions, session_scope
from bpo.core.docs import SwaggerPage, docs_router
from bpo.core.errors import exception_handlers
from bpo.core.health import ReadinessProbe
from bpo.core.idempotency import IdempotencyMiddleware, Replayed, replayed_response
from bpo.core.logging import configure_logging
from bpo.core.observability import Metrics, RequestContextMiddleware, gauge_scraper
from bpo.core.openapi import document_problems, fix_options_allow
from bpo.core.ratelimit import RateLimiter
from bpo.core.security import PasswordWork
from bpo.core.tenancy import recycle_after_tenants
from bpo.core.tenant_migrations import schema_states
from bpo.core.web import static_router
from bpo.identity import routes as identity_routes
from bpo.identity.guards import VerifiedTokens
from bpo.identity.keys import KeyRing
from bpo.identity.openapi import document_security
from bpo.identity.server import BpoAuthorizationServer
from bpo.identity.service import client_loader, token_event_writer
from bpo.identity.standing import StandingCache
from bpo.jobs.broker import BrokerProbe
from bpo.jobs.metrics import outbox_readers, queue_depth_reader
from bpo.ledger import routes as ledger_routes
from bpo.models import load_all_models
from bpo.people import routes as people_routes
from bpo.platform.access import current_principal, tenant_context, tenant_db_session
from bpo.platform.operations import routes as operations_routes
from bpo.platform.tenants.routes import TenantAdminController
from bpo.records import routes as records_routes
from bpo.settings import Settings
from bpo.settlements import routes as settlements_routes
from bpo.webhooks import routes as webhooks_routes
from bpo.work import routes as work_routes
from bpo.work import task_routes as work_task_routes


async def _bounded(part: str, closing: Coroutine[Any, Any, None], seconds: float = 10.0) -> None:
    """One part's shutdown, in bounded time: a part that hangs (a lock, a lost peer) is
    logged and left, so the process still stops."""
    try:
        await asyncio.wait_for(closing, seconds)
    except TimeoutError:
        structlog.get_logger("bpo.app").warning("shutdown_timed_out", part=part, seconds=seconds)


def create_app(
    settings: Settings,
    *,
    extra_route_handlers: Sequence[ControllerRouterHandler] = (),
    freeze_heap: bool = False,
) -> Litestar:
    """Build the API for `settings`. Connections open lazily, inside the server's loop.

    `freeze_heap` is for a serving process (see `settle_heap`); a test process builds many
    apps and wants them all collectable."""
    if settings.database_url is None or settings.broker_url is None:
        raise ValueError("create_app needs BPO_DATABASE_URL and BPO_BROKER_URL (bpo up sets them)")
    configure_logging(settings.log_level, settings.log_json)
    load_all_models()  # tenant provisioning builds schemas from the complete metadata
    metrics = Metrics()
    if settings.otel_endpoint:
        tracing.enable(settings.otel_endpoint, settings.otel_service_name)
    database_url, broker_url = settings.database_url, settings.broker_url

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        db = Database(
            database_url,
            DatabaseOptions(
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                connect_timeout=settings.db_connect_timeout,
                statement_timeout_ms=settings.api_statement_timeout_ms,
                application_name="bpo-api",
            ),
        )
        probe = BrokerProbe(broker_url)
        metrics.watch_pool(db.engine.sync_engine.pool)
        _watch_figures(metrics, db, settings)
        tracing.instrument_engine(db.engine)
        recycle_after_tenants(db.engine, settings.tenants_per_connection)
        document_problems(app)
        document_security(app)
        app.state.db = db
        app.state.background_tasks = set()
        app.state.readiness = ReadinessProbe(
            {"database": db.ping, "broker": probe.check}, optional=frozenset({"broker"})
        )
        app.state.limiter = limiter = RateLimiter(
            settings.limiter_redis_url, prefix=f"{settings.broker_namespace}:rl"
        )
        app.state.verified_tokens = VerifiedTokens()
        app.state.standing = standing = StandingCache()
        standing.listen(database_url).start()
        app.state.token_events = token_event_writer(db)
        app.state.api_calls = api_calls = ApiCallCounter(db.engine, limiter)
        api_calls.start()
        if settings.secret_key:  # keys load lazily, on the first token request
            app.state.key_ring = KeyRing(settings.secret_key)
            app.state.oauth_clients = client_loader(db, settings.secret_key)
            app.state.oauth = BpoAuthorizationServer(
                app.state.key_ring, settings.issuer, settings.issuer
            )
            app.state.console_sealer = Sealer(settings.secret_key)
        if freeze_heap:
            settle_heap()
        try:
            yield
        finally:
            await _bounded("api_calls", api_calls.stop())
            if standing.listener is not None:
                await _bounded("standing_listener", standing.listener.stop())
            await _bounded("limiter", limiter.close())
            await _bounded("broker_probe", probe.close())
            await _bounded("database", db.dispose())

    app = Litestar(
        route_handlers=[
            *health.route_handlers,
            *identity_routes.route_handlers,
            *people_routes.route_handlers,
            TenantAdminController,
            *audit_routes.route_handlers,
            *billing_routes.route_handlers,
            *operations_routes.route_handlers,
            *webhooks_routes.route_handlers,
            *ledger_routes.route_handlers,
            *records_routes.route_handlers,
            *settlements_routes.route_handlers,
            *compliance_routes.route_handlers,
            *work_routes.route_handlers,
            *work_task_routes.route_handlers,
            console_routes.console_router(),
            static_router(),
            *extra_route_handlers,
        ],
        template_config=console_routes.templates(),
        lifespan=[lifespan],
        dependencies={
            "db_session": Provide(_db_session),
            # The caller, as the route's guard found them; on /v1/tenants/{slug}/... routes
            # the tenant the token grants, and that tenant's session.
            "principal": Provide(current_principal),
            "tenant": Provide(tenant_context),
            "tenant_db": Provide(tenant_db_session),
        },
        exception_handlers={**exception_handlers(), Replayed: replayed_response},
        openapi_config=_openapi_config() if settings.docs_enabled else None,
        request_max_body_size=settings.max_body_bytes,
        state=_initial_state(settings, metrics),
        logging_config=None,
        debug=False,
    )
    idempotent = IdempotencyMiddleware(
        app.asgi_handler, lambda: app.state.get("db") and app.state.db.engine, settings.secret_key
    )
    traced = tracing.TracingMiddleware(idempotent) if settings.otel_endpoint else idempotent
    app.asgi_handler = RequestContextMiddleware(traced, metrics)
    fix_options_allow(app)
    return app


def settle_heap() -> None:
    """What start-up built (routes, models, metadata, the schema) lives as long as the
    process: move it out of the garbage collector's sight (`gc.freeze`), so a full
    collection scans only what requests make. Full collections over the whole heap paused
    the loop for tens of milliseconds and made the slowest requests (benchmarks/
    request_path.py)."""
    gc.collect()
    gc.freeze()


def app_from_env() -> Litestar:
    """Factory for ASGI servers (`granian --interface asgi --factory bpo.app:app_from_env`)."""
    return create_app(Settings.from_env(), freeze_heap=True)


async def _db_session(state: State) -> AsyncGenerator[AsyncSession, None]:
    """One session per request: committed when the handler returns, rolled back if it raises."""
    async for session in session_scope(state.db):
        yield session


def _watch_figures(metrics: Metrics, db: Database, settings: Settings) -> None:
    """Figures read at scrape time: the outbox, the broker's queues, tenant schemas."""
    pending, lag = outbox_readers(db.engine)
    metrics.add_scraper(gauge_scraper("bpo_outbox_pending", "Jobs not yet relayed.", [], pending))
    metrics.add_scraper(
        gauge_scraper("bpo_outbox_lag_seconds", "Age of the oldest unrelayed job.", [], lag)
    )
    assert settings.broker_url is not None
    depth = queue_depth_reader(settings.broker_url, settings.broker_namespace)
    if depth is not None:
        doc = "Messages waiting in the broker, by queue."
        metrics.add_scraper(gauge_scraper("bpo_queue_depth", doc, ["queue"], depth))
    doc = "Tenant schemas at the code's head revision or behind it."
    reader = functools.partial(schema_states, db.engine)
    metrics.add_scraper(gauge_scraper("bpo_tenant_schemas", doc, ["state"], reader), 30.0)


def _initial_state(settings: Settings, metrics: Metrics) -> State:
    return State({"settings": settings, "metrics": metrics, "password_work": PasswordWork()})


DOCS_PATH = "/schema"
DOCS_TITLE = "bpo API"


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title=DOCS_TITLE,
        version=__version__,
        description=(
            "Outsourced back office for client firms: accounting, settlements, records, "
            "compliance and work queues. Errors are RFC 9457 problem details."
        ),
        contact=Contact(name="bpo", email="support@example.com"),
        # Swagger UI and the document, served from bpo's own files (no CDN): core/docs.py.
        openapi_router=docs_router(DOCS_PATH),
        render_plugins=[SwaggerPage(DOCS_PATH, DOCS_TITLE)],
        components=Components(),
        use_handler_docstrings=True,
    )
