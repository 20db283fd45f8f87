"""The `bpo` command as a user runs it: help, bad settings, unreachable database, busy port."""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bpo.core.db import Database
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.processes import bpo, bpo_env, free_port, spawn_serve


def test_help_lists_the_commands() -> None:
    result = bpo("--help", env=bpo_env())
    assert result.returncode == 0
    for command in ("up", "serve", "worker", "scheduler", "migrate", "demo"):
        assert command in result.stdout


def test_a_bad_setting_is_one_line_naming_the_variable() -> None:
    result = bpo("serve", env=bpo_env(BPO_PORT="eighty"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bpo: BPO_PORT: must be a whole number (got 'eighty')"
    ]


def test_serve_without_a_database_url_says_so() -> None:
    result = bpo("serve", env=bpo_env())
    assert result.returncode == 2
    assert "BPO_DATABASE_URL is not set" in result.stderr


def test_database_down_at_startup_is_one_line_and_non_zero(
    settings: Settings, tmp_path: Path
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/bpo"
    assert settings.broker_url is not None
    for command in ("serve", "worker", "up"):
        result = bpo(
            command,
            env=bpo_env(
                BPO_DATABASE_URL=dead,
                BPO_BROKER_URL=settings.broker_url,
                BPO_PORT=str(free_port()),
                BPO_DATA_DIR=str(tmp_path),
            ),
        )
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"bpo: cannot reach the database at {dead}: ")


def test_up_on_a_busy_port_is_one_line_and_starts_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data_dir = tmp_path / "data"
        result = bpo("up", env=bpo_env(BPO_PORT=str(port), BPO_DATA_DIR=str(data_dir)))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"bpo: cannot listen on 127.0.0.1:{port}: address already in use "
        "(set BPO_PORT to use another port)"
    ]
    assert not data_dir.exists()  # nothing was started, nothing was written


def test_serve_logs_json_lines_with_the_request_id(settings: Settings) -> None:
    process, base = spawn_serve(settings.database_url, settings.broker_url)
    try:
        request = urllib.request.Request(f"{base}/nowhere", headers={"X-Request-ID": "log-trace-1"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert [r["event"] for r in records if r.get("logger") == "bpo.serve"] == [
        "api_starting",
        "api_stopped",
    ]
    assert all({"event", "level", "timestamp"} <= record.keys() for record in records)
    access = [r for r in records if r.get("logger") == "bpo.access" and r["path"] == "/nowhere"]
    assert access == [
        {
            **access[0],
            "request_id": "log-trace-1",
            "status": 404,
            "method": "GET",
            "route": "unmatched",
        }
    ]


def test_migrate_reports_the_schemas(settings: Settings, db: Database) -> None:  # db: clean-up
    assert settings.database_url
    public = "https://bpo.acme.example"
    env = bpo_env(BPO_DATABASE_URL=settings.database_url, BPO_PUBLIC_URL=public)
    result = bpo("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert "platform at head; tenant schemas: 0 registered" in result.stdout
    # The console signs in through the demo-console app, at this deployment's address.
    listed = bpo("apps", "list", env=env)
    assert f"demo-console\tpublic\t{public}/console/callback" in listed.stdout, listed.stdout
    made = bpo("tenants", "create", "drift-firm", "--name", "Drift Firm", env=env)
    assert made.returncode == 0, made.stderr

    # Both tracks: platform and the tenant's schema at head, models and migrations agree.
    check = bpo("migrate", "--check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().splitlines()[-1] == "clean"


def test_keys_rotate_moves_every_key_along(settings: Settings, db: Database) -> None:
    env = bpo_env(BPO_DATABASE_URL=settings.database_url or "", BPO_SECRET_KEY=TEST_SECRET_KEY)
    first = bpo("keys", "rotate", env=env)
    assert first.returncode == 0, first.stderr
    second = bpo("keys", "rotate", env=env)
    active = second.stdout.strip().rsplit(" ", 1)[-1]
    listed = bpo("keys", "list", env=env).stdout.strip().splitlines()
    statuses = sorted(line.split("\t")[0] for line in listed)
    assert statuses == ["active", "next", "previous"]
    assert any(line.startswith(f"active\t{active}\t") for line in listed)
    refused = bpo("keys", "rotate", env=bpo_env(BPO_DATABASE_URL=settings.database_url or ""))
    assert refused.returncode == 2 and "BPO_SECRET_KEY" in refused.stderr


def test_apps_create_and_list(settings: Settings, db: Database) -> None:
    env = bpo_env(BPO_DATABASE_URL=settings.database_url or "", BPO_SECRET_KEY=TEST_SECRET_KEY)
    made = bpo(
        "apps", "create", "acme-portal", "--redirect-uri", "https://acme.example/cb", env=env
    )
    assert made.returncode == 0, made.stderr
    secret = bpo("apps", "create", "acme-server", "--redirect-uri", "https://a.example/cb",
                 "--confidential", env=env)  # fmt: skip
    assert "client_secret " in secret.stdout
    listed = bpo("apps", "list", env=env).stdout.strip().splitlines()
    assert listed == [
        "acme-portal\tpublic\thttps://acme.example/cb",
        "acme-server\tconfidential\thttps://a.example/cb",
    ]
