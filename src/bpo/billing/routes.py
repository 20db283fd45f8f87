"""Billing APIs: staff admins record usage in batches; tenant admins read their usage,
plan, preview and invoices, subscribe and open Stripe's portal; Stripe posts its events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import PLATFORM_CHAIN
from bpo.billing import accounts, quotas, service, stripe_events
from bpo.billing.gateway import (
    BadSignature,
    StripeGateway,
    StripeRefused,
    StripeUnavailable,
    verified_event,
)
from bpo.billing.models import Invoice, Meter, Plan, Subscription
from bpo.billing.plan_history import record_plan_change
from bpo.billing.pricing import Line, MeterPrice, PlanTerms, plan_terms
from bpo.billing.schemas import (
    DailyUsageOut,
    DayUsageOut,
    InvoiceList,
    InvoiceOut,
    LineOut,
    MeterUsageOut,
    PlanOut,
    PortalIn,
    PortalOut,
    PreviewOut,
    PriceOut,
    SubscribeIn,
    SubscriptionOut,
    TierOut,
    UsageBatch,
    UsageBatchResult,
    UsageOut,
    WebhookAck,
)
from bpo.core.errors import Problem
from bpo.core.pagination import PageCursor, PageLimit
from bpo.core.tenancy import TenantContext
from bpo.identity.guards import PUBLIC, STAFF_ADMIN, TENANT_BILLING, Principal
from bpo.jobs.outbox import enqueue
from bpo.platform.tenants import service as tenants_service
from bpo.settings import Settings
from bpo.webhooks.service import record_event


@post(
    "/v1/staff/usage",
    guards=[STAFF_ADMIN],
    tags=["billing"],
    status_code=200,
    summary="Record usage done outside bpo (up to 1,000 events; each key counts once)",
    operation_id="recordUsage",
)
async def record_batch(
    data: JSONBody[UsageBatch],
    principal: NamedDependency[Principal],
    db_session: NamedDependency[AsyncSession],
) -> UsageBatchResult:
    usage = await _checked(db_session, data)
    connection = await db_session.connection()
    recorded = await service.record_usage_batch(connection, usage)
    received = len(data.events)
    await audit.record(
        db_session,
        PLATFORM_CHAIN,
        actor=principal,
        action="usage.recorded",
        target="usage",
        after={"received": received, "recorded": recorded},
    )
    return UsageBatchResult(received=received, recorded=recorded, duplicates=received - recorded)


async def _checked(session: AsyncSession, data: UsageBatch) -> list[service.Usage]:
    """The batch as usage events, or a 422 naming every bad event (nothing recorded)."""
    slugs = sorted({e.tenant for e in data.events})
    tenants = await tenants_service.ids_of(session, slugs)
    meters = set((await session.scalars(select(Meter.key))).all())
    now = datetime.now(UTC)
    errors, usage = [], []
    for n, event in enumerate(data.events):
        where = f"#/events/{n}"
        if event.tenant not in tenants:
            errors.append({"pointer": f"{where}/tenant", "detail": f"no tenant {event.tenant!r}"})
        if event.meter not in meters:
            errors.append({"pointer": f"{where}/meter", "detail": f"no meter {event.meter!r}"})
        try:
            service.check_usage(event.quantity, event.at, now)
        except service.UsageRefused as exc:
            errors.append({"pointer": where, "detail": str(exc)})
        if not errors:
            tenant_id = tenants[event.tenant]
            usage.append(service.Usage(tenant_id, event.meter, event.quantity, event.key, event.at))
    if errors:
        raise Problem(
            422,
            "validation-error",
            f"{len(errors)} problem(s) in the batch; nothing was recorded",
            errors=errors[:100],
        )
    return usage


@get(
    "/v1/tenants/{slug:str}/billing/usage",
    guards=[TENANT_BILLING],
    tags=["billing"],
    summary="Usage per meter in the current period (the calendar month, UTC) or a given one",
    operation_id="getUsage",
)
async def current_usage(
    tenant: NamedDependency[TenantContext],
    db_session: NamedDependency[AsyncSession],
    start: FromQuery[datetime | None] = None,
    end: FromQuery[datetime | None] = None,
) -> UsageOut:
    default_start, default_end = service.month_of(datetime.now(UTC))
    period_start, period_end = start or default_start, end or default_end
    for name, value in (("start", period_start), ("end", period_end)):
        if value.tzinfo is None or value.minute or value.second or value.microsecond:
            raise Problem(
                400,
                "malformed-request",
                f"{name} must be a whole hour with a time zone, such as 2026-11-01T00:00:00Z",
                errors=[{"parameter": name, "location": "query", "detail": "not a whole hour"}],
            )
    if period_end <= period_start:
        raise Problem(400, "malformed-request", "end must come after start")
    rows = await service.period_usage(db_session, tenant.tenant_id, period_start, period_end)
    sub = await accounts.subscription_of(db_session, tenant.tenant_id)
    terms = None
    if sub is not None and sub.status != "canceled":
        terms = await plan_terms(db_session, sub.plan)
    return UsageOut(
        period_start=period_start,
        period_end=period_end,
        meters=[_meter_usage_out(r, terms) for r in rows],
        plan=terms.key if terms else None,
    )


@get(
    "/v1/tenants/{slug:str}/billing/usage/daily",
    guards=[TENANT_BILLING],
    tags=["billing"],
    summary="One meter's usage per UTC day over the last days (today included)",
    operation_id="getDailyUsage",
)
async def daily_usage(
    tenant: NamedDependency[TenantContext],
    db_session: NamedDependency[AsyncSession],
    meter: Annotated[str, Parameter(max_length=60, description="The meter's key")],
    days: Annotated[int, Parameter(ge=1, le=366)] = 30,
) -> DailyUsageOut:
    found = await db_session.get(Meter, meter)
    if found is None:
        raise Problem(
            400, "malformed-request", f"there is no meter {meter!r}",
            errors=[{"parameter": "meter", "location": "query", "detail": "unknown meter"}],
        )  # fmt: skip
    rows = await service.daily_usage(db_session, tenant.tenant_id, found, days)
    return DailyUsageOut(
        meter=found.key, name=found.name, unit=found.unit, aggregation=found.aggregation,
        days=[DayUsageOut(day=d, quantity=q, events=n) for d, q, n in rows],
    )  # fmt: skip


def _meter_usage_out(r: service.MeterUsage, terms: PlanTerms | None) -> MeterUsageOut:
    price = terms.prices.get(r.meter) if terms else None
    out = MeterUsageOut(r.meter, r.name, r.unit, r.aggregation, r.quantity, r.events)
    if price is not None:
        out.included, out.limit, out.limit_kind = price.included, price.quota, price.quota_kind
        out.remaining = quotas.remaining(price.quota, r.quantity)
    return out


def _price_out(p: MeterPrice) -> PriceOut:
    tiers = [TierOut(t.up_to, t.unit_amount) for t in p.tiers]
    return PriceOut(p.meter, p.included, tiers, p.quota, p.quota_kind)


def plan_out(terms: PlanTerms) -> PlanOut:
    prices = [_price_out(p) for p in sorted(terms.prices.values(), key=lambda p: p.meter)]
    return PlanOut(terms.key, terms.name, terms.currency, terms.base_fee, terms.limits, prices)


@get(
    "/v1/tenants/{slug:str}/billing/plans",
    guards=[TENANT_BILLING],
    tags=["billing"],
    summary="The plans a firm can subscribe to",
    operation_id="listPlans",
)
async def list_plans(db_session: NamedDependency[AsyncSession]) -> list[PlanOut]:
    keys = (
        await db_session.scalars(select(Plan.key).where(Plan.active).order_by(Plan.base_fee))
    ).all()
    return [plan_out(await plan_terms(db_session, key)) for key in keys]


async def _subscription_out(session: AsyncSession, sub: Subscription) -> SubscriptionOut:
    start, end = service.month_of(datetime.now(UTC))
    return SubscriptionOut(
        plan=plan_out(await plan_terms(session, sub.plan)),
        status=sub.status,
        stripe_connected=sub.stripe_subscription is not None,
        period_start=start,
        period_end=end,
        past_due_since=sub.past_due_since,
        suspended_for_payment=sub.suspended_for_payment,
    )


@get(
    "/v1/tenants/{slug:str}/billing/subscription",
    guards=[TENANT_BILLING],
    tags=["billing"],
    summary="The firm's plan and subscription",
    operation_id="getSubscription",
)
async def show_subscription(
    tenant: NamedDependency[TenantContext], db_session: NamedDependency[AsyncSession]
) -> SubscriptionOut:
    sub = await accounts.subscription_of(db_session, tenant.tenant_id)
    if sub is None:
        raise Problem(404, "not-found", "the tenant has no subscription: subscribe to a plan")
    return await _subscription_out(db_session, sub)


@post(
    "/v1/tenants/{slug:str}/billing/subscription",
    guards=[TENANT_BILLING],
    tags=["billing"],
    status_code=201,
    summary="Subscribe to a plan (the Stripe customer and subscription follow in a job)",
    operation_id="createSubscription",
)
async def subscribe(
    data: JSONBody[SubscribeIn],
    tenant: NamedDependency[TenantContext],
    principal: NamedDependency[Principal],
    db_session: NamedDependency[AsyncSession],
    request: Request[Any, Any, Any],
) -> SubscriptionOut:
    settings: Settings = request.app.state.settings
    plan = await db_session.get(Plan, data.plan)
    if plan is None or not plan.active:
        raise Problem(
            422, "validation-error", f"no plan {data.plan!r}",
            errors=[{"pointer": "#/plan", "detail": "not an active plan"}],
        )  # fmt: skip
    sub = await db_session.get(Subscription, tenant.tenant_id, with_for_update=True)
    before = None if sub is None else {"plan": sub.plan, "status": sub.status}
    if sub is not None and sub.status != "canceled":
        if sub.plan == plan.key:
            return await _subscription_out(db_session, sub)
        if sub.stripe_subscription is not None:
            raise Problem(
                409, "conflict",
                "the subscription is with Stripe: change plans in the customer portal",
            )  # fmt: skip
    if sub is not None and sub.plan != plan.key:
        await _same_currency(db_session, sub.plan, plan)
    if sub is None:
        sub = Subscription(tenant_id=tenant.tenant_id, plan=plan.key)
        db_session.add(sub)
    sub.plan, sub.stripe_subscription, sub.stripe_state_at = plan.key, None, None
    sub.canceled_at = None
    sub.status = "pending" if settings.stripe_api_key else "active"
    sub.updated_at = datetime.now(UTC)
    await db_session.flush()
    # Priced by parts from the next whole hour; the quotas follow at once (plan_history).
    await record_plan_change(db_session, tenant.tenant_id, plan.key, sub.updated_at)
    after = {"plan": plan.key, "status": sub.status}
    await audit.record(
        db_session, tenant.tenant_id, actor=principal, action="subscription.created",
        target=plan.key, before=before, after=after,
    )  # fmt: skip
    await record_event(db_session, tenant.tenant_id, "billing.subscription.created", after)
    if settings.stripe_api_key:
        await enqueue(db_session, "connect_subscription", str(tenant.tenant_id), tenant=None)
    return await _subscription_out(db_session, sub)


async def _same_currency(session: AsyncSession, current: str, plan: Plan) -> None:
    """A period's parts are priced on one invoice, in one currency."""
    old = await session.get_one(Plan, current)
    if old.currency != plan.currency:
        raise Problem(
            409, "conflict",
            f"the {plan.name} plan is billed in {plan.currency.upper()}, the current plan in"
            f" {old.currency.upper()}: a period's invoice has one currency, so plans cannot"
            " change currency",
        )  # fmt: skip


