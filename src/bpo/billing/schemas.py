"""Request and response types of the usage APIs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
MeterKey = Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
UsageKey = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class UsageIn(msgspec.Struct, forbid_unknown_fields=True):
    tenant: Slug
    meter: MeterKey
    quantity: Decimal
    key: UsageKey  # unique per tenant and meter: a repeated key is a duplicate, not new usage
    at: datetime


class UsageBatch(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[UsageIn], msgspec.Meta(min_length=1, max_length=1000)]


class UsageBatchResult(msgspec.Struct):
    received: int
    recorded: int  # new events
    duplicates: int  # keys recorded before (or twice in this batch)


class MeterUsageOut(msgspec.Struct):
    meter: str
    name: str
    unit: str
    aggregation: str
    quantity: Decimal
    events: int


class UsageOut(msgspec.Struct):
    period_start: datetime
    period_end: datetime
    meters: list[MeterUsageOut]
