"""Plan quotas per period, enforced where usage is recorded.

A plan may set a quota per meter and period (`plan_prices.quota`): a *hard* quota refuses
(402, nothing written) an action that would pass it; a *soft* quota lets it through (the
units past the included ones are billed by the plan's tiers, as ever) and is shown
against usage. The quota is the plan in force now, against the whole period's usage.

Any metered action makes one call in its own transaction:

- `reserve_usage(...)` checks the quota and records the usage (`record_usage`'s signature);
- `hold_quota(...)` checks without recording, for usage recorded later: a work request
  holds the `tasks_completed` its tasks will bill when completed (its open tasks count
  against the quota until then), and completing them is never refused.

Both read the quota through `platform.quota_state`, which on a hard quota first takes a
transaction lock on (tenant, meter, period): concurrent actions queue there, and each reads
the usage (and what is held) once the one before it has committed, so two can never both
take the last unit. Tenant roles read no billing table; the function answers for their
own tenant only. Meters without a hard quota take no lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bpo.billing.service import LEVELS, check_usage, month_of, plain, record_usage
from bpo.core.errors import Problem
from bpo.core.tenancy import TenantContext

_STATE = text(
    "SELECT plan, quota, kind, aggregation, used, recorded"
    " FROM platform.quota_state(:tenant, :meter, :key, :start, :end)"
)


@dataclass(frozen=True, slots=True)
class Quota:
    tenant_id: uuid.UUID
    meter: str
    plan: str | None
    allowed: Decimal | None
    kind: str | None  # hard | soft | None
    aggregation: str | None
    used: Decimal  # this period's usage so far (read for hard quotas only)
    recorded: bool  # the usage key was recorded before: a repeat, never refused
    start: datetime
    end: datetime

    def check(self, adding: Decimal, held: Decimal = Decimal(0)) -> None:
        """402 when `adding` (beyond `used` and `held`) would pass a hard quota."""
        if self.kind != "hard" or self.allowed is None or adding <= 0 or self.recorded:
            return
        if self.aggregation in LEVELS:
            after = adding
        else:
            after = self.used + held + (Decimal(1) if self.aggregation == "count" else adding)
        if after > self.allowed:
            raise self.exceeded(adding, held)

    def exceeded(self, adding: Decimal, held: Decimal) -> Problem:
        used, allowed = plain(self.used), plain(self.allowed or Decimal(0))
        detail = (
            f"the {self.plan} plan allows {allowed} {self.meter} per period; {used} used"
            + (f" and {plain(held)} held by open work" if held else "")
            + f", {plain(adding)} more asked. The quota resets at {self.end.isoformat()}."
        )
        return Problem(
            402, "quota-exceeded", detail,
            limit=self.meter, meter=self.meter, plan=self.plan, allowed=allowed, used=used,
            held=plain(held), requested=plain(adding), resets_at=self.end.isoformat(),
        )  # fmt: skip


async def quota_state(
    conn: AsyncSession | AsyncConnection,
    tenant_id: uuid.UUID,
    meter: str,
    at: datetime,
    key: str | None = None,
) -> Quota:
    """The quota of `meter` in the period holding `at`, as the plan stands now; on a hard
    quota, locked for this transaction (see the module docstring)."""
    start, end = month_of(at)
    params = {"tenant": tenant_id, "meter": meter, "key": key, "start": start, "end": end}
    plan, allowed, kind, aggregation, used, recorded = (await conn.execute(_STATE, params)).one()
    return Quota(
        tenant_id, meter, plan, None if allowed is None else Decimal(allowed), kind, aggregation,
        Decimal(used or 0), bool(recorded), start, end,
    )  # fmt: skip


def _tenant_id(tenant: TenantContext | uuid.UUID) -> uuid.UUID:
    return tenant.tenant_id if isinstance(tenant, TenantContext) else tenant


# The usage insert, for a caller that folds it into a statement of its own (the ledger's
# posting writes everything in one); its parameters come from `usage_to_record`.
USAGE_SQL = (
    "INSERT INTO platform.usage_events (tenant_id, meter, key, quantity, at)"
    " VALUES (:usage_tenant, :usage_meter, :usage_key, :usage_quantity, :usage_at)"
    " ON CONFLICT DO NOTHING"
)


# The quota's state as one JSON value, for a caller that folds the read into a statement of
# its own (the ledger reads it with the books); `usage_checked` reads the value.
QUOTA_SQL = (
    "SELECT json_build_array(plan, quota::text, kind, aggregation, used::text, recorded)"
    " FROM platform.quota_state(:quota_tenant, :quota_meter, :quota_key, :quota_start,"
    " :quota_end)"
)


def quota_params(
    tenant: TenantContext | uuid.UUID, meter: str, key: str, at: datetime
) -> dict[str, Any]:
    start, end = month_of(at)
    return {"quota_tenant": _tenant_id(tenant), "quota_meter": meter, "quota_key": key,
            "quota_start": start, "quota_end": end}  # fmt: skip


def usage_checked(
    params: dict[str, Any], state: list[Any], quantity: Decimal | int, at: datetime
) -> dict[str, Any]:
    """`reserve_usage`'s check on a state read with `QUOTA_SQL` (with `params`): a 402 when
    the usage would pass a hard quota; else the parameters of `USAGE_SQL`."""
    amount = Decimal(quantity)
    check_usage(amount, at)
    plan, allowed, kind, aggregation, used, recorded = state
    quota = Quota(
        params["quota_tenant"], params["quota_meter"], plan,
        None if allowed is None else Decimal(allowed), kind, aggregation,
        Decimal(used or 0), bool(recorded), params["quota_start"], params["quota_end"],
    )  # fmt: skip
    quota.check(amount)
    return {"usage_tenant": params["quota_tenant"], "usage_meter": params["quota_meter"],
            "usage_key": params["quota_key"], "usage_quantity": amount, "usage_at": at}  # fmt: skip


async def reserve_usage(
    session: AsyncSession | AsyncConnection,
    tenant: TenantContext | uuid.UUID,
    meter: str,
    quantity: Decimal | int,
    key: str,
    at: datetime | None = None,
    *,
    correction: bool = False,
    held: bool = False,
) -> bool:
    """Check the plan's quota and record the usage, in the caller's transaction; False if
    this key was recorded before. A hard quota refuses (402) usage that would pass it,
    before anything is written. `held`: the quota was held when the work was accepted
    (`hold_quota`): take the lock, so holds stay exact, but never refuse. Taking usage
    back (a negative correction) is never refused and takes no lock."""
    when, amount = at or datetime.now(UTC), Decimal(quantity)
    check_usage(amount, when, correction=correction)
    if amount > 0:
        quota = await quota_state(session, _tenant_id(tenant), meter, when, key)
        if not held:
            quota.check(amount)
    return await record_usage(session, tenant, meter, amount, key, when, correction=correction)


async def hold_quota(
    session: AsyncSession | AsyncConnection,
    tenant: TenantContext | uuid.UUID,
    meter: str,
    quantity: Decimal | int,
    *,
    held: Callable[[], Awaitable[Decimal | int]] | None = None,
    at: datetime | None = None,
) -> Quota:
    """Check that `quantity` more of `meter` fits a hard quota, recording nothing (the usage
    is recorded later with `reserve_usage(..., held=True)`). `held` counts what earlier
    accepted work still holds; it is called under the lock, after the work held before
    has committed."""
    quota = await quota_state(session, _tenant_id(tenant), meter, at or datetime.now(UTC))
    if quota.kind == "hard":
        already = Decimal(await held()) if held is not None else Decimal(0)
        quota.check(Decimal(quantity), already)
    return quota


def remaining(allowed: Decimal | None, used: Decimal) -> Decimal | None:
    return None if allowed is None else max(allowed - used, Decimal(0))