def _line_out(line: Line | dict[str, Any]) -> LineOut:
    raw = line.as_json() if isinstance(line, Line) else line
    return msgspec.convert(raw, LineOut, strict=False)


@get(
    "/v1/tenants/{slug:str}/billing/preview",
    guards=[TENANT_BILLING],
    tags=["billing"],
    summary="The current period's invoice as it stands, priced as the final one will be",
    operation_id="previewInvoice",
)
async def invoice_preview(
    tenant: NamedDependency[TenantContext], db_session: NamedDependency[AsyncSession]
) -> PreviewOut:
    draft = await accounts.preview(db_session, tenant.tenant_id, datetime.now(UTC))
    return PreviewOut(
        period_start=draft.period_start,
        period_end=draft.period_end,
        plan=draft.plan.key,
        currency=draft.plan.currency,
        lines=[_line_out(line) for line in draft.lines],
        total=draft.total,
    )


def invoice_out(invoice: Invoice) -> InvoiceOut:
    return InvoiceOut(
        id=str(invoice.id),
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        plan=invoice.plan,
        currency=invoice.currency,
        status=invoice.status,
        total=invoice.total,
        lines=[_line_out(line) for line in invoice.lines],
        finalized_at=invoice.finalized_at,
        stripe_invoice=invoice.stripe_invoice,
        amount_due=invoice.amount_due,
        amount_paid=invoice.amount_paid,
        hosted_invoice_url=invoice.hosted_invoice_url,
    )


