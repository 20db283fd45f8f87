"""Webhooks to client firms: endpoints over the API, Standard Webhooks signatures checked by
the `standardwebhooks` package, retries logged attempt by attempt, replay, SSRF refusals,
and tenant isolation."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.settings import Settings
from bpo.webhooks.addresses import RefusedAddress, check_url
from bpo.webhooks.jobs import Outcome, _post
from bpo.webhooks.models import WebhookEndpoint
from bpo.webhooks.routes import PINGS_PER_MINUTE, REPLAYS_PER_MINUTE
from bpo.webhooks.service import ENDPOINT_DISABLED, MAX_ENDPOINTS, record_event
from tests.conftest import build_app
from tests.support.auth import admin_of
from tests.support.isolation import assert_cross_tenant_404
from tests.support.jobs import running_worker, wait_for
from tests.support.receiver import Receiver, webhook_receiver
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]
LOOPBACK = ("127.0.0.1",)


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, webhook_allowlist=LOOPBACK)


@pytest.fixture
async def hooks(hook_settings: Settings, db: Database) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=build_app(hook_settings)) as client:
        yield client


async def register(
    client: Client, tenant: TenantContext, headers: dict[str, str], url: str, **extra: Any
) -> dict[str, Any]:
    made = await client.post(
        f"/v1/tenants/{tenant.slug}/webhooks/endpoints",
        json={"url": url, **extra},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


async def deliveries(
    client: Client, tenant: TenantContext, headers: dict[str, str]
) -> list[dict[str, Any]]:
    page = await client.get(f"/v1/tenants/{tenant.slug}/webhooks/deliveries", headers=headers)
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


async def test_a_delivery_verifies_with_the_standardwebhooks_package(
    hooks: Client, hook_settings: Settings, db: Database
) -> None:
    firm = await make_tenant(db, "hook-firm")
    as_admin = await admin_of(db, hook_settings, firm)
    with webhook_receiver(200) as receiver:
        endpoint = await register(hooks, firm, as_admin, receiver.url, event_types=["*"])
        assert endpoint["secret"].startswith("whsec_")
        async with running_worker(hook_settings):
            pinged = await hooks.post(
                f"/v1/tenants/{firm.slug}/webhooks/endpoints/{endpoint['id']}/ping",
                headers=as_admin,
            )
            assert pinged.status_code == 202, pinged.text
            await wait_for(lambda: _received(receiver, 1))
    request = receiver.requests[0]
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "webhook.ping"
    assert payload["data"] == {"endpoint_id": endpoint["id"]}
    assert request.headers["webhook-id"] == pinged.json()["webhook_id"]
    # A changed body does not verify, nor does another secret.
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(request.body.replace(b"ping", b"pong"), request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(request.body, request.headers)
    other = (
        await hooks.get(  # the secret is also readable later, by an admin
            f"/v1/tenants/{firm.slug}/webhooks/endpoints/{endpoint['id']}/secret", headers=as_admin
        )
    ).json()["secret"]
    assert other == endpoint["secret"]


async def _received(receiver: Receiver, count: int) -> bool:
    return len(receiver.requests) >= count


async def test_500_then_200_is_two_attempts_both_logged_then_a_manual_replay(
    hooks: Client, hook_settings: Settings, db: Database
) -> None:
    firm = await make_tenant(db, "retry-firm")
    as_admin = await admin_of(db, hook_settings, firm)
    with webhook_receiver(500, 200) as receiver:
        endpoint = await register(hooks, firm, as_admin, receiver.url)
        async with running_worker(hook_settings):
            await hooks.post(
                f"/v1/tenants/{firm.slug}/webhooks/endpoints/{endpoint['id']}/ping",
                headers=as_admin,
            )
            await wait_for(lambda: _received(receiver, 2), timeout=30)  # first retry after 5 s

            async def succeeded() -> bool:
                listed = await deliveries(hooks, firm, as_admin)
                return bool(listed) and listed[0]["status"] == "succeeded"

            await wait_for(succeeded)
            delivery = (await deliveries(hooks, firm, as_admin))[0]
            shown = await hooks.get(
                f"/v1/tenants/{firm.slug}/webhooks/deliveries/{delivery['id']}", headers=as_admin
            )
            log = shown.json()["attempt_log"]
            assert [(a["number"], a["status_code"], a["trigger"]) for a in log] == [
                (1, 500, "scheduled"),
                (2, 200, "scheduled"),
            ]
            # Only the status and timing of the receiver's answer are kept, never its body.
            assert all("response_excerpt" not in a for a in log)
            assert "try later" not in shown.text
            assert all(a["latency_ms"] >= 0 for a in log)
            # Both attempts carried the same webhook-id, each freshly signed.
            first, second = receiver.requests
            assert first.headers["webhook-id"] == second.headers["webhook-id"]
            Webhook(endpoint["secret"]).verify(second.body, second.headers)

            replayed = await hooks.post(
                f"/v1/tenants/{firm.slug}/webhooks/deliveries/{delivery['id']}/replay",
                headers=as_admin,
            )
            assert replayed.status_code == 202, replayed.text
            await wait_for(lambda: _received(receiver, 3))

            async def three_attempts() -> bool:
                again = await hooks.get(
                    f"/v1/tenants/{firm.slug}/webhooks/deliveries/{delivery['id']}",
                    headers=as_admin,
                )
                return len(again.json()["attempt_log"]) == 3

            await wait_for(three_attempts)
            # Another firm reaches this delivery neither by its own slug nor by ours.
            rival = await make_tenant(db, "nosy-retry-firm")
            as_rival = await admin_of(db, hook_settings, rival)
            for slug in (rival.slug, firm.slug):
                path = f"/v1/tenants/{slug}/webhooks/deliveries/{delivery['id']}"
                await assert_cross_tenant_404(hooks, "GET", path, headers=as_rival)
                await assert_cross_tenant_404(hooks, "POST", f"{path}/replay", headers=as_rival)
    assert len(receiver.requests) == 3  # no replay went out for the rival
    assert receiver.requests[2].headers["webhook-id"] == first.headers["webhook-id"]


async def test_events_reach_only_subscribed_enabled_endpoints(
    hooks: Client, hook_settings: Settings, db: Database
) -> None:
    firm = await make_tenant(db, "subscribe-firm")
    as_admin = await admin_of(db, hook_settings, firm)
    with webhook_receiver(200) as wanted, webhook_receiver(200) as unwanted:
        await register(hooks, firm, as_admin, wanted.url, event_types=["webhook_endpoint.probe"])
        await register(hooks, firm, as_admin, unwanted.url, event_types=["task.completed"])
        off = await register(hooks, firm, as_admin, unwanted.url, event_types=["*"], enabled=False)
        assert off["enabled"] is False
        async with running_worker(hook_settings):
            async with tenant_session(db.engine, firm) as session:
                await record_event(session, firm, "webhook_endpoint.probe", {"n": 1})
            await wait_for(lambda: _received(wanted, 1))
            await asyncio.sleep(0.5)
    assert len(wanted.requests) == 1 and unwanted.requests == []
    assert json.loads(wanted.requests[0].body)["data"] == {"n": 1}


async def test_endpoint_api_refuses_bad_input_and_other_tenants(
    hooks: Client, hook_settings: Settings, db: Database
) -> None:
    firm = await make_tenant(db, "api-firm")
    rival = await make_tenant(db, "rival-firm")
    as_admin = await admin_of(db, hook_settings, firm)
    as_rival = await admin_of(db, hook_settings, rival)
    base = f"/v1/tenants/{firm.slug}/webhooks/endpoints"
    cases: list[tuple[Any, str]] = [
        ({"url": "ftp://example.com/x"}, "http or https"),
        ({"url": "https://user:pw@example.com/x"}, "credentials"),
        ({"url": "https://10.1.2.3/hook"}, "private"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "link-local"),
        ({"url": "https://example.com/x", "event_types": ["Not A Type"]}, "event types"),
        ({"url": "https://example.com/x", "colour": "red"}, "colour"),
        ({"url": 5}, "url"),
    ]
    for body, words in cases:
        refused = await hooks.post(base, json=body, headers=as_admin)
        assert 400 <= refused.status_code < 500, (body, refused.status_code)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert words.lower() in refused.text.lower(), (body, refused.text)
    broken = await hooks.post(
        base, content=b"{not json", headers={**as_admin, "content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert await _endpoint_count(db, firm) == 0

    endpoint = await register(hooks, firm, as_admin, "http://127.0.0.1:9/hook")

    async def unchanged() -> Any:
        return (await hooks.get(f"{base}/{endpoint['id']}", headers=as_admin)).json()

    # The rival's token on our slug, and our endpoint's id under the rival's slug: 404.
    for method, path in [
        ("GET", base),
        ("GET", f"{base}/{endpoint['id']}"),
        ("GET", f"{base}/{endpoint['id']}/secret"),
        ("DELETE", f"{base}/{endpoint['id']}"),
        ("GET", f"/v1/tenants/{firm.slug}/webhooks/deliveries"),
    ]:
        await assert_cross_tenant_404(hooks, method, path, headers=as_rival, unchanged=unchanged)
    rival_path = f"/v1/tenants/{rival.slug}/webhooks/endpoints/{endpoint['id']}"
    for method in ("GET", "DELETE"):
        await assert_cross_tenant_404(
            hooks, method, rival_path, headers=as_rival, unchanged=unchanged
        )
    await assert_cross_tenant_404(
        hooks, "PATCH", rival_path, headers=as_rival, json={"enabled": False}, unchanged=unchanged
    )

    changed = await hooks.patch(
        f"{base}/{endpoint['id']}", json={"enabled": False}, headers=as_admin
    )
    assert changed.json()["enabled"] is False
    assert changed.json()["disabled_reason"] == "disabled by a tenant admin"
    gone = await hooks.delete(f"{base}/{endpoint['id']}", headers=as_admin)
    assert gone.status_code == 204
    assert await _endpoint_count(db, firm) == 0


async def _endpoint_count(db: Database, tenant: TenantContext) -> int:
    async with tenant_session(db.engine, tenant) as session:
        return int(await session.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8080/x",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "https://10.0.0.8/x",
        "https://172.16.5.4/x",
        "https://192.168.1.1/x",
        "http://169.254.169.254/x",
        "https://100.64.0.1/x",
        "https://[fe80::1]/x",
        "https://[fc00::1]/x",
        "https://0.0.0.0/x",
        "https://[fec0::1]/x",  # site-local
        "https://[::7f00:1]/x",  # IPv4-compatible ::127.0.0.1
        "https://[::a00:8]/x",  # IPv4-compatible ::10.0.0.8
        "https://[64:ff9b::a00:8]/x",  # NAT64 of 10.0.0.8
        "https://[64:ff9b::5db8:d70e]/x",  # NAT64, even of a public address
        "https://[64:ff9b:1::a00:8]/x",  # local-use NAT64 (RFC 8215)
        "https://[2002:7f00:1::1]/x",  # 6to4 of 127.0.0.1
    ],
)
async def test_non_public_addresses_are_refused_unless_allowlisted(url: str) -> None:
    with pytest.raises(RefusedAddress):
        await check_url(url, ())
    host = url.split("//")[1].split("/")[0].rsplit(":", 1)[0] if "[" not in url else None
    if host:
        await check_url(url, (host,))  # named on the allowlist: accepted


async def test_an_attempt_connects_to_the_checked_address_not_a_rebound_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name answers an allowed address for the check, then an internal
    one. The attempt must go to the address that was checked, resolving the name once, and
    keep nothing of the answer but its status and timing."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    lookups: list[str] = []

    async def rebinding_dns(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return await real(host, port, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.2" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding_dns)
    with (
        webhook_receiver(200, host="127.0.0.2") as allowed,
        webhook_receiver(200, host="127.0.0.1") as internal,
    ):
        port = int(allowed.url.split(":")[2].split("/")[0])
        internal_port = int(internal.url.split(":")[2].split("/")[0])
        for target_port, receiver in ((port, allowed), (internal_port, internal)):
            outcome = await _post(
                f"http://rebind.test:{target_port}/hooks/bpo",
                "whsec_" + "A" * 44,
                "msg_1",
                b"{}",
                ("127.0.0.2/32",),
                5.0,
            )
            if receiver is allowed:
                assert outcome.status_code == 200, outcome
            else:  # the second lookup answers 127.0.0.1: refused before any connection
                assert outcome.status_code is None and "refused" in (outcome.error or "")
    assert len(allowed.requests) == 1
    assert allowed.requests[0].headers["host"] == f"rebind.test:{port}"
    assert internal.requests == []
    assert lookups == ["rebind.test", "rebind.test"]  # one lookup per attempt, no second one
    assert "excerpt" not in Outcome.__struct_fields__


async def test_a_firm_has_at_most_twenty_endpoints_even_created_at_once(
    hooks: Client, hook_settings: Settings, db: Database
) -> None:
    firm = await make_tenant(db, "many-hooks-firm")
    as_admin = await admin_of(db, hook_settings, firm)
    url = f"/v1/tenants/{firm.slug}/webhooks/endpoints"
    answers = await asyncio.gather(
        *(
            hooks.post(url, json={"url": f"http://127.0.0.1:9/h{n}"}, headers=as_admin)
            for n in range(25)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * MAX_ENDPOINTS + [409] * 5
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.json()["type"].endswith("/endpoint-limit")
    assert await _endpoint_count(db, firm) == MAX_ENDPOINTS


async def test_pings_and_replays_are_rate_limited_per_firm(
    hooks: Client, hook_settings: Settings, db: Database
) -> None:
    firm = await make_tenant(db, "noisy-firm")
    as_admin = await admin_of(db, hook_settings, firm)
    endpoint = await register(hooks, firm, as_admin, "http://127.0.0.1:9/h")
    ping = f"/v1/tenants/{firm.slug}/webhooks/endpoints/{endpoint['id']}/ping"
    statuses = [(await hooks.post(ping, headers=as_admin)).status_code for _ in range(12)]
    assert statuses == [202] * PINGS_PER_MINUTE + [429] * 2
    limited = await hooks.post(ping, headers=as_admin)
    assert limited.json()["type"].endswith("/rate-limited")
    assert int(limited.headers["retry-after"]) >= 1
    replay = f"/v1/tenants/{firm.slug}/webhooks/deliveries/{uuid.uuid4()}/replay"
    replays = [(await hooks.post(replay, headers=as_admin)).status_code for _ in range(32)]
    assert replays == [404] * REPLAYS_PER_MINUTE + [429] * 2


async def test_allowlist_cidr_and_public_addresses() -> None:
    await check_url("https://10.0.0.8/x", ("10.0.0.0/8",))
    await check_url("https://93.184.215.14/x", ())  # a public address needs no allowlist
    with pytest.raises(RefusedAddress):
        await check_url("https://10.0.0.8/x", ("10.1.0.0/16",))


async def test_an_endpoint_failing_every_attempt_is_disabled_and_the_firm_told(
    hooks: Client, hook_settings: Settings, db: Database
) -> None:
    """Nine scheduled attempts (about three days) are written as already made; the tenth,
    real one fails too: the endpoint is disabled and a `webhook.endpoint.disabled` event
    reaches the firm's other endpoint."""
    firm = await make_tenant(db, "flaky-firm")
    as_admin = await admin_of(db, hook_settings, firm)
    base = f"/v1/tenants/{firm.slug}/webhooks"
    with webhook_receiver(500) as failing, webhook_receiver(200) as watcher:
        broken = await register(hooks, firm, as_admin, failing.url, event_types=["*"])
        await register(hooks, firm, as_admin, watcher.url, event_types=[ENDPOINT_DISABLED])
        async with running_worker(hook_settings):
            await hooks.post(f"{base}/endpoints/{broken['id']}/ping", headers=as_admin)
            await wait_for(lambda: _received(failing, 1))

            async def first_logged() -> bool:
                listed = await deliveries(hooks, firm, as_admin)
                return bool(listed) and listed[0]["attempts"] == 1

            await wait_for(first_logged)
            delivery = (await deliveries(hooks, firm, as_admin))[0]
            await _pretend_attempts_2_to_9_failed(db, firm, delivery["id"])
            await wait_for(lambda: _received(failing, 2))

            async def told() -> bool:
                return any(
                    json.loads(r.body)["type"] == ENDPOINT_DISABLED for r in watcher.requests
                )

            await wait_for(told)
    shown = (await hooks.get(f"{base}/endpoints/{broken['id']}", headers=as_admin)).json()
    assert shown["enabled"] is False
    assert "failed attempts" in shown["disabled_reason"]
    final = (await hooks.get(f"{base}/deliveries/{delivery['id']}", headers=as_admin)).json()
    assert final["status"] == "failed" and final["attempts"] == 10
    assert [a["number"] for a in final["attempt_log"]] == list(range(1, 11))
    notice = next(r for r in watcher.requests if b"disabled" in r.body)
    assert json.loads(notice.body)["data"]["endpoint_id"] == broken["id"]


