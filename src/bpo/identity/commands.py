"""`bpo keys`: list and rotate the token signing keys."""

from __future__ import annotations

import typer

from bpo.core.db import Database
from bpo.identity.keys import LIVE_KEYS, rotate_keys
from bpo.platform.tenants.commands import run_with_database

keys = typer.Typer(help="Token signing keys (ES256): list and rotate.", no_args_is_help=True)


def _secret_key() -> str:
    from bpo.cli import fail, load_settings
    from bpo.stack import ensure_secret_key

    settings = load_settings()
    key = settings.secret_key or (ensure_secret_key(settings) if settings.embedded else None)
    if not key:
        fail("BPO_SECRET_KEY is not set: the private keys are sealed with it", code=2)
    assert key is not None
    return key


@keys.command("list")
def list_() -> None:
    """The live keys (next, active, previous)."""

    async def work(db: Database) -> list[str]:
        async with db.sessionmaker() as session:
            rows = (await session.scalars(LIVE_KEYS)).all()
        return [f"{row.status}\t{row.kid}\t{row.created_at:%Y-%m-%d %H:%M}" for row in rows]

    for line in run_with_database(work):
        typer.echo(line)


@keys.command("rotate")
def rotate() -> None:
    """next -> active, active -> previous, previous -> retired, and a new next key.

    No request fails: every process already trusts the next key, and tokens signed with
    the old active key stay valid until the following rotation (space rotations more than
    10 minutes apart, a token's longest life)."""
    secret_key = _secret_key()

    async def work(db: Database) -> str:
        async with db.sessionmaker.begin() as session:
            return await rotate_keys(session, secret_key)

    typer.echo(f"active key is now {run_with_database(work)}")
