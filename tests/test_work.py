"""Work queues over the API: the full story with the demo data, and what is refused.

A client firm asks for a month-end close; staff claim it, ask a question, the client answers,
staff complete it, another staff member approves; the client sees the result, a webhook
reaches the firm's receiver, and usage shows one task and the minutes.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from bpo.billing.models import Invoice, UsageEvent
from bpo.billing.service import roll_up
from bpo.core.db import Database
from bpo.core.tenancy import issue_tenant_context, tenant_session
from bpo.demo import seed_demo
from bpo.settings import Settings
from bpo.work.models import QueueEntry, Task
from tests.conftest import build_app
from tests.support.auth import admin_of, bearer, make_user, staff_admin_token, user_token
from tests.support.isolation import assert_cross_tenant_404
from tests.support.jobs import running_worker, wait_for
from tests.support.receiver import webhook_receiver
from tests.support.tenants import make_tenant
from tests.support.work import add_service, ask_for, staff_member, task_path

Client = AsyncTestClient[Litestar]


@pytest.fixture
def work_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, webhook_allowlist=("127.0.0.1",))


@pytest.fixture
async def api(work_settings: Settings, db: Database) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=build_app(work_settings)) as client:
        yield client


async def _client_token(api: Client, client_id: str, secret: str) -> dict[str, str]:
    """A token for the demo's API client, through the token endpoint (client credentials)."""
    reply = await api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "work:read work:write"},
        auth=httpx.BasicAuth(client_id, secret),
    )
    assert reply.status_code == 200, reply.text
    return bearer(reply.json()["access_token"])