async def _pretend_attempts_2_to_9_failed(
    db: Database, tenant: TenantContext, delivery_id: str
) -> None:
    """As the superuser: log attempts 2-9 and make the waiting 10th due now."""
    async with db.engine.begin() as conn:
        for number in range(2, 10):
            await conn.execute(
                text(
                    f'INSERT INTO "{tenant.schema}".webhook_attempts (id, delivery_id, number,'
                    " trigger, attempted_at, status_code, latency_ms)"
                    " VALUES (gen_random_uuid(), :d, :n, 'scheduled', now(), 500, 1)"
                ),
                {"d": delivery_id, "n": number},
            )
        await conn.execute(
            text(f'UPDATE "{tenant.schema}".webhook_deliveries SET attempts = 9 WHERE id = :d'),
            {"d": delivery_id},
        )
        moved = await conn.execute(
            text(
                "UPDATE platform.outbox SET available_at = now()"
                " WHERE actor = 'deliver_webhook' AND sent_at IS NULL AND args->>0 = :d"
            ),
            {"d": delivery_id},
        )
        assert moved.rowcount == 1


async def test_a_name_that_does_not_resolve_is_accepted_then_logged_per_attempt(
    hooks: Client, hook_settings: Settings, db: Database
) -> None:
    firm = await make_tenant(db, "future-firm")
    as_admin = await admin_of(db, hook_settings, firm)
    endpoint = await register(hooks, firm, as_admin, "https://hooks.not-yet.invalid/bpo")
    async with running_worker(hook_settings):
        await hooks.post(
            f"/v1/tenants/{firm.slug}/webhooks/endpoints/{endpoint['id']}/ping", headers=as_admin
        )

        async def logged() -> bool:
            listed = await deliveries(hooks, firm, as_admin)
            return bool(listed) and listed[0]["attempts"] == 1

        await wait_for(logged)
        delivery = (await deliveries(hooks, firm, as_admin))[0]
        shown = await hooks.get(
            f"/v1/tenants/{firm.slug}/webhooks/deliveries/{delivery['id']}", headers=as_admin
        )
    [attempt] = shown.json()["attempt_log"]
    assert attempt["status_code"] is None and "does not resolve" in attempt["error"]
    assert shown.json()["status"] == "pending" and shown.json()["next_attempt_at"]


async def test_if_match_guards_endpoint_changes(
    hooks: Client, hook_settings: Settings, db: Database
) -> None:
    firm = await make_tenant(db, "etag-firm")
    as_admin = await admin_of(db, hook_settings, firm)
    endpoint = await register(hooks, firm, as_admin, "http://127.0.0.1:9/h")
    url = f"/v1/tenants/{firm.slug}/webhooks/endpoints/{endpoint['id']}"
    read = await hooks.get(url, headers=as_admin)
    etag = read.headers["etag"]
    changed = await hooks.patch(
        url, json={"description": "ERP"}, headers={**as_admin, "If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] != etag
    stale = await hooks.patch(
        url, json={"description": "lost update"}, headers={**as_admin, "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.json()["type"].endswith("/precondition-failed")
    assert (await hooks.get(url, headers=as_admin)).json()["description"] == "ERP"
