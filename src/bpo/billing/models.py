"""Billing tables (platform): meters, usage events and their hourly rollups.

Usage lives in `platform`, one ledger for every tenant, because it is aggregated across
tenants (the push to Stripe, the provider's reports) and written from platform and tenant
connections alike; tenant roles may insert their own tenant's events only (row-level
security, see the migration) and read none.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.models import PlatformBase

Quantity = Numeric(20, 6)  # GB-months and minutes are fractional; never a float


class Meter(PlatformBase):
    """What bpo bills by, defined by the provider (seeded by the migration)."""

    __tablename__ = "meters"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(40))
    aggregation: Mapped[str] = mapped_column(String(10))  # sum | count | max | last
    stripe_meter: Mapped[str] = mapped_column(String(100))  # the Stripe meter's event_name


class UsageEvent(PlatformBase):
    """One billable quantity. (tenant, meter, key) is unique: a retry is never counted twice."""

    __tablename__ = "usage_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID]
    meter: Mapped[str] = mapped_column(ForeignKey("meters.key"))
    key: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when the usage happened
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Cleared by the rollup job when it has added the event to its hour.
    pending: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    __table_args__ = (
        UniqueConstraint("tenant_id", "meter", "key"),
        Index("ix_usage_events_pending", "id", postgresql_where=text("pending")),
        # No RETURNING of the new id: tenant roles may insert usage but never read it.
        {"implicit_returning": False},
    )


class UsageRollup(PlatformBase):
    """Per tenant, meter and hour: enough to aggregate any period by any aggregation."""

    __tablename__ = "usage_rollups"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    meter: Mapped[str] = mapped_column(ForeignKey("meters.key"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    total: Mapped[Decimal] = mapped_column(Quantity)
    events: Mapped[int] = mapped_column(BigInteger)
    maximum: Mapped[Decimal] = mapped_column(Quantity)
    last_value: Mapped[Decimal] = mapped_column(Quantity)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