async def test_month_end_close_from_request_to_result_webhook_and_usage(
    api: Client, db: Database, work_settings: Settings
) -> None:
    async with db.sessionmaker.begin() as session:
        seeded = await seed_demo(session, work_settings.secret_key or "")
    demo = issue_tenant_context(seeded.tenant.id, seeded.tenant.slug)
    creds = seeded.credentials.client
    as_client = await _client_token(api, creds.client_id, creds.client_secret)
    as_admin = await admin_of(db, work_settings, demo)
    worker_id, as_worker = await staff_member(db, work_settings, [demo])
    reviewer_id, as_reviewer = await staff_member(db, work_settings, [demo])
    _, as_outsider = await staff_member(db, work_settings, [])  # assigned to no tenant

    with webhook_receiver(200) as receiver:
        hook = await api.post(
            f"/v1/tenants/{demo.slug}/webhooks/endpoints",
            json={"url": receiver.url, "event_types": ["work.request.completed"]},
            headers=as_admin,
        )
        assert hook.status_code == 201, hook.text

        # The client asks; a retry with the same Idempotency-Key makes nothing new.
        body = {"service": "month-end-close", "payload": {"period": "2026-11"}, "priority": 80}
        keyed = as_client | {"Idempotency-Key": "close-2026-11"}
        first = await api.post(f"/v1/tenants/{demo.slug}/work/requests", json=body, headers=keyed)
        again = await api.post(f"/v1/tenants/{demo.slug}/work/requests", json=body, headers=keyed)
        assert first.status_code == 201, first.text
        assert again.json()["id"] == first.json()["id"]
        request = first.json()
        assert request["status"] == "open" and len(request["tasks"]) == 1
        task_id = request["tasks"][0]["id"]

        # Staff see it in their inbox; someone not assigned to the firm sees nothing.
        inbox = (await api.get("/v1/staff/inbox", headers=as_worker)).json()["items"]
        assert [(i["task_id"], i["tenant"]) for i in inbox] == [(task_id, demo.slug)]
        assert inbox[0]["due_at"] == inbox[0]["response_due_at"]
        assert (await api.get("/v1/staff/inbox", headers=as_outsider)).json()["items"] == []
        hidden = await api.get(task_path(demo, task_id), headers=as_outsider)
        assert hidden.status_code == 404

        claimed = await api.post(task_path(demo, task_id, "claim"), json={}, headers=as_worker)
        assert claimed.status_code == 200 and claimed.json()["status"] == "in_progress"
        taken = await api.post(task_path(demo, task_id, "claim"), json={}, headers=as_reviewer)
        assert taken.status_code == 409
        assert taken.json()["held_by"] == str(worker_id) and taken.json()["lease_until"]
        early = await api.post(
            task_path(demo, task_id, "complete"), json={"result": {}}, headers=as_reviewer
        )
        assert early.status_code == 409 and str(worker_id) in early.json()["detail"]

        # A question pauses the clock; the client sees it and answers.
        asked = await api.post(
            task_path(demo, task_id, "questions"),
            json={"body": "Which bank accounts are in scope?"},
            headers=as_worker,
        )
        assert asked.status_code == 200 and asked.json()["paused"] is True
        seen = (await api.get(f"/v1/tenants/{demo.slug}/work/requests/{request['id']}",
                              headers=as_client)).json()  # fmt: skip
        assert seen["status"] == "waiting_on_client"
        assert [c["kind"] for c in seen["comments"]] == ["question"]
        answered = await api.post(
            f"/v1/tenants/{demo.slug}/work/requests/{request['id']}/answer",
            json={"body": "Only the main operating account."},
            headers=as_client,
        )
        assert answered.status_code == 200 and answered.json()["status"] == "open"

        # The worker claims again, notes, logs time and completes; review is required.
        await api.post(task_path(demo, task_id, "claim"), json={}, headers=as_worker)
        note = await api.post(
            task_path(demo, task_id, "comments"),
            json={"body": "Accruals posted; see JE-1042."},
            headers=as_worker,
        )
        assert note.status_code == 201 and note.json()["client_visible"] is False
        logged = await api.post(
            task_path(demo, task_id, "time"), json={"minutes": 42.5}, headers=as_worker
        )
        assert logged.status_code == 201 and logged.json()["billed_minutes"] == 43
        result = {"trial_balance": "balanced", "adjustments": 3}
        done = await api.post(
            task_path(demo, task_id, "complete"), json={"result": result}, headers=as_worker
        )
        assert done.status_code == 200 and done.json()["status"] == "awaiting_review"
        own = await api.post(task_path(demo, task_id, "claim"), json={}, headers=as_worker)
        assert own.status_code == 403 and own.json()["type"].endswith("/four-eyes")
        assert "another staff member" in own.json()["detail"]

        review = await api.post(task_path(demo, task_id, "claim"), json={}, headers=as_reviewer)
        assert review.status_code == 200 and review.json()["status"] == "in_review"
        approved = await api.post(
            task_path(demo, task_id, "approve"), json={"note": "Checked."}, headers=as_reviewer
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "done"
        assert approved.json()["reviewed_by"] == str(reviewer_id)

        final = (await api.get(f"/v1/tenants/{demo.slug}/work/requests/{request['id']}",
                               headers=as_client)).json()  # fmt: skip
        assert final["status"] == "completed" and final["result"] == result
        assert "JE-1042" not in str(final["comments"])  # internal notes stay internal

        async with running_worker(work_settings):
            await wait_for(lambda: _received(receiver, 1), timeout=30)
        event = msgspec.json.decode(receiver.requests[0].body)
        assert event["type"] == "work.request.completed"
        assert event["data"]["request_id"] == request["id"]

    async with db.engine.begin() as conn:
        await roll_up(conn)
    usage = await api.get(f"/v1/tenants/{demo.slug}/billing/usage", headers=as_admin)
    meters = {m["meter"]: Decimal(str(m["quantity"])) for m in usage.json()["meters"]}
    assert meters["tasks_completed"] == 1 and meters["staff_minutes"] == 43
    assert (await _queue_rows(db)) == 0  # a finished task leaves the index


async def _received(receiver: Any, count: int) -> bool:
    return len(receiver.requests) >= count


async def _queue_rows(db: Database) -> int:
    async with db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(QueueEntry)) or 0)