@get(
    "/v1/tenants/{slug:str}/billing/invoices",
    guards=[TENANT_BILLING],
    tags=["billing"],
    summary="The firm's invoices, newest period first",
    operation_id="listInvoices",
)
async def list_invoices(
    tenant: NamedDependency[TenantContext],
    db_session: NamedDependency[AsyncSession],
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> InvoiceList:
    rows, next_cursor = await service.list_invoices(db_session, tenant.tenant_id, limit, cursor)
    return InvoiceList([invoice_out(i) for i in rows], next_cursor)


@get(
    "/v1/tenants/{slug:str}/billing/invoices/{invoice_id:uuid}",
    guards=[TENANT_BILLING],
    tags=["billing"],
    summary="One invoice with its lines",
    operation_id="getInvoice",
)
async def show_invoice(
    invoice_id: FromPath[uuid.UUID],
    tenant: NamedDependency[TenantContext],
    db_session: NamedDependency[AsyncSession],
) -> InvoiceOut:
    invoice = await db_session.get(Invoice, invoice_id)
    if invoice is None or invoice.tenant_id != tenant.tenant_id:
        raise Problem(404, "not-found", f"no invoice {invoice_id}")
    return invoice_out(invoice)


@post(
    "/v1/tenants/{slug:str}/billing/portal",
    guards=[TENANT_BILLING],
    tags=["billing"],
    status_code=201,
    summary="A Stripe customer-portal session: payment methods, invoices, cancellation",
    operation_id="createPortalSession",
)
async def portal_session(
    tenant: NamedDependency[TenantContext],
    db_session: NamedDependency[AsyncSession],
    request: Request[Any, Any, Any],
    data: JSONBody[PortalIn | None] = None,
) -> PortalOut:
    settings: Settings = request.app.state.settings
    if not settings.stripe_api_key:
        raise Problem(503, "service-unavailable", "Stripe is not configured on this bpo")
    sub = await accounts.subscription_of(db_session, tenant.tenant_id)
    if sub is None or sub.stripe_customer is None:
        raise Problem(409, "conflict", "the tenant has no Stripe customer yet: subscribe first")
    back = (data.return_url if data else None) or settings.public_url
    try:
        url = await StripeGateway(settings).portal_url(sub.stripe_customer, back)
    except StripeUnavailable as exc:
        raise Problem(503, "service-unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    except StripeRefused as exc:
        raise Problem(502, "upstream-refused", str(exc)) from exc
    return PortalOut(url)


@post(
    "/v1/billing/stripe/webhook",
    tags=["billing"],
    status_code=200,
    opt={PUBLIC: True},
    summary="Stripe's events (signed; applied in a job, each event id once)",
    include_in_schema=False,
)
async def stripe_webhook(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
) -> WebhookAck:
    settings: Settings = request.app.state.settings
    if not settings.stripe_webhook_secret:
        raise Problem(503, "service-unavailable", "Stripe webhooks are not configured on this bpo")
    payload = await request.body()
    signature = request.headers.get("stripe-signature")
    if not signature:
        raise Problem(400, "malformed-request", "the Stripe-Signature header is missing")
    try:
        verified_event(payload, signature, settings.stripe_webhook_secret)
    except BadSignature as exc:
        raise Problem(400, "bad-signature", f"the signature does not verify: {exc}") from exc
    except ValueError as exc:
        raise Problem(400, "malformed-request", "the body is not a Stripe event") from exc
    body = json.loads(payload)  # the verified bytes, as Stripe sent them
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("id"), str)
        or not isinstance(body.get("created"), int)
    ):
        raise Problem(400, "malformed-request", "the event has no id or created time")
    new = await stripe_events.store(db_session, body)
    if new:
        await enqueue(db_session, "apply_stripe_event", body["id"], tenant=None)
    return WebhookAck(received=True, duplicate=not new)


route_handlers: list[ControllerRouterHandler] = [
    record_batch,
    current_usage,
    daily_usage,
    list_plans,
    show_subscription,
    subscribe,
    invoice_preview,
    list_invoices,
    show_invoice,
    portal_session,
    stripe_webhook,
]
