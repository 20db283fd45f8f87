"""Every call bpo makes to Stripe, through the official SDK, in one place.

Each creating call carries an Idempotency-Key derived from what it creates, so a job that
runs again after a crash asks Stripe for the same object and gets it back instead of a
second one. The SDK retries connection failures and 5xx answers itself (with Stripe's
backoff); a 429 or a 5xx that outlasts those retries surfaces as `StripeUnavailable`, which
the calling job leaves to its own retry schedule. `BPO_STRIPE_API_BASE` points the SDK at
a stand-in (tests, development); nothing else in bpo knows Stripe's address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bpo.billing.service import plain
from bpo.settings import Settings

if TYPE_CHECKING:
    import stripe

WEBHOOK_TOLERANCE_S = 300
# Stripe meters sum, count or keep the last value; bpo's `max` meters report their
# period-to-date maximum, which Stripe's `last` then keeps.
STRIPE_FORMULA = {"sum": "sum", "count": "sum", "max": "last", "last": "last"}


class StripeNotConfigured(RuntimeError):
    """BPO_STRIPE_API_KEY is not set: bpo counts and prices usage but sends nothing."""


class StripeUnavailable(RuntimeError):
    """Stripe answered 429 or 5xx, or did not answer: try again later."""


class StripeRefused(RuntimeError):
    """Stripe refused the request (4xx): trying again would not help."""


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: int | None  # None: and beyond
    unit_amount: Decimal  # minor units per unit


def sdk() -> ModuleType:
    """The Stripe SDK, imported on first use: it is ~30 MB of modules, which an API process
    that never calls Stripe (most requests, and every process without a key) need not hold."""
    import stripe

    return stripe


class BadSignature(ValueError):
    """A Stripe webhook whose signature or timestamp does not check out."""


def _fail(exc: stripe.StripeError) -> RuntimeError:
    status = exc.http_status or 0
    if isinstance(exc, sdk().APIConnectionError) or status == 429 or status >= 500:
        return StripeUnavailable(f"Stripe unavailable ({status or 'no answer'}): {exc}")
    return StripeRefused(f"Stripe refused ({status}): {exc.user_message or exc}")


@dataclass(frozen=True, slots=True)
class MeterEvent:
    event_name: str
    identifier: str  # Stripe drops a repeat (within 24 h at least)
    customer: str
    value: Decimal
    at: datetime


STREAM_BATCH = 100  # meter events per meter event stream request, at most
SESSION_MARGIN = timedelta(seconds=60)  # renew a stream session this long before it expires


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        if not settings.stripe_api_key:
            raise StripeNotConfigured("BPO_STRIPE_API_KEY is not set")
        base = settings.stripe_api_base
        # A stand-in answers for Stripe's API and its meter events host alike.
        addresses = {"api": base.rstrip("/"), "meter_events": base.rstrip("/")} if base else None
        self._sdk = sdk()
        self._client = self._sdk.StripeClient(
            settings.stripe_api_key,
            base_addresses=addresses,
            http_client=self._sdk.HTTPXClient(timeout=20),
            max_network_retries=2,
        )
        self._session: tuple[str, datetime] | None = None  # stream token, expires at
        self._session_lock = asyncio.Lock()  # concurrent sends share one session

    async def _call(self, method: Any, *args: Any, key: str | None = None) -> Any:
        options = {"idempotency_key": key} if key else None
        try:
            return await method(*args, options=options)
        except self._sdk.StripeError as exc:
            raise _fail(exc) from exc

    async def create_meter(self, event_name: str, name: str, aggregation: str) -> str:
        meter = await self._call(
            self._client.v1.billing.meters.create_async,
            {
                "display_name": name,
                "event_name": event_name,
                "default_aggregation": {"formula": STRIPE_FORMULA[aggregation]},
                "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
                "value_settings": {"event_payload_key": "value"},
            },
            key=f"bpo-meter-{event_name}",
        )
        return str(meter.id)

    async def create_metered_price(
        self, plan: str, meter: str, meter_id: str, currency: str, tiers: Sequence[Tier]
    ) -> str:
        """A graduated, metered monthly price: `recurring.usage_type=metered` on the meter."""
        price = await self._call(
            self._client.v1.prices.create_async,
            {
                "currency": currency,
                "product_data": {"name": f"bpo {plan}: {meter}"},
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
                "billing_scheme": "tiered",
                "tiers_mode": "graduated",
                "tiers": [
                    {
                        "up_to": "inf" if t.up_to is None else t.up_to,
                        "unit_amount_decimal": str(t.unit_amount),
                    }
                    for t in tiers
                ],
                "metadata": {"bpo_plan": plan, "bpo_meter": meter},
            },
            key=f"bpo-price-{plan}-{meter}",
        )
        return str(price.id)

    async def create_base_price(self, plan: str, name: str, currency: str, amount: int) -> str:
        price = await self._call(
            self._client.v1.prices.create_async,
            {
                "currency": currency,
                "unit_amount": amount,
                "product_data": {"name": f"bpo {name}: base fee"},
                "recurring": {"interval": "month", "usage_type": "licensed"},
                "metadata": {"bpo_plan": plan},
            },
            key=f"bpo-price-{plan}-base",
        )
        return str(price.id)

    async def create_customer(self, tenant_id: str, slug: str, name: str) -> str:
        customer = await self._call(
            self._client.v1.customers.create_async,
            {"name": name, "metadata": {"bpo_tenant": tenant_id, "bpo_slug": slug}},
            key=f"bpo-customer-{tenant_id}",
        )
        return str(customer.id)

    async def create_subscription(
        self,
        customer: str,
        base_price: str,
        metered_prices: Sequence[str],
        anchor: datetime,
        key: str,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        """Billed monthly from `anchor` (the next calendar month), like bpo's periods."""
        items: list[dict[str, Any]] = [{"price": base_price, "quantity": 1}]
        items += [{"price": price} for price in metered_prices]
        subscription = await self._call(
            self._client.v1.subscriptions.create_async,
            {
                "customer": customer,
                "items": items,
                "billing_cycle_anchor": int(anchor.timestamp()),
                "proration_behavior": "none",
                "metadata": metadata,
            },
            key=key,
        )
        return {"id": str(subscription.id), "status": str(subscription.status)}

    async def send_meter_events(self, events: Sequence[MeterEvent]) -> None:
        """Send up to 100 meter events in one request on Stripe's meter event stream (v2).
        Stripe answers before it validates them: one it refuses later (an unknown customer,
        a repeated identifier) is reported in an event of its own, not here."""
        body: Any = {"events": [_stream_event(e) for e in events]}
        for renew in (False, True):
            token = await self._stream_token(renew)
            try:
                await self._client.v2.billing.meter_event_stream.create_async(
                    body, options={"api_key": token}
                )
                return
            except self._sdk.TemporarySessionExpiredError:
                continue  # expired early (or the clock is off): a new session, once
            except self._sdk.StripeError as exc:
                raise _fail(exc) from exc
        raise StripeUnavailable("Stripe refused two meter event sessions in a row")

    async def _stream_token(self, renew: bool) -> str:
        """The meter event session's token (valid 15 minutes), made or renewed as needed."""
        refused = self._session if renew else None
        async with self._session_lock:
            session = self._session
            old = session is None or session[1] - SESSION_MARGIN <= datetime.now(UTC)
            if session is None or old or session is refused:  # (else renewed meanwhile)
                made = await self._call(self._client.v2.billing.meter_event_session.create_async)
                expires = datetime.fromisoformat(str(made.expires_at))
                session = self._session = (str(made.authentication_token), expires)
            return session[0]

    async def metered_total(
        self, meter_id: str, customer: str, start: datetime, end: datetime
    ) -> Decimal:
        """Stripe's own total for a customer on a meter over [start, end)."""
        page = await self._call(
            self._client.v1.billing.meters.event_summaries.list_async,
            meter_id,
            {
                "customer": customer,
                "start_time": int(start.timestamp()),
                "end_time": int(end.timestamp()),
                "limit": 100,
            },
        )
        total = Decimal(0)
        async for summary in page.auto_paging_iter():
            total += Decimal(str(summary.aggregated_value))
        return total

    async def add_invoice_item(
        self, customer: str, amount: int, currency: str, description: str, key: str
    ) -> str:
        """A one-off line (an adjustment for late usage) on the customer's next invoice."""
        item = await self._call(
            self._client.v1.invoice_items.create_async,
            {
                "customer": customer,
                "amount": amount,
                "currency": currency,
                "description": description,
            },
            key=key,
        )
        return str(item.id)

    async def portal_url(self, customer: str, return_url: str) -> str:
        session = await self._call(
            self._client.v1.billing_portal.sessions.create_async,
            {"customer": customer, "return_url": return_url},
        )
        return str(session.url)


def _stream_event(event: MeterEvent) -> dict[str, Any]:
    return {
        "event_name": event.event_name,
        "identifier": event.identifier,
        "timestamp": event.at.astimezone(UTC).replace(microsecond=0).isoformat(),
        "payload": {"stripe_customer_id": event.customer, "value": plain(event.value)},
    }


def verified_event(payload: bytes, signature: str, secret: str) -> stripe.Event:
    """The event, if its signature and timestamp (at most 300 s old) check out, with the
    SDK's own check over the raw body; raises `BadSignature` or `ValueError` (a body that is
    not an event) otherwise."""
    module = sdk()
    try:
        event: stripe.Event = module.Webhook.construct_event(
            payload, signature, secret, tolerance=WEBHOOK_TOLERANCE_S
        )
    except module.SignatureVerificationError as exc:
        raise BadSignature(str(exc)) from exc
    return event