async def test_bad_input_and_conflicts_change_nothing(
    api: Client, db: Database, work_settings: Settings
) -> None:
    firm = await make_tenant(db, "ledger-works")
    await add_service(db, review_required=True)
    as_admin = await admin_of(db, work_settings, firm)

    wrong = await api.post(
        f"/v1/tenants/{firm.slug}/work/requests",
        json={"service": "bookkeeping", "payload": {"period": "Nov", "extra": 1}},
        headers=as_admin,
    )
    assert wrong.status_code == 422 and wrong.headers["content-type"].startswith(
        "application/problem+json"
    )
    pointers = {e["pointer"] for e in wrong.json()["errors"]}
    assert pointers == {"#/payload", "#/payload/period"}  # extra property; pattern
    for body, status in [
        ({"service": "no-such-service", "payload": {}}, 404),
        ({"service": "bookkeeping", "payload": {"period": "2026-11"}, "priority": 101}, 422),
        ({"service": "bookkeeping", "payload": [], "priority": 1}, 400),
        ({"service": "bookkeeping", "payload": {"period": "2026-11"}, "colour": "red"}, 400),
    ]:
        refused = await api.post(f"/v1/tenants/{firm.slug}/work/requests", json=body,
                                 headers=as_admin)  # fmt: skip
        assert refused.status_code in (status, 422), (body, refused.text)
    malformed = await api.post(
        f"/v1/tenants/{firm.slug}/work/requests",
        content=b'{"service": ',
        headers=as_admin | {"content-type": "application/json"},
    )
    assert malformed.status_code == 400
    assert await _queue_rows(db) == 0

    request = await ask_for(api, firm, as_admin)
    task_id = request["tasks"][0]["id"]
    _, as_staff = await staff_member(db, work_settings, [firm])
    _, as_unskilled = await staff_member(db, work_settings, [firm], skills=("payroll",))
    assert (await api.get("/v1/staff/inbox", headers=as_unskilled)).json()["items"] == []
    generalist = await make_user(db, "generalist@provider.example", staff_role="staff",
                                 assigned=[firm])  # fmt: skip
    as_generalist = bearer(await user_token(db, work_settings, generalist, staff_role="staff"))
    seen = (await api.get("/v1/staff/inbox", headers=as_generalist)).json()["items"]
    assert [i["task_id"] for i in seen] == [task_id]  # no skills set yet: any skill
    none = await api.post("/v1/staff/inbox/claim", json={}, headers=as_unskilled)
    assert none.status_code == 204
    for action, body in [("complete", {"result": 1}), ("questions", {"body": "?"}),
                         ("release", None), ("heartbeat", {})]:  # fmt: skip
        refused = await api.post(task_path(firm, task_id, action), json=body, headers=as_staff)
        assert refused.status_code == 409, (action, refused.text)
        assert "claim" in refused.json()["detail"]
    bad_lease = await api.post(
        task_path(firm, task_id, "claim"), json={"lease_minutes": 0}, headers=as_staff
    )
    assert bad_lease.status_code in (400, 422)
    bad_cursor = await api.get("/v1/staff/inbox?cursor=not-ours", headers=as_staff)
    assert bad_cursor.status_code == 400
    canceled = await api.post(
        f"/v1/tenants/{firm.slug}/work/requests/{request['id']}/cancel", json={}, headers=as_admin
    )
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    late = await api.post(task_path(firm, task_id, "claim"), json={}, headers=as_staff)
    assert late.status_code == 409
    assert await _queue_rows(db) == 0


