"""Rolling deploys and crashes: what SIGTERM and SIGKILL do to the API, workers and `bpo up`.

A deploy sends SIGTERM: the API stops accepting, finishes the requests it holds and exits;
a worker finishes its jobs and hands back the messages it had not started. A crash
(SIGKILL) loses nothing either: the broker delivers a dead worker's messages again, within
seconds on Redis too (consumers beat every second; the default timeout is 5 s).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from litestar.testing import AsyncTestClient

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.jobs.outbox import enqueue
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.clients import make_client
from tests.support.jobs import (
    add_effects_table,
    effect_counts,
    outbox_pending,
    record_effect,
    record_slowly,
    running_worker,
    spawn_worker,
    wait_for,
)
from tests.support.processes import OutputWatcher, bpo_env, free_port, spawn, spawn_serve
from tests.support.proxy import DatabaseProxy
from tests.support.tenants import make_tenant


@pytest.fixture
async def firm(db: Database) -> TenantContext:
    tenant = await make_tenant(db, "rollout-firm")
    await add_effects_table(db.engine, tenant)
    return tenant


def _token_request(port: int, client_id: str, secret: str) -> tuple[bytes, bytes]:
    """A client-credentials token request, split into its head and its body."""
    body = f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}"
    head = (
        f"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode(), body.encode()


def _status_of(sock: socket.socket) -> int:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return int(data.split(b" ", 2)[1])


async def _hammer(port: int, stop: asyncio.Event, results: list[str]) -> None:
    """Keep-alive GETs until told to stop; record 'ok', 'refused' or what went wrong."""
    request = f"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            results.append("refused")  # not accepted: a proxy would route elsewhere
            await asyncio.sleep(0.01)
            continue
        try:
            while not stop.is_set():
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                status = int(head.split(b" ", 2)[1])
                results.append("ok" if status == 200 else f"status {status}")
                if b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # Closed between requests, before any byte of an answer: HTTP lets a client
            # send that request again (RFC 9112 §9.3.1), and the next attempt is 'refused'.
            results.append("closed-idle" if not getattr(exc, "partial", b"") else "cut")
        finally:
            writer.close()


async def test_sigterm_finishes_requests_in_flight_and_stops_accepting(
    settings: Settings, db: Database, firm: TenantContext
) -> None:
    secret = await make_client(db, firm, "rollout-client", ["work:read"])
    process, base = spawn_serve(
        settings.database_url,
        settings.broker_url,
        BPO_SECRET_KEY=settings.secret_key or "",
        BPO_BROKER_NAMESPACE=settings.broker_namespace,
        BPO_LOG_LEVEL="WARNING",
    )
    port = int(base.rsplit(":", 1)[1])
    stop, results = asyncio.Event(), []
    load = [asyncio.create_task(_hammer(port, stop, results)) for _ in range(8)]
    # A request in flight at SIGTERM: its head sent, its body still on the way.
    head, body = _token_request(port, "rollout-client", secret)
    slow = socket.create_connection(("127.0.0.1", port))
    try:
        await asyncio.sleep(1.0)
        slow.sendall(head + body[:10])
        await asyncio.sleep(0.3)
        served_before = results.count("ok")
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        slow.sendall(body[10:])
        slow_status = await asyncio.to_thread(_status_of, slow)
        code = await asyncio.to_thread(process.wait, 30)
    finally:
        stop.set()
        await asyncio.gather(*load)
        slow.close()
        if process.poll() is None:
            process.kill()
    assert served_before > 50, "no load before SIGTERM: nothing was tested"
    assert slow_status == 200, "the request in flight at SIGTERM was not finished"
    assert code == 0
    failures = [r for r in results if r not in {"ok", "refused", "closed-idle"}]
    assert failures == [], f"requests failed: {failures[:5]}"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_worker_sigterm_finishes_or_hands_back_every_message(
    settings: Settings, db: Database, firm: TenantContext
) -> None:
    keys = [f"t{i:03d}" for i in range(120)]
    async with tenant_session(db.engine, firm) as session:
        for key in keys:
            await enqueue(session, record_slowly, key, 0.05, tenant=firm)
    earlier = set(_unacked(settings))  # other tests' workers'
    first = spawn_worker(settings)
    try:
        await wait_for(_done_at_least(db, firm, 20), timeout=60)
        first.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(first.wait, 30)
    finally:
        if first.poll() is None:
            first.kill()
    assert code == 0
    left = len(keys) - len(await effect_counts(db.engine, firm))
    assert left > 0, "every job finished before SIGTERM: nothing was tested"
    # Handed back means back in the queue: nothing may wait in the stopped worker's
    # unacked set for a heartbeat timeout (its prefetched, not yet started messages too).
    held = {key: n for key, n in _unacked(settings).items() if key not in earlier and n}
    assert held == {}, f"held by the stopped worker: {held}"
    # What the first worker had not started is back in the queue now, not after a
    # heartbeat timeout: the second worker is told to wait a minute for dead workers.
    second = spawn_worker(settings, BPO_BROKER_HEARTBEAT_TIMEOUT_MS="60000")
    try:
        # Under the 60 s a dead worker's messages would wait; its start-up is part of it
        # (30 s ran out on a loaded CI machine).
        await wait_for(_done_at_least(db, firm, len(keys)), timeout=50)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.to_thread(second.wait, 30)
    counts = await effect_counts(db.engine, firm)
    assert set(counts) == set(keys) and set(counts.values()) == {1}


async def test_a_killed_workers_messages_come_back_within_seconds_on_redis(
    settings: Settings, db: Database, firm: TenantContext
) -> None:
    """The default heartbeat timeout (5 s): before, Redis waited 60 s for a dead worker."""
    keys = [f"k{i:03d}" for i in range(80)]
    async with tenant_session(db.engine, firm) as session:
        for key in keys:
            await enqueue(session, record_slowly, key, 0.2, tenant=firm)
    first = spawn_worker(settings)
    try:
        await wait_for(_done_at_least(db, firm, 10), timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
    held = len(keys) - len(await effect_counts(db.engine, firm))
    second = spawn_worker(settings)
    try:
        # A hang guard, well under the old 60 s: it fails if dead workers wait a minute.
        await wait_for(_done_at_least(db, firm, len(keys)), timeout=40)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.to_thread(second.wait, 30)
    counts = await effect_counts(db.engine, firm)
    assert held > 0
    assert set(counts) == set(keys) and set(counts.values()) == {1}


def _unacked(settings: Settings) -> dict[bytes, int]:
    """Messages held in each worker's unacked set (Dramatiq's `__acks__.<worker>.<queue>`)."""
    client = redis.Redis.from_url(settings.broker_url)
    try:
        keys = client.keys(f"{settings.broker_namespace}:__acks__.*")
        return {key: int(client.scard(key)) for key in keys}
    finally:
        client.close()


def _done_at_least(db: Database, firm: TenantContext, n: int):  # type: ignore[no-untyped-def]
    async def done() -> bool:
        return len(await effect_counts(db.engine, firm)) >= n

    done.__name__ = f"at least {n} effects"
    return done


def _children_of(pid: int) -> dict[int, str]:
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(proc.name)] = cmdline
    return found


def test_up_restarts_a_crashed_worker_and_keeps_serving(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """`bpo up` used to stop everything, the API with it, when its worker died."""
    assert settings.database_url and settings.broker_url
    port = free_port()
    env = bpo_env(
        BPO_DATABASE_URL=settings.database_url,
        BPO_BROKER_URL=settings.broker_url,
        BPO_BROKER_NAMESPACE=settings.broker_namespace,
        BPO_DATA_DIR=str(tmp_path / "data"),
        BPO_PORT=str(port),
        BPO_LOG_LEVEL="WARNING",
    )
    up = spawn("up", env=env)
    output, errors = OutputWatcher(up), OutputWatcher(up, stream="stderr")
    try:
        output.wait_for("Press Ctrl-C to stop.", 120)
        workers = [p for p, cmd in _children_of(up.pid).items() if cmd.split()[-1] == "worker"]
        assert len(workers) == 1
        api = [p for p, cmd in _children_of(up.pid).items() if cmd.split()[-1] == "serve"]
        subprocess.run(["kill", "-9", str(workers[0])], check=True)
        errors.wait_for("the worker exited with code -9; restarting in 1 s", 10)
        errors.wait_for("the worker restarted", 10)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5) as r:
            assert r.status == 200
        now = _children_of(up.pid)
        assert [p for p, cmd in now.items() if cmd.split()[-1] == "serve"] == api  # untouched
        assert [p for p, cmd in now.items() if cmd.split()[-1] == "worker"] != workers
        assert up.poll() is None
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
    assert up.returncode == 0
    assert "bpo: stopped" in errors.text


async def test_broker_down_the_outbox_holds_jobs_and_they_flow_when_it_returns(
    settings: Settings, db: Database, firm: TenantContext
) -> None:
    """The relay cannot publish while the broker is away; nothing is lost, nothing doubled."""
    assert settings.broker_url is not None
    if not settings.broker_url.startswith("redis://"):
        pytest.skip("the proxy forwards TCP; the embedded Redis listens on a socket file")
    proxy = DatabaseProxy(settings.broker_url)  # a TCP proxy we can cut, whatever it carries
    proxy.start()
    upstream = urlsplit(settings.broker_url)
    moved = upstream._replace(netloc=f"127.0.0.1:{proxy.port}")
    proxied = dataclasses.replace(settings, broker_url=urlunsplit(moved))
    try:
        async with running_worker(proxied):
            async with tenant_session(db.engine, firm) as session:
                await enqueue(session, record_effect, "before", tenant=firm)
            await wait_for(_done_at_least(db, firm, 1), timeout=20)
            proxy.cut()
            async with AsyncTestClient(app=build_app(proxied)) as client:
                ready = await client.get("/health/ready")  # still in every load balancer
            keys = [f"during-{i}" for i in range(50)]
            async with tenant_session(db.engine, firm) as session:  # the API keeps accepting
                for key in keys:
                    await enqueue(session, record_effect, key, tenant=firm)
            await asyncio.sleep(2)
            held = await outbox_pending(db.engine)
            assert len(await effect_counts(db.engine, firm)) == 1
            proxy.restore()
            await wait_for(_done_at_least(db, firm, 1 + len(keys)), timeout=60)
    finally:
        proxy.close()
    assert ready.status_code == 200
    assert ready.json() == {"status": "degraded", "checks": {"database": "ok", "broker": "down"}}
    assert held == len(keys)  # every job waited in the outbox, none was dropped
    counts = await effect_counts(db.engine, firm)
    assert set(counts) == {"before", *keys} and set(counts.values()) == {1}


@pytest.mark.parametrize("trusted", [True, False])
def test_per_ip_limits_see_the_caller_behind_a_trusted_proxy(
    settings: Settings, db: Database, trusted: bool
) -> None:
    """Behind nginx every request comes from the proxy's address: with BPO_TRUSTED_PROXIES
    naming it, X-Forwarded-For is believed; without, it is ignored (anyone could forge it)."""
    extra = {"BPO_TRUSTED_PROXIES": "127.0.0.0/8"} if trusted else {}
    process, base = spawn_serve(
        settings.database_url,
        settings.broker_url,
        BPO_SECRET_KEY=settings.secret_key or "",
        BPO_BROKER_NAMESPACE=f"{settings.broker_namespace}-xff-{trusted}",
        BPO_TOKEN_RATE_PER_IP="2",
        BPO_LOG_LEVEL="WARNING",
        **extra,
    )
    form = b"grant_type=client_credentials&client_id=nobody&client_secret=x"

    def status(caller: str) -> int:
        request = urllib.request.Request(
            f"{base}/oauth/token",
            data=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Forwarded-For": caller,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        first = [status("203.0.113.7") for _ in range(3)]
        other = status("198.51.100.9")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert first[:2] != [429, 429] and first[2] == 429  # the limit (2 a minute) holds
    assert (other != 429) if trusted else (other == 429)
