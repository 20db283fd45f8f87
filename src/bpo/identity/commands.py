"""`bpo keys` (list and rotate the token signing keys) and `bpo apps` (sign-in apps)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from bpo.core.commands import ensure_secret_key, fail, load_settings
from bpo.core.db import Database
from bpo.core.security import new_client_secret, secret_digest
from bpo.embedded import run_with_database
from bpo.identity.keys import LIVE_KEYS, rotate_keys
from bpo.identity.models import OAuthApp
from bpo.identity.scopes import USER_SCOPES

keys = typer.Typer(help="Token signing keys (ES256): list and rotate.", no_args_is_help=True)


def _secret_key() -> str:
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


apps = typer.Typer(
    help="Sign-in apps (authorization code + PKCE): create and list.", no_args_is_help=True
)


@apps.command("create")
def create_app_(
    client_id: Annotated[str, typer.Argument(help="The app's client_id, e.g. acme-portal")],
    redirect_uri: Annotated[
        list[str], typer.Option("--redirect-uri", help="Compared exactly; repeatable")
    ],
    name: Annotated[str, typer.Option(help="Shown on the sign-in page")] = "",
    confidential: Annotated[bool, typer.Option(help="Give it a secret (printed once)")] = False,
) -> None:
    """Register an app people sign in through. Public apps (no secret) rely on PKCE alone."""
    secret_key = _secret_key() if confidential else ""
    secret = new_client_secret() if confidential else None

    async def work(db: Database) -> None:
        async with db.sessionmaker.begin() as session:
            session.add(
                OAuthApp(
                    client_id=client_id,
                    name=name or client_id,
                    redirect_uris=redirect_uri,
                    secret_digest=secret_digest(secret_key, secret) if secret else None,
                    scopes=sorted(USER_SCOPES),
                )
            )

    run_with_database(work)
    typer.echo(f"app {client_id} registered" + (f"; client_secret {secret}" if secret else ""))


@apps.command("list")
def list_apps() -> None:
    """Registered sign-in apps and their redirect URIs."""

    async def work(db: Database) -> list[str]:
        async with db.sessionmaker() as session:
            rows = (await session.scalars(select(OAuthApp).order_by(OAuthApp.client_id))).all()
        kind = {True: "public", False: "confidential"}
        return [
            f"{row.client_id}\t{kind[row.secret_digest is None]}\t{' '.join(row.redirect_uris)}"
            for row in rows
        ]

    for line in run_with_database(work):
        typer.echo(line)