async def test_another_tenants_tasks_and_requests_are_404_and_the_database_refuses(
    api: Client, db: Database, work_settings: Settings
) -> None:
    ours, theirs = await make_tenant(db, "our-firm"), await make_tenant(db, "their-firm")
    await add_service(db)
    as_ours = await admin_of(db, work_settings, ours)
    theirs_admin = await admin_of(db, work_settings, theirs)
    request = await ask_for(api, theirs, theirs_admin)
    task_id = request["tasks"][0]["id"]
    _, as_our_staff = await staff_member(db, work_settings, [ours])

    async def their_task() -> Any:
        async with tenant_session(db.engine, theirs) as session:
            task = await session.get(Task, uuid.UUID(task_id))
            assert task is not None
            return (task.status, task.claimed_by)

    base = f"/v1/tenants/{ours.slug}/work"
    for method, path, headers, body in [
        ("GET", f"{base}/requests/{request['id']}", as_ours, None),
        ("POST", f"{base}/requests/{request['id']}/answer", as_ours, {"body": "x"}),
        ("POST", f"{base}/requests/{request['id']}/cancel", as_ours, {}),
        ("GET", task_path(ours, task_id), as_our_staff, None),
        ("POST", task_path(ours, task_id, "claim"), as_our_staff, {}),
        ("POST", task_path(ours, task_id, "time"), as_our_staff, {"minutes": 5}),
        ("POST", task_path(ours, task_id, "heartbeat"), as_our_staff, {}),
        ("POST", task_path(ours, task_id, "release"), as_our_staff, None),
        ("POST", task_path(ours, task_id, "comments"), as_our_staff, {"body": "x"}),
        ("POST", task_path(ours, task_id, "questions"), as_our_staff, {"body": "x"}),
        ("POST", task_path(ours, task_id, "complete"), as_our_staff, {"result": 1}),
        ("POST", task_path(ours, task_id, "approve"), as_our_staff, {}),
        ("POST", task_path(ours, task_id, "send-back"), as_our_staff, {"reason": "x"}),
        ("PATCH", task_path(ours, task_id, f"time/{uuid.uuid4()}"), as_our_staff, {"minutes": 1}),
        ("DELETE", task_path(ours, task_id, f"time/{uuid.uuid4()}"), as_our_staff, None),
        ("GET", f"/v1/tenants/{theirs.slug}/work/requests", as_ours, None),
        (
            "POST",
            f"/v1/tenants/{theirs.slug}/work/requests",
            as_ours,
            {"service": "bookkeeping", "payload": {"period": "2026-11"}},
        ),
        ("GET", f"/v1/tenants/{theirs.slug}/work/calendar", as_ours, None),
        ("GET", f"/v1/tenants/{theirs.slug}/work/tasks", as_our_staff, None),
        ("POST", task_path(theirs, task_id, "claim"), as_our_staff, {}),
        ("GET", f"/v1/tenants/{theirs.slug}/work/reports", as_ours, None),
        ("PUT", f"/v1/tenants/{theirs.slug}/work/calendar", as_ours, {"time_zone": "UTC"}),
    ]:
        await assert_cross_tenant_404(
            api, method, path, headers=headers, json=body, unchanged=their_task
        )

    # The database itself: our role sees none of their queue rows, and cannot write one.
    async with tenant_session(db.engine, ours) as session:
        seen = await session.scalar(text("SELECT count(*) FROM platform.work_queue"))
        assert seen == 0
    with pytest.raises(DBAPIError, match=r"row-level security|permission denied"):
        async with tenant_session(db.engine, ours) as session:
            await session.execute(
                text(
                    "INSERT INTO platform.work_queue (task_id, tenant_id, service_key, skills,"
                    " priority, status, created_at) VALUES (gen_random_uuid(), :t, 'x', '{}',"
                    " 1, 'open', now())"
                ),
                {"t": theirs.tenant_id},
            )
    with pytest.raises(DBAPIError, match="permission denied"):
        async with tenant_session(db.engine, ours) as session:
            await session.execute(text(f'SELECT * FROM "{theirs.schema}".tasks'))
    async with tenant_session(db.engine, ours) as session:
        moved = await session.execute(
            text("UPDATE platform.work_queue SET priority = 0 WHERE tenant_id = :t"),
            {"t": theirs.tenant_id},
        )
        assert moved.rowcount == 0  # type: ignore[attr-defined]


