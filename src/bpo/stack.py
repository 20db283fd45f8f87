"""`bpo up`: the whole stack in one command, stopped cleanly by Ctrl-C; a child that
crashes is restarted with a growing back-off."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import typer

from bpo.console.session import console_callback
from bpo.core.commands import ensure_secret_key
from bpo.core.db import can_connect, redact_url
from bpo.core.process import install_stop_handlers
from bpo.embedded import EmbeddedError, EmbeddedPostgres, EmbeddedRedis
from bpo.settings import Settings

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0


def run_stack(settings: Settings) -> int:
    """Start services, migrate and seed, run the API and a worker until stopped. Exit code."""
    started = time.monotonic()
    stop = threading.Event()
    install_stop_handlers(stop)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    postgres = EmbeddedPostgres(settings.data_dir) if settings.database_url is None else None
    redis = EmbeddedRedis(settings.data_dir) if settings.broker_url is None else None
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        database_url = postgres.start() if postgres else settings.database_url
        broker_url = redis.start() if redis else settings.broker_url
        assert database_url is not None and broker_url is not None
        reason = asyncio.run(can_connect(database_url, settings.db_connect_timeout))
        if reason is not None:
            _say(f"cannot reach the database at {redact_url(database_url)}: {reason}")
            return 1
        secret_key = ensure_secret_key(settings)
        asyncio.run(
            prepare_demo(database_url, secret_key, settings.data_dir, console_callback(settings))
        )
        env = {
            **os.environ,
            "BPO_DATABASE_URL": database_url,
            "BPO_BROKER_URL": broker_url,
            "BPO_SECRET_KEY": secret_key,
            "BPO_HOST": settings.host,
            "BPO_PORT": str(settings.port),
        }
        for name, command in (("API", "serve"), ("worker", "worker")):
            children.append((name, _start(command, env)))
        if not _wait_ready(settings.public_url, children, stop):
            return 0 if stop.is_set() else 1
        _print_banner(settings, database_url, broker_url, time.monotonic() - started)
        _supervise(children, env, stop)
        return 0
    except EmbeddedError as exc:
        _say(str(exc))
        return 1
    finally:
        _stop_children(children)
        if redis:
            redis.stop()
        if postgres:
            postgres.stop()
        if stop.is_set():
            _say("stopped")


COMMANDS = {"API": "serve", "worker": "worker"}
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STEADY_S = 60.0  # a child that ran this long before crashing starts its back-off afresh


def _start(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bpo", command], env=env)


def _supervise(
    children: list[tuple[str, subprocess.Popen[bytes]]], env: dict[str, str], stop: threading.Event
) -> None:
    """Restart a child that died, after a back-off that grows while it keeps dying, until
    Ctrl-C: a crashed worker must not take the API (and everyone's session) down with it."""
    crashes = dict.fromkeys(COMMANDS, 0)
    started = dict.fromkeys(COMMANDS, time.monotonic())
    due: dict[str, float] = {}
    while not stop.wait(0.2):
        now = time.monotonic()
        for index, (name, child) in enumerate(children):
            if name in due:
                if now >= due[name]:
                    del due[name]
                    children[index] = (name, _start(COMMANDS[name], env))
                    started[name] = now
                    _say(f"the {name} restarted (pid {children[index][1].pid})")
                continue
            if child.poll() is None:
                continue
            if now - started[name] >= STEADY_S:
                crashes[name] = 0
            wait = BACKOFF_S[min(crashes[name], len(BACKOFF_S) - 1)]
            crashes[name] += 1
            due[name] = now + wait
            _say(f"the {name} exited with code {child.returncode}; restarting in {wait:g} s")


async def prepare_demo(
    url: str, secret_key: str, data_dir: Path, console_callback: str | None = None
) -> bytes:
    """Migrate everything, seed the demo (with its tenant schema); returns the credentials JSON."""
    import msgspec

    from bpo.core.db import Database
    from bpo.core.migrations import migrate_all, upgrade_platform
    from bpo.demo import DemoCredentials, apply_demo_chart, seed_demo

    path = data_dir / "demo-credentials.json"
    known = None
    if path.exists():
        try:
            known = msgspec.json.decode(path.read_bytes(), type=DemoCredentials)
        except msgspec.DecodeError:
            known = None
    db = Database(url)
    try:
        await upgrade_platform(db.engine)
        async with db.sessionmaker.begin() as session:
            result = await seed_demo(session, secret_key, known, console_callback)
        await migrate_all(db.engine)  # every tenant schema, the demo's included
        await apply_demo_chart(db.engine, result.tenant)
    finally:
        await db.dispose()
    payload = msgspec.json.format(msgspec.json.encode(result.credentials), indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(payload + b"\n")
    return payload


def _wait_ready(
    base_url: str, children: list[tuple[str, subprocess.Popen[bytes]]], stop: threading.Event
) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and not stop.is_set():
        for name, child in children:
            if child.poll() is not None:
                _say(f"the {name} exited with code {child.returncode} while starting")
                return False
        try:
            with urllib.request.urlopen(f"{base_url}/health/ready", timeout=2) as response:  # noqa: S310  (our own loopback URL)
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(0.1)
    if not stop.is_set():
        _say(f"the API was not ready within {READY_TIMEOUT_S:g} s")
    return False


def _stop_children(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for _, child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _print_banner(settings: Settings, database_url: str, broker_url: str, seconds: float) -> None:
    url = settings.public_url
    creds = settings.data_dir / "demo-credentials.json"
    typer.echo(
        f"""
bpo is ready in {seconds:.1f} s

  API            {url}
  Console        {url}/console  (sign in as the provider admin below)
  API docs       {url}/schema  (Swagger UI: {url}/schema/swagger)
  OpenAPI        {url}/schema/openapi.json
  Health         {url}/health/ready
  Metrics        {url}/metrics

  Database       {redact_url(database_url)}
  Broker         {broker_url}
  Data           {settings.data_dir.resolve()}

  Demo credentials (also in {creds}):
{_indent(creds.read_text())}
Press Ctrl-C to stop.
""",
        err=False,
    )
    sys.stdout.flush()


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.strip().splitlines())


def _say(message: str) -> None:
    typer.echo(f"bpo: {message}", err=True)
