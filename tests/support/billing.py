"""Billing test helpers: settings pointing at the Stripe stand-in, signed Stripe events."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import stripe
from sqlalchemy import text

from bpo.billing.models import Plan, PlanPrice, Subscription
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext
from bpo.settings import Settings
from tests.support.stripe_standin import StripeStandIn, stripe_fixtures

WEBHOOK_SECRET = "whsec_bpo_test_0123456789abcdef"


def stripe_settings(settings: Settings, standin: StripeStandIn | None = None) -> Settings:
    return dataclasses.replace(
        settings,
        stripe_api_key="sk_test_bpo",
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=standin.url if standin else "http://127.0.0.1:9",
    )


def stripe_event(kind: str, obj: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    event = copy.deepcopy(stripe_fixtures()["event"])
    event.update(
        id=f"evt_{uuid.uuid4().hex[:20]}",
        type=kind,
        created=created or int(time.time()),
        data={"object": obj},
        api_version="2025-06-30.basil",
    )
    return event


def invoice_object(customer: str, start: datetime, end: datetime, **fields: Any) -> dict[str, Any]:
    invoice = copy.deepcopy(stripe_fixtures()["invoice"])
    invoice.update(
        id=f"in_{uuid.uuid4().hex[:14]}",
        customer=customer,
        period_start=int(start.timestamp()),
        period_end=int(end.timestamp()),
        **fields,
    )
    return invoice


def subscription_object(customer: str, status: str) -> dict[str, Any]:
    sub = copy.deepcopy(stripe_fixtures()["subscription"])
    sub.update(id=f"sub_{customer}", customer=customer, status=status)
    return sub


def signed(
    event: dict[str, Any], secret: str = WEBHOOK_SECRET, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe would send, signed with the SDK's own helper."""
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(
        body, secret, timestamp=at or int(time.time())
    )
    return body.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


async def subscribe_directly(
    db: Database, tenant: TenantContext, plan: str, customer: str | None = None
) -> None:
    """A subscription as if Stripe had connected it (for tests about what comes after)."""
    async with db.sessionmaker.begin() as session:
        session.add(
            Subscription(
                tenant_id=tenant.tenant_id,
                plan=plan,
                status="active",
                stripe_customer=customer,
                stripe_subscription=f"sub_{customer}" if customer else None,
            )
        )


async def backdate_subscription(db: Database, tenant: TenantContext, to: datetime) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE platform.subscriptions SET created_at = :at WHERE tenant_id = :t"),
            {"at": to, "t": tenant.tenant_id},
        )


def price(
    unit_amount: str = "0",
    *,
    included: int = 0,
    quota: int | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """A plan price for `custom_plan`: one flat tier past `included`, maybe a quota."""
    tiers = [{"up_to": None, "unit_amount": unit_amount}]
    return {"included": included, "tiers": tiers, "quota": quota, "quota_kind": kind}


@asynccontextmanager
async def custom_plan(
    db: Database,
    key: str,
    prices: dict[str, dict[str, Any]],
    base_fee: int = 1000,
    currency: str = "usd",
) -> AsyncIterator[str]:
    """A plan made for one test (plans are reference data: kept between tests), removed
    with whatever refers to it when the block ends."""
    async with db.sessionmaker.begin() as session:
        plan = Plan(key=key, name=key.title(), base_fee=base_fee, limits={}, currency=currency)
        session.add(plan)
        await session.flush()
        for meter, terms in prices.items():
            session.add(PlanPrice(plan=key, meter=meter, **terms))
    try:
        yield key
    finally:
        async with db.engine.begin() as conn:
            for table in ("plan_changes", "subscriptions", "invoices", "plan_prices"):
                await conn.execute(
                    text(f"DELETE FROM platform.{table} WHERE plan = :key"), {"key": key}
                )
            await conn.execute(text("DELETE FROM platform.plans WHERE key = :key"), {"key": key})