async def test_time_entries_bill_minutes_once_and_are_final_once_invoiced(
    api: Client, db: Database, work_settings: Settings
) -> None:
    firm = await make_tenant(db, "timekeepers")
    await add_service(db, bill_per_minute=True, bill_per_task=False)
    as_admin = await admin_of(db, work_settings, firm)
    task_id = (await ask_for(api, firm, as_admin))["tasks"][0]["id"]
    staff_id, as_staff = await staff_member(db, work_settings, [firm])
    _, as_colleague = await staff_member(db, work_settings, [firm])
    await api.post(task_path(firm, task_id, "claim"), json={}, headers=as_staff)

    entry = (
        await api.post(task_path(firm, task_id, "time"), json={"minutes": 12.2}, headers=as_staff)
    ).json()
    assert entry["billed_minutes"] == 13
    edit = task_path(firm, task_id, f"time/{entry['id']}")
    other = await api.patch(edit, json={"minutes": 1}, headers=as_colleague)
    assert other.status_code == 403
    lowered = await api.patch(edit, json={"minutes": 5}, headers=as_staff)
    assert lowered.status_code == 200 and lowered.json()["billed_minutes"] == 5
    second = (
        await api.post(task_path(firm, task_id, "time"), json={"minutes": 30}, headers=as_staff)
    ).json()
    gone = await api.delete(task_path(firm, task_id, f"time/{second['id']}"), headers=as_staff)
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    again = await api.delete(task_path(firm, task_id, f"time/{second['id']}"), headers=as_staff)
    assert again.status_code == 404
    future = datetime.now(UTC) + timedelta(hours=2)
    refused = await api.post(task_path(firm, task_id, "time"), headers=as_staff,
                             json={"minutes": 5, "worked_at": future.isoformat()})  # fmt: skip
    assert refused.status_code == 422 and "future" in refused.json()["detail"]

    async with db.sessionmaker() as session:
        keys = dict(
            (
                await session.execute(
                    select(UsageEvent.key, UsageEvent.quantity).where(
                        UsageEvent.tenant_id == firm.tenant_id,
                        UsageEvent.meter == "staff_minutes",
                    )
                )
            ).all()
        )
    assert keys == {
        f"time:{entry['id']}:1": 13,
        f"time:{entry['id']}:2": -8,
        f"time:{second['id']}:1": 30,
        f"time:{second['id']}:2": -30,
    }
    assert sum(keys.values()) == 5

    # Once the month is invoiced, its entries are final.
    now = datetime.now(UTC)
    async with db.sessionmaker.begin() as session:
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        session.add(Invoice(tenant_id=firm.tenant_id, period_start=start, plan="starter",
                            period_end=start + timedelta(days=32), currency="usd",
                            total=0, lines=[]))  # fmt: skip
    final = await api.patch(edit, json={"minutes": 9}, headers=as_staff)
    assert final.status_code == 409 and final.json()["type"].endswith("/period-invoiced")
    report = await api.get(f"/v1/tenants/{firm.slug}/work/reports", headers=as_admin)
    assert report.status_code == 200, report.text
    assert report.json()["minutes_by_staff"] == [
        {"staff_id": str(staff_id), "minutes": "5.00", "billed_minutes": 5}
    ]


