"""`bpo up` on the embedded path: no external service, Ctrl-C stops all, data is reused.

This module is what CI runs a second time without BPO_TEST_* variables, so the embedded
PostgreSQL and Redis of the test session are exercised too.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from bpo.core.security import secret_matches, verify_password
from bpo.embedded import EmbeddedRedis
from tests.support.processes import OutputWatcher, bpo_env, free_port, spawn

UP_TIMEOUT_S = 120


def start_up(data_dir: Path, port: int) -> subprocess.Popen[str]:
    return spawn("up", env=bpo_env(BPO_DATA_DIR=str(data_dir), BPO_PORT=str(port)))


def interrupt(process: subprocess.Popen[str], output: OutputWatcher) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)  # what Ctrl-C delivers to `bpo up`
    assert process.stderr is not None
    err = process.stderr.read()
    process.wait(60)
    return output.text, err


def processes_using(data_dir: Path) -> list[str]:
    """Command lines of processes tied to this data dir (PostgreSQL's -D, Redis's socket)."""
    marks = (str(data_dir), str(EmbeddedRedis(data_dir).socket))
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(mark in cmdline for mark in marks):
            found.append(cmdline)
    return found


async def demo_rows(data_dir: Path) -> tuple[str, bytes, str]:
    socket_dir = data_dir / "postgres"
    conn = await asyncpg.connect(host=str(socket_dir), user="postgres", database="bpo")
    try:
        password_hash = await conn.fetchval(
            "SELECT password_hash FROM platform.users WHERE email = 'admin@example.com'"
        )
        digest = await conn.fetchval(
            "SELECT secret_digest FROM platform.api_clients WHERE client_id = 'demo-client'"
        )
        slug = await conn.fetchval(
            "SELECT t.slug FROM platform.tenants t "
            "JOIN pg_namespace n ON n.nspname = 'tenant_' || replace(t.id::text, '-', '') "
            "JOIN pg_roles r ON r.rolname = n.nspname || '_app'"
        )
        return password_hash, digest, slug
    finally:
        await conn.close()


@pytest.mark.embedded
def test_up_runs_the_stack_stops_cleanly_and_reuses_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "bpo-data"
    port = free_port()

    first = start_up(data_dir, port)
    output = OutputWatcher(first)
    try:
        output.wait_for("Press Ctrl-C to stop.", UP_TIMEOUT_S)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready") as response:
            assert json.load(response)["checks"] == {"database": "ok", "broker": "ok"}
        running = processes_using(data_dir)
        assert any("postgres" in p for p in running) and any("redis" in p for p in running)
    finally:
        out, err = interrupt(first, output)
    assert first.returncode == 0, err
    assert "bpo is ready" in out
    assert f"http://127.0.0.1:{port}/schema" in out
    assert "bpo: stopped" in err
    assert processes_using(data_dir) == []

    creds = json.loads((data_dir / "demo-credentials.json").read_text())
    assert creds["tenant"] == {"slug": "demo"}
    assert set(creds["provider_admin"]) == {"email", "password"}
    assert set(creds["client"]) == {"client_id", "client_secret"}
    assert creds["client"]["client_secret"] in out  # printed too

    second = start_up(data_dir, port)
    output = OutputWatcher(second)
    try:
        output.wait_for("Press Ctrl-C to stop.", UP_TIMEOUT_S)
        password_hash, digest, slug = asyncio.run(demo_rows(data_dir))
    finally:
        _, err = interrupt(second, output)
    assert second.returncode == 0, err
    assert processes_using(data_dir) == []
    # The same data and the same credentials, still valid against the stored hashes.
    assert json.loads((data_dir / "demo-credentials.json").read_text()) == creds
    assert slug == "demo"  # with its schema and its role
    assert verify_password(password_hash, creds["provider_admin"]["password"])
    secret_key = (data_dir / "secret.key").read_text().strip()
    assert secret_matches(secret_key, creds["client"]["client_secret"], digest)
