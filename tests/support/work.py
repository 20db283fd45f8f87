"""Work-queue helpers for tests: catalog services, staff with skills, requests."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext
from bpo.settings import Settings
from bpo.work.catalog import create_service
from bpo.work.models import StaffProfile
from bpo.work.schemas import Goal, ServiceIn
from tests.support.auth import bearer, make_user, user_token

Client = AsyncTestClient[Litestar]
EVERY_BAND = ("urgent", "high", "normal", "low")


def service_in(key: str = "bookkeeping", **changes: Any) -> ServiceIn:
    terms: dict[str, Any] = {
        "key": key,
        "name": key.replace("-", " ").title(),
        "function": "accounting",
        "form": {
            "type": "object",
            "required": ["period"],
            "properties": {"period": {"type": "string", "pattern": r"^\d{4}-\d{2}$"}},
            "additionalProperties": False,
        },
        "sla": {band: Goal(response_hours=4, resolution_hours=16) for band in EVERY_BAND},
        "skills": ["accounting"],
    }
    return ServiceIn(**(terms | changes))


async def add_service(db: Database, key: str = "bookkeeping", **changes: Any) -> None:
    async with db.sessionmaker.begin() as session:
        await create_service(session, service_in(key, **changes))


async def staff_member(
    db: Database,
    settings: Settings,
    assigned: list[TenantContext],
    *,
    skills: tuple[str, ...] = ("accounting",),
    role: str = "staff",
    capacity: int = 10,
) -> tuple[uuid.UUID, dict[str, str]]:
    """A staff member assigned to `assigned`, with skills; returns (user id, headers)."""
    user_id = await make_user(
        db, f"staff-{uuid.uuid4().hex[:8]}@provider.example", staff_role=role, assigned=assigned
    )
    async with db.sessionmaker.begin() as session:
        session.add(StaffProfile(user_id=user_id, skills=list(skills), capacity=capacity))
    return user_id, bearer(await user_token(db, settings, user_id, staff_role=role))


async def ask_for(
    client: Client,
    tenant: TenantContext,
    headers: dict[str, str],
    service: str = "bookkeeping",
    **body: Any,
) -> dict[str, Any]:
    made = await client.post(
        f"/v1/tenants/{tenant.slug}/work/requests",
        json={"service": service, "payload": {"period": "2026-11"}} | body,
        headers=headers,
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def task_path(tenant: TenantContext, task_id: str, action: str = "") -> str:
    path = f"/v1/tenants/{tenant.slug}/work/tasks/{task_id}"
    return f"{path}/{action}" if action else path