async def test_catalog_is_managed_by_staff_admins_with_checked_forms(
    api: Client, db: Database, work_settings: Settings
) -> None:
    as_provider = bearer(await staff_admin_token(db, work_settings))
    firm = await make_tenant(db, "catalog-readers")
    as_admin = await admin_of(db, work_settings, firm)
    sla = {
        b: {"response_hours": 1, "resolution_hours": 4} for b in ("urgent", "high", "normal", "low")
    }
    body = {"key": "payroll-check", "name": "Payroll check", "function": "payroll", "sla": sla}
    made = await api.post("/v1/services", json=body, headers=as_provider)
    assert made.status_code == 201 and made.headers["etag"] == '"v1"'
    assert (await api.post("/v1/services", json=body, headers=as_provider)).status_code == 409
    assert (await api.post("/v1/services", json=body, headers=as_admin)).status_code == 403
    broken = body | {"key": "broken", "form": {"type": "object", "required": "period"}}
    bad_form = await api.post("/v1/services", json=broken, headers=as_provider)
    assert bad_form.status_code == 422 and "JSON Schema" in bad_form.json()["detail"]
    partial = body | {"key": "partial", "sla": {"urgent": sla["urgent"]}}
    assert (await api.post("/v1/services", json=partial, headers=as_provider)).status_code == 422
    stale = await api.patch("/v1/services/payroll-check", json={"name": "x"},
                            headers=as_provider | {"If-Match": '"v0"'})  # fmt: skip
    assert stale.status_code == 412
    changed = await api.patch("/v1/services/payroll-check", json={"review_required": True},
                              headers=as_provider | {"If-Match": '"v1"'})  # fmt: skip
    assert changed.status_code == 200 and changed.json()["version"] == 2
    listed = await api.get("/v1/services", headers=as_admin)
    assert [s["key"] for s in listed.json()] == ["payroll-check"]


