"""Routing a staff member's claims: their profile, capacity and skills (the claim itself,
claim-next's and by id's, is in `claims` and `service`)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.db import Database
from bpo.core.errors import Problem
from bpo.identity.guards import Principal
from bpo.work import queue
from bpo.work.models import Task

TENANTS_TRIED = 3


async def viewer_of(db: Database, principal: Principal) -> queue.Viewer:
    assert principal.user_id is not None  # staff roles are people
    async with db.autocommit() as conn:
        return await queue.viewer(conn, principal.user_id, principal.role == "staff_admin")


async def holding_now(session: AsyncSession, viewer: queue.Viewer) -> queue.Viewer:
    """`viewer` with what they hold now, counted under their claim lock (held to the commit
    of the caller's transaction): concurrent claims of one staff member queue here, so
    none passes the capacity."""
    held = await session.scalar(_CLAIM_SLOT, {"me": viewer.user_id})
    return dataclasses.replace(viewer, held=int(held or 0))


_CLAIM_SLOT = text("SELECT platform.claim_slot(:me)")


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
