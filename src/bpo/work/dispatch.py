"""Claim-next across tenants: the index picks the tenant, the tenant's own transaction
picks and claims the task.

The platform read finds the tenants holding the most urgent tasks the staff member may take;
then, as that tenant's role, `FOR UPDATE SKIP LOCKED` on the tenant's index rows lets
concurrent claimers take different tasks without waiting on each other, and the claim
updates the task and its index row in the same transaction, so no task is claimed twice.
"""

from __future__ import annotations

from datetime import timedelta

from bpo.core.db import Database
from bpo.core.errors import Problem
from bpo.core.tenancy import issue_tenant_context, tenant_session
from bpo.identity.guards import Principal
from bpo.work import queue, service
from bpo.work.models import Task

TENANTS_TRIED = 3


async def viewer_of(db: Database, principal: Principal) -> queue.Viewer:
    assert principal.user_id is not None  # staff roles are people
    async with db.autocommit() as conn:
        return await queue.viewer(conn, principal.user_id, principal.role == "staff_admin")


def check_capacity(viewer: queue.Viewer) -> None:
    """Omni-channel style capacity: a member holds at most `capacity` tasks at once."""
    if viewer.held >= viewer.capacity:
        raise Problem(
            409,
            "at-capacity",
            f"you hold {viewer.held} tasks, your capacity; release or finish one first",
            held=viewer.held,
            capacity=viewer.capacity,
        )


def check_skills(viewer: queue.Viewer, task: Task) -> None:
    """A task is claimed only by someone whose skills cover it (as the inbox routes it)."""
    if viewer.scope != "skills" or viewer.skills is None:
        return
    missing = sorted(set(task.skills) - set(viewer.skills))
    if missing:
        raise Problem(
            403,
            "missing-skills",
            f"task {task.id} needs the skills {', '.join(missing)}, which your profile lacks",
        )


async def claim_next(
    db: Database, principal: Principal, lease: timedelta
) -> tuple[Task, str] | None:
    """Claim the most urgent task the caller may take; None when there is none."""
    viewer = await viewer_of(db, principal)
    check_capacity(viewer)
    async with db.autocommit() as conn:
        candidates = await queue.candidate_tenants(conn, viewer)
    for tenant_id, slug in candidates[:TENANTS_TRIED]:
        tenant = issue_tenant_context(tenant_id, slug)  # an assigned tenant, found above
        async with tenant_session(db.engine, tenant, "api") as session:
            task = await queue.lock_next(session, tenant_id, viewer)
            if task is None:
                continue
            await service.claim(session, tenant, principal, viewer.user_id, task, lease)
            return task, slug
    return None