async def test_inbox_pages_in_sla_order_and_skills_and_calendars_are_checked(
    api: Client, db: Database, work_settings: Settings
) -> None:
    firm = await make_tenant(db, "paging-firm")
    await add_service(db)
    await add_service(db, "payroll-check", skills=["payroll"])
    as_admin = await admin_of(db, work_settings, firm)
    made = [
        (await ask_for(api, firm, as_admin, priority=p))["tasks"][0]["id"] for p in (10, 90, 50)
    ]
    _, as_staff = await staff_member(db, work_settings, [firm])
    first = (await api.get("/v1/staff/inbox?limit=2", headers=as_staff)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (
        await api.get(f"/v1/staff/inbox?limit=2&cursor={first['next_cursor']}", headers=as_staff)
    ).json()
    pages = first["items"] + second["items"]
    assert sorted(i["task_id"] for i in pages) == sorted(made) and second["next_cursor"] is None
    assert [i["due_at"] for i in pages] == sorted(i["due_at"] for i in pages)

    payroll = (await ask_for(api, firm, as_admin, "payroll-check"))["tasks"][0]["id"]
    refused = await api.post(task_path(firm, payroll, "claim"), json={}, headers=as_staff)
    assert refused.status_code == 403 and refused.json()["type"].endswith("/missing-skills")
    assert "payroll" in refused.json()["detail"]

    closed = await api.put(f"/v1/tenants/{firm.slug}/work/calendar", headers=as_admin,
                           json={"working_hours": {}})  # fmt: skip
    assert closed.status_code == 422 and "working time" in closed.json()["detail"]
    london = {"time_zone": "Europe/London", "country": "GB", "subdivision": "ENG",
              "closed_days": ["2026-12-24"]}  # fmt: skip
    saved = await api.put(f"/v1/tenants/{firm.slug}/work/calendar", json=london, headers=as_admin)
    assert saved.status_code == 200 and saved.headers["etag"] == '"v1"'
    stale = await api.put(f"/v1/tenants/{firm.slug}/work/calendar", json=london,
                          headers=as_admin | {"If-Match": '"v0"'})  # fmt: skip
    assert stale.status_code == 412
    shown = await api.get(f"/v1/tenants/{firm.slug}/work/calendar", headers=as_admin)
    assert shown.json()["time_zone"] == "Europe/London" and shown.headers["etag"] == '"v1"'


async def test_a_deeply_nested_payload_is_refused_not_crashed(
    api: Client, db: Database, work_settings: Settings
) -> None:
    firm = await make_tenant(db, "nesting-firm")
    await add_service(db, "free-form", form={"type": "object",
                                             "additionalProperties": {"$ref": "#"}})  # fmt: skip
    as_admin = await admin_of(db, work_settings, firm)
    payload: dict[str, Any] = {}
    for _ in range(400):
        payload = {"a": payload}
    deep = await api.post(f"/v1/tenants/{firm.slug}/work/requests", headers=as_admin,
                          json={"service": "free-form", "payload": payload})  # fmt: skip
    assert 400 <= deep.status_code < 500, deep.text
    assert await _queue_rows(db) == 0


async def test_staff_profiles_reports_and_answers_refuse_bad_input(
    api: Client, db: Database, work_settings: Settings
) -> None:
    as_provider = bearer(await staff_admin_token(db, work_settings))
    firm = await make_tenant(db, "profile-firm")
    await add_service(db)
    as_admin = await admin_of(db, work_settings, firm)
    staff_id = await make_user(db, "fresh@provider.example", staff_role="staff", assigned=[firm])
    profile = f"/v1/staff/members/{staff_id}/work-profile"

    unset = await api.get(profile, headers=as_provider)
    assert unset.json() == {"user_id": str(staff_id), "skills": None, "capacity": 10}
    for body in ({"skills": ["accounting"], "capacity": 0}, {"skills": ["Not A Skill!"]},
                 {"skills": [], "colour": "red"}):  # fmt: skip
        refused = await api.put(profile, json=body, headers=as_provider)
        assert refused.status_code in (400, 422), (body, refused.text)
    assert (await api.get(profile, headers=as_provider)).json()["skills"] is None  # unchanged
    missing = await api.put(f"/v1/staff/members/{uuid.uuid4()}/work-profile",
                            json={"skills": []}, headers=as_provider)  # fmt: skip
    assert missing.status_code == 404
    assert (await api.put(profile, json={"skills": []}, headers=as_admin)).status_code == 403
    saved = await api.put(profile, json={"skills": ["payroll", "accounting"], "capacity": 3},
                          headers=as_provider)  # fmt: skip
    assert saved.json() == {"user_id": str(staff_id), "skills": ["accounting", "payroll"],
                            "capacity": 3}  # fmt: skip

    reports = f"/v1/tenants/{firm.slug}/work/reports"
    backwards = await api.get(f"{reports}?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z",
                              headers=as_admin)  # fmt: skip
    assert backwards.status_code == 400 and "before" in backwards.json()["detail"]
    assert (await api.get(f"{reports}?from=yesterday", headers=as_admin)).status_code in (400, 422)

    request = await ask_for(api, firm, as_admin)
    empty = await api.post(f"/v1/tenants/{firm.slug}/work/requests/{request['id']}/answer",
                           json={"body": ""}, headers=as_admin)  # fmt: skip
    assert empty.status_code in (400, 422)
    unasked = await api.post(f"/v1/tenants/{firm.slug}/work/requests/{request['id']}/answer",
                             json={"body": "Here you are"}, headers=as_admin)  # fmt: skip
    assert unasked.status_code == 409 and "no open question" in unasked.json()["detail"]

    _, as_staff = await staff_member(db, work_settings, [firm])
    task_id = request["tasks"][0]["id"]
    await api.post(task_path(firm, task_id, "claim"), json={}, headers=as_staff)
    entry = (await api.post(task_path(firm, task_id, "time"), json={"minutes": 10},
                            headers=as_staff)).json()  # fmt: skip
    edit = task_path(firm, task_id, f"time/{entry['id']}")
    for minutes in (0, -5, 2000, 0.001):
        refused = await api.patch(edit, json={"minutes": minutes}, headers=as_staff)
        assert refused.status_code in (400, 422), (minutes, refused.text)
    shown = (await api.get(task_path(firm, task_id), headers=as_staff)).json()
    assert [(e["minutes"], e["version"]) for e in shown["time_entries"]] == [("10.00", 1)]
