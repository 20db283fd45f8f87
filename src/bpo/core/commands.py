"""Plumbing the `bpo` commands share: settings from the environment, one-line failures,
a reachable database and the secret key. No domain here: each domain's commands
(`bpo tenants`, `bpo keys`, ...) build on it, and `bpo.cli` mounts them. The database a
command runs against (configured, or the embedded one) is `bpo.embedded`'s."""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import NoReturn

import typer

from bpo.settings import Settings, SettingsError


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr, then exit non-zero."""
    typer.echo(f"bpo: {message}", err=True)
    raise typer.Exit(code)


def load_settings(**overrides: str | int | None) -> Settings:
    env = dict(os.environ)
    for name, value in overrides.items():
        if value is not None:
            env[f"BPO_{name.upper()}"] = str(value)
    try:
        return Settings.from_env(env)
    except SettingsError as exc:
        fail(str(exc), code=2)


def check_database(url: str, timeout: float) -> None:
    from bpo.core.db import can_connect, redact_url

    reason = asyncio.run(can_connect(url, timeout))
    if reason is not None:
        fail(f"cannot reach the database at {redact_url(url)}: {reason}")


def ensure_secret_key(settings: Settings) -> str:
    """BPO_SECRET_KEY, or (outside production) a key kept in the data dir."""
    if settings.secret_key is not None:
        return settings.secret_key
    path = settings.data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(key)
    return key
