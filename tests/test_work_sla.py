"""SLA clocks and their watchers.

Vectors: the due and warning instants of a task's goals on real calendars (weekends, public
holidays, a pause over Christmas, two time zones, a daylight-saving change), written out
by hand. Then the jobs against the database: each warning and breach raised exactly once,
the escalation flag in the staff admin inbox, and an expired lease returned to the queue.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text

from bpo.audit.models import AuditEvent
from bpo.core.db import Database
from bpo.core.tenancy import tenant_session
from bpo.jobs.models import OutboxMessage
from bpo.settings import Settings
from bpo.work import queue, sla
from bpo.work.calendar import BusinessCalendar
from bpo.work.jobs import check_due_slas, return_all_expired
from bpo.work.models import QueueEntry, Task
from tests.conftest import build_app
from tests.support.auth import admin_of, bearer, staff_admin_token
from tests.support.tenants import make_tenant
from tests.support.work import add_service, ask_for, staff_member, task_path

LONDON = BusinessCalendar(time_zone="Europe/London", country="GB", subdivision="ENG")
NEW_YORK = BusinessCalendar(time_zone="America/New_York", country="US")
WARN = Decimal("0.80")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def task(response_hours: int = 4, resolution_hours: int = 16) -> Task:
    return Task(response_goal_min=response_hours * 60, resolution_goal_min=resolution_hours * 60)


def test_clocks_skip_the_weekend_and_warn_at_the_fraction() -> None:
    t = task()
    sla.start_clocks(t, LONDON, utc(2026, 12, 18, 15), WARN)  # Friday 15:00 GMT
    assert t.response_due_at == utc(2026, 12, 21, 11)  # Fri 2 h + Mon 2 h
    assert t.response_warn_at == utc(2026, 12, 21, 10, 12)  # 3 h 12 min
    assert t.resolution_due_at == utc(2026, 12, 22, 15)  # Fri 2 h, Mon 8 h, Tue 6 h
    assert t.resolution_warn_at == utc(2026, 12, 22, 11, 48)  # 12 h 48 min


def test_a_pause_over_christmas_gives_back_exactly_the_time_left() -> None:
    t = task()
    sla.start_clocks(t, LONDON, utc(2026, 12, 18, 15), WARN)
    sla.meet(t, "response", utc(2026, 12, 21, 9, 30))
    assert t.response_met is True
    sla.pause(t, utc(2026, 12, 21, 10))  # 13 h of resolution left, 9 h 48 min to the warning
    assert sla.queue_due(t, "resolution") is None and sla.next_check(t) is None
    # Resumed Tue 29 Dec 14:00; Fri 25 (Christmas) and Mon 28 (Boxing Day, substitute) closed.
    sla.resume(t, LONDON, utc(2026, 12, 29, 14))
    assert t.resolution_due_at == utc(2026, 12, 31, 11)  # Tue 3 h, Wed 8 h, Thu 2 h
    assert t.resolution_warn_at == utc(2026, 12, 30, 15, 48)  # Tue 3 h, Wed 6 h 48 min
    assert sla.next_check(t) == utc(2026, 12, 30, 15, 48)
    sla.meet(t, "resolution", utc(2026, 12, 31, 11, 0, 1))
    assert t.resolution_met is False  # one second late


def test_the_same_request_in_another_time_zone_and_across_a_clock_change() -> None:
    ny = task()
    sla.start_clocks(ny, NEW_YORK, utc(2026, 12, 18, 20), WARN)  # Friday 15:00 EST
    assert ny.response_due_at == utc(2026, 12, 21, 16)  # Monday 11:00 EST
    spring = task()
    sla.start_clocks(spring, LONDON, utc(2026, 3, 27, 15), WARN)  # Friday 15:00 GMT
    assert spring.response_due_at == utc(2026, 3, 30, 10)  # Monday 11:00 BST
    thanksgiving = task(resolution_hours=8)
    sla.start_clocks(thanksgiving, NEW_YORK, utc(2026, 11, 25, 19), WARN)  # Wed 14:00 EST
    assert thanksgiving.resolution_due_at == utc(2026, 11, 27, 19)  # Wed 3 h, Fri 5 h (14:00)


def test_a_goal_that_passed_before_the_pause_stays_where_it_fell() -> None:
    t = task(response_hours=1)
    sla.start_clocks(t, LONDON, utc(2026, 12, 1, 9), WARN)  # Tuesday 09:00
    assert sla.crossings(t, utc(2026, 12, 1, 10, 30))[0].kind == "breach"
    sla.meet(t, "response", utc(2026, 12, 1, 10, 30))
    assert t.response_met is False
    due = t.resolution_due_at
    sla.pause(t, utc(2026, 12, 1, 11))
    assert sla.crossings(t, utc(2026, 12, 9)) == []  # nothing runs while paused
    sla.resume(t, LONDON, utc(2026, 12, 2, 11))  # one business day later
    assert due is not None and t.resolution_due_at == due + timedelta(days=1)


def test_a_closed_day_added_now_moves_the_running_clocks() -> None:
    t = task()
    sla.start_clocks(t, LONDON, utc(2026, 12, 18, 15), WARN)  # Friday 15:00 GMT
    assert t.resolution_due_at == utc(2026, 12, 22, 15)  # Fri 2 h, Mon 8 h, Tue 6 h
    closed_tuesday = dataclasses.replace(LONDON, closed_days=frozenset({date(2026, 12, 22)}))
    # Monday 09:00: 14 h of resolution left (Mon 8, Tue 6); laid out again, Tue is skipped.
    assert sla.replan(t, LONDON, closed_tuesday, utc(2026, 12, 21, 9)) is True
    assert t.resolution_due_at == utc(2026, 12, 23, 15)  # Mon 8 h, Wed 6 h
    assert t.resolution_warn_at == utc(2026, 12, 23, 11, 48)  # Mon 8 h, Wed 2 h 48 min
    assert t.response_due_at == utc(2026, 12, 21, 11)  # 2 h left on Monday: unchanged
    # The same calendar again moves nothing.
    assert sla.replan(t, closed_tuesday, closed_tuesday, utc(2026, 12, 21, 9)) is False


def test_a_paused_clock_keeps_exactly_its_time_left_across_a_calendar_change() -> None:
    t = task()
    sla.start_clocks(t, LONDON, utc(2026, 12, 18, 15), WARN)
    sla.pause(t, utc(2026, 12, 21, 10))  # 13 h of resolution left
    closed_tuesday = dataclasses.replace(LONDON, closed_days=frozenset({date(2026, 12, 22)}))
    assert sla.replan(t, LONDON, closed_tuesday, utc(2026, 12, 21, 12)) is True
    # Replanned from the pause: 13 h from Mon 10:00 on the new calendar is Wed 15:00.
    assert t.resolution_due_at == utc(2026, 12, 23, 15)
    sla.resume(t, closed_tuesday, utc(2026, 12, 21, 14))  # 4 h paused, 13 h still left
    assert t.resolution_due_at == utc(2026, 12, 24, 11)  # Mon 3 h, Wed 8 h, Thu 2 h


# --- the jobs, against the database ---------------------------------------------------------


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=build_app(dataclasses.replace(settings))) as client:
        yield client


async def _make_due(db: Database, firm: object, task_id: str, **instants: datetime) -> None:
    """Move a task's clock instants (as if time had passed), and its index row with them."""
    async with tenant_session(db.engine, firm) as session:  # type: ignore[arg-type]
        found = await session.get(Task, uuid.UUID(task_id), with_for_update=True)
        assert found is not None
        for name, value in instants.items():
            setattr(found, name, value)
        await session.flush()
        await queue.project(session, firm.tenant_id, found)  # type: ignore[attr-defined]


