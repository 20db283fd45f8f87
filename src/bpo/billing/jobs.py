"""Billing's background work: rollups, Stripe pushes and webhooks, period close, dunning,
reconciliation. Every Stripe job does nothing when Stripe is not configured."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog

from bpo.billing import accounts, stripe_events, stripe_sync
from bpo.billing.gateway import StripeGateway, StripeUnavailable
from bpo.billing.service import roll_up
from bpo.jobs.context import worker_database, worker_settings
from bpo.jobs.registry import job

log = structlog.get_logger("bpo.billing")
BATCH = 50_000


def _gateway() -> StripeGateway | None:
    settings = worker_settings()
    return StripeGateway(settings) if settings.stripe_api_key else None


@job(queue="default", max_retries=5, every=timedelta(minutes=1))
async def roll_up_usage() -> None:
    """Fold every pending usage event into its hour (and its meter event for Stripe)."""
    engine = worker_database().engine
    while True:
        async with engine.begin() as conn:
            moved = await roll_up(conn, BATCH)
        if moved == 0:
            return


@job(queue="default", max_retries=8, every=timedelta(minutes=1))
async def push_usage() -> None:
    """Send pending meter events to Stripe until none are left; when Stripe is down the
    job ends in an error, retried with backoff (and the next minute's run tries too)."""
    gateway = _gateway()
    if gateway is None:
        return
    engine = worker_database().engine
    while True:
        done = await stripe_sync.push_usage(engine, gateway)
        if done.unavailable:
            raise StripeUnavailable(f"{done.unavailable} meter events wait for Stripe")
        if done.claimed < stripe_sync.PUSH_BATCH:
            return


@job(queue="default", max_retries=10)
async def connect_subscription(tenant_id: str) -> None:
    gateway = _gateway()
    if gateway is not None:
        sessions = worker_database().sessionmaker
        await stripe_sync.connect_subscription(sessions, gateway, uuid.UUID(tenant_id))


@job(queue="default", max_retries=10)
async def apply_stripe_event(event_id: str) -> None:
    async with worker_database().sessionmaker.begin() as session:
        await stripe_events.apply(session, event_id)


@job(queue="default", max_retries=10)
async def bill_adjustments(invoice_id: str) -> None:
    gateway = _gateway()
    if gateway is not None:
        sessions = worker_database().sessionmaker
        await stripe_sync.bill_adjustments(sessions, gateway, uuid.UUID(invoice_id))


@job(queue="default", max_retries=5, every=timedelta(minutes=15))
async def close_billing_periods() -> None:
    """Invoice last month for every tenant subscribed then (once; later runs find it done)."""
    async with worker_database().sessionmaker.begin() as session:
        closed = await accounts.close_periods(session, datetime.now(UTC))
    if closed:
        log.info("billing_periods_closed", invoices=closed)


@job(queue="default", max_retries=5, every=timedelta(minutes=15))
async def enforce_dunning() -> None:
    grace = timedelta(hours=worker_settings().billing_grace_hours)
    async with worker_database().sessionmaker.begin() as session:
        suspended = await accounts.suspend_overdue(session, datetime.now(UTC), grace)
    if suspended:
        log.warning("tenants_suspended_for_payment", tenants=suspended)


@job(queue="default", max_retries=3, every=timedelta(hours=1))
async def reconcile_usage() -> None:
    gateway = _gateway()
    if gateway is not None:
        sessions = worker_database().sessionmaker
        window = stripe_sync.reconciliation_window(datetime.now(UTC))
        found = await stripe_sync.reconcile(sessions, gateway, *window)
        if found:
            log.warning("usage_mismatch", differences=len(found))
