"""The provider's service catalog and staff profiles: the terms every request starts from.

A service's request form is a JSON Schema (2020-12) checked when it is saved, so a client's
payload is always judged against a schema that compiles. SLA goals are given per priority
band in business hours and kept as business minutes on each task.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

import msgspec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.identity import accounts
from bpo.work.models import Service, StaffProfile
from bpo.work.schemas import ServiceIn, ServiceOut, ServiceUpdate, StaffProfileIn

BANDS = (("urgent", 75), ("high", 50), ("normal", 25), ("low", 0))  # lowest priority of each
FORM_LIMIT = 64_000  # bytes of a form's JSON


def band_of(priority: int) -> str:
    return next(name for name, lowest in BANDS if priority >= lowest)


def goal_minutes(service: Service, priority: int, goal: str) -> int:
    """A goal of `service` for `priority`, in whole business minutes (rounded up)."""
    hours = Decimal(str(service.sla[band_of(priority)][f"{goal}_hours"]))
    return int((hours * 60).to_integral_value(ROUND_CEILING))


def check_form(form: dict[str, Any]) -> dict[str, Any]:
    if len(msgspec.json.encode(form)) > FORM_LIMIT:
        raise _invalid("form", f"the form is larger than {FORM_LIMIT} bytes")
    try:
        Draft202012Validator.check_schema(form)
    except SchemaError as exc:
        raise _invalid("form", f"not a JSON Schema (2020-12): {exc.message}") from None
    return form


def check_sla(sla: dict[str, Any]) -> dict[str, Any]:
    missing = [name for name, _ in BANDS if name not in sla]
    if missing:
        raise _invalid("sla", f"goals are needed for every band; missing {', '.join(missing)}")
    out = msgspec.to_builtins(sla)
    for name, goal in out.items():
        if Decimal(str(goal["resolution_hours"])) < Decimal(str(goal["response_hours"])):
            raise _invalid(f"sla/{name}", "resolution_hours must not be less than response_hours")
    return dict(out)


def _invalid(pointer: str, detail: str) -> Problem:
    return Problem(
        422,
        "validation-error",
        f"{pointer}: {detail}",
        errors=[{"pointer": f"#/{pointer}", "detail": detail}],
    )


def service_out(service: Service) -> ServiceOut:
    return ServiceOut(
        key=service.key,
        name=service.name,
        function=service.function,
        description=service.description,
        form=service.form,
        checklist=list(service.checklist),
        steps=list(service.steps),
        skills=list(service.skills),
        sla=service.sla,
        warn_fraction=service.warn_fraction,
        review_required=service.review_required,
        bill_per_task=service.bill_per_task,
        bill_per_minute=service.bill_per_minute,
        active=service.active,
        version=service.version,
        updated_at=service.updated_at,
    )


async def get_service(session: AsyncSession, key: str, *, lock: bool = False) -> Service:
    query = select(Service).where(Service.key == key)
    service = await session.scalar(query.with_for_update() if lock else query)
    if service is None:
        raise Problem(404, "not-found", f"no service {key!r} in the catalog")
    return service


async def list_services(session: AsyncSession, include_inactive: bool) -> list[Service]:
    query = select(Service).order_by(Service.function, Service.key)
    if not include_inactive:
        query = query.where(Service.active)
    return list(await session.scalars(query))


async def create_service(session: AsyncSession, data: ServiceIn) -> Service:
    if await session.scalar(select(Service.id).where(Service.key == data.key)) is not None:
        raise Problem(409, "conflict", f"the catalog already has a service {data.key!r}")
    service = Service(
        key=data.key,
        name=data.name,
        function=data.function,
        description=data.description,
        form=check_form(data.form),
        checklist=list(data.checklist),
        steps=list(data.steps),
        skills=sorted(set(data.skills)),
        sla=check_sla({str(k): v for k, v in data.sla.items()}),
        warn_fraction=Decimal(str(data.warn_fraction)),
        review_required=data.review_required,
        bill_per_task=data.bill_per_task,
        bill_per_minute=data.bill_per_minute,
        active=data.active,
    )
    session.add(service)
    await session.flush()
    await session.refresh(service)
    return service


async def update_service(session: AsyncSession, service: Service, data: ServiceUpdate) -> Service:
    """Change a service; requests already made keep the terms they were made under."""
    changes = {f: getattr(data, f) for f in data.__struct_fields__ if getattr(data, f) is not None}
    if "form" in changes:
        check_form(changes["form"])
    if "sla" in changes:
        changes["sla"] = check_sla(dict(changes["sla"]))
    if "warn_fraction" in changes:
        changes["warn_fraction"] = Decimal(str(changes["warn_fraction"]))
    if "skills" in changes:
        changes["skills"] = sorted(set(changes["skills"]))
    for field, value in changes.items():
        setattr(service, field, list(value) if isinstance(value, list) else value)
    service.version += 1
    service.updated_at = datetime.now(UTC)
    await session.flush()
    return service


async def set_staff_profile(
    session: AsyncSession, user_id: uuid.UUID, data: StaffProfileIn
) -> StaffProfile:
    if await accounts.staff_role_of(session, user_id) is None:
        raise Problem(404, "not-found", f"no staff member {user_id}")
    values = {"skills": sorted(set(data.skills)), "capacity": data.capacity}
    await session.execute(
        pg_insert(StaffProfile)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(
            index_elements=[StaffProfile.user_id], set_={**values, "updated_at": datetime.now(UTC)}
        )
    )
    profile = await session.get(StaffProfile, user_id, populate_existing=True)
    assert profile is not None
    return profile


async def staff_profile(session: AsyncSession, user_id: uuid.UUID) -> StaffProfile | None:
    """The member's profile; None until one is set (a generalist: any skill, capacity 10)."""
    return await session.get(StaffProfile, user_id)