async def _events(db: Database, tenant_id: uuid.UUID, event_type: str) -> int:
    async with db.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count()).where(
                    OutboxMessage.tenant_id == tenant_id,
                    OutboxMessage.actor == "fan_out_event",
                    OutboxMessage.args[1].astext == event_type,
                )
            )
            or 0
        )


async def test_warnings_and_breaches_are_raised_once_and_escalated(
    api: AsyncTestClient[Litestar], db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "deadline-firm")
    await add_service(db)
    as_admin = await admin_of(db, settings, firm)
    task_id = (await ask_for(api, firm, as_admin))["tasks"][0]["id"]
    now = datetime.now(UTC)

    await _make_due(db, firm, task_id, response_warn_at=now - timedelta(minutes=1))
    assert await check_due_slas(db) == 1
    assert await check_due_slas(db) == 0  # the warning is not raised again
    assert await _events(db, firm.tenant_id, "work.task.sla_warning") == 1

    await _make_due(db, firm, task_id, response_due_at=now - timedelta(seconds=1))
    for _ in range(3):
        await check_due_slas(db)
    assert await _events(db, firm.tenant_id, "work.task.sla_breached") == 1
    async with db.sessionmaker() as session:
        audited = await session.scalar(
            select(func.count()).where(
                AuditEvent.chain_id == firm.tenant_id, AuditEvent.action == "work.task.sla_breached"
            )
        )
        entry = await session.get(QueueEntry, uuid.UUID(task_id))
    assert audited == 1 and entry is not None and entry.escalated
    assert entry.next_check_at is not None and entry.next_check_at > now  # resolution's warning

    as_provider = bearer(await staff_admin_token(db, settings))
    flagged = await api.get("/v1/staff/inbox?escalated=true", headers=as_provider)
    assert [(i["task_id"], i["escalated"]) for i in flagged.json()["items"]] == [(task_id, True)]
    _, as_staff = await staff_member(db, settings, [firm])
    shown = await api.get(task_path(firm, task_id), headers=as_staff)
    assert (
        shown.json()["response_breached"] is True and shown.json()["resolution_breached"] is False
    )
    report = await api.get(f"/v1/tenants/{firm.slug}/work/reports", headers=as_admin)
    assert report.json()["response_breaches"] == 1


async def test_a_calendar_change_replans_running_clocks_audited_and_indexed(
    api: AsyncTestClient[Litestar], db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "replan-firm")
    await add_service(db)
    as_admin = await admin_of(db, settings, firm)
    task_id = (await ask_for(api, firm, as_admin))["tasks"][0]["id"]
    async with tenant_session(db.engine, firm) as session:
        before = await session.get_one(Task, uuid.UUID(task_id))
        due_before = before.resolution_due_at
    assert due_before is not None
    # Close every day between now and the due date: the clock must move past them.
    today = datetime.now(UTC).date()
    closed = [(today + timedelta(days=n)).isoformat() for n in range(1, 8)]
    saved = await api.put(
        f"/v1/tenants/{firm.slug}/work/calendar", json={"closed_days": closed}, headers=as_admin
    )
    assert saved.status_code == 200, saved.text
    assert saved.headers["x-clocks-replanned"] == "1"
    async with tenant_session(db.engine, firm) as session:
        after = await session.get_one(Task, uuid.UUID(task_id))
        due_after = after.resolution_due_at
    assert due_after is not None and due_after > due_before
    assert due_after.date() > today + timedelta(days=7)  # past the closed week
    async with db.sessionmaker() as session:
        entry = await session.get_one(QueueEntry, uuid.UUID(task_id))
        replanned = (
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.chain_id == firm.tenant_id,
                    AuditEvent.action == "work.task.replanned",
                )
            )
        ).all()
    assert entry.resolution_due_at == due_after  # the inbox sorts by the new due time
    assert [e.target for e in replanned] == [f"task:{task_id}"]  # the move is audited
    assert await _events(db, firm.tenant_id, "work.sla.replanned") == 1  # and announced
    # The same calendar again replans nothing.
    same = await api.put(
        f"/v1/tenants/{firm.slug}/work/calendar", json={"closed_days": closed}, headers=as_admin
    )
    assert same.headers["x-clocks-replanned"] == "0"


async def test_an_expired_lease_returns_the_task_to_the_queue(
    api: AsyncTestClient[Litestar], db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "lease-firm")
    await add_service(db)
    as_admin = await admin_of(db, settings, firm)
    task_id = (await ask_for(api, firm, as_admin))["tasks"][0]["id"]
    holder, as_holder = await staff_member(db, settings, [firm])
    _, as_other = await staff_member(db, settings, [firm])
    claimed = await api.post(task_path(firm, task_id, "claim"), json={}, headers=as_holder)
    assert claimed.status_code == 200
    beat = await api.post(
        task_path(firm, task_id, "heartbeat"), json={"lease_minutes": 60}, headers=as_holder
    )
    assert beat.json()["lease_until"] > claimed.json()["lease_until"]
    assert (await api.get("/v1/staff/inbox", headers=as_other)).json()["items"] == []

    await _make_due(db, firm, task_id, lease_until=datetime.now(UTC) - timedelta(seconds=1))
    listed = (await api.get("/v1/staff/inbox", headers=as_other)).json()["items"]
    assert [i["task_id"] for i in listed] == [task_id]  # claimable at once, before the job
    assert await return_all_expired(db) == 1
    assert await return_all_expired(db) == 0
    async with tenant_session(db.engine, firm) as session:
        back = await session.get(Task, uuid.UUID(task_id))
        assert back is not None and (back.status, back.claimed_by) == ("open", None)
        assert back.responded_at is not None  # the first claim met the response goal
    assert await _events(db, firm.tenant_id, "work.task.released") == 1
    late = await api.post(task_path(firm, task_id, "complete"), json={"result": 1},
                          headers=as_holder)  # fmt: skip
    assert late.status_code == 409
    async with db.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM platform.work_queue"
                                      " WHERE claimed_by IS NOT NULL")) == 0  # fmt: skip
    assert holder is not None


async def test_a_suspended_firms_tasks_leave_its_staffs_inbox(
    api: AsyncTestClient[Litestar], db: Database, settings: Settings
) -> None:
    firm = await make_tenant(db, "paused-firm")
    await add_service(db)
    as_admin = await admin_of(db, settings, firm)
    task_id = (await ask_for(api, firm, as_admin))["tasks"][0]["id"]
    _, as_staff = await staff_member(db, settings, [firm])
    assert [i["task_id"] for i in (await api.get("/v1/staff/inbox", headers=as_staff)).json()[
        "items"]] == [task_id]  # fmt: skip
    as_provider = bearer(await staff_admin_token(db, settings))
    suspended = await api.post(f"/v1/tenants/{firm.slug}/suspend", headers=as_provider)
    assert suspended.status_code == 200, suspended.text
    assert (await api.get("/v1/staff/inbox", headers=as_staff)).json()["items"] == []
    assert (await api.post("/v1/staff/inbox/claim", json={}, headers=as_staff)).status_code == 204
