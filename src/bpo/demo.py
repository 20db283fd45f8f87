"""The demo that `bpo up` and `bpo demo` print: a provider admin, a client firm with its API
client, the sign-in app and the starter service catalog. It sits above the domains (beside
the CLI) because it puts several of them together."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bpo.core.security import (
    hash_password,
    new_client_secret,
    secret_digest,
    secret_matches,
    verify_password,
)
from bpo.identity.models import ApiClient, User
from bpo.identity.scopes import CLIENT_SCOPES
from bpo.identity.service import ensure_public_app
from bpo.platform.models import Tenant
from bpo.platform.tenants.service import create_tenant
from bpo.work.starter import seed_catalog

DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_TENANT_SLUG = "demo"
DEMO_CLIENT_ID = "demo-client"
DEMO_APP_ID = "demo-console"
DEMO_APP_REDIRECT = "http://127.0.0.1:8765/callback"


class DemoAdmin(msgspec.Struct):
    email: str
    password: str


class DemoTenant(msgspec.Struct):
    slug: str


class DemoClient(msgspec.Struct):
    client_id: str
    client_secret: str


class DemoCredentials(msgspec.Struct):
    """The shape of `<data dir>/demo-credentials.json`."""

    provider_admin: DemoAdmin
    tenant: DemoTenant
    client: DemoClient


@dataclass(frozen=True, slots=True)
class SeedResult:
    credentials: DemoCredentials
    tenant: Tenant
    changed: bool


async def seed_demo(
    session: AsyncSession,
    secret_key: str,
    known: DemoCredentials | None = None,
    console_callback: str | None = None,
) -> SeedResult:
    """Make sure the demo admin, tenant and client exist and that `known` still opens them.

    `console_callback` (`<public URL>/console/callback`) is added to the sign-in app's
    redirect URIs: the console bpo serves signs people in through that app.

    Secrets are stored only as hashes, so credentials from an earlier run are reused when
    they still verify; otherwise a fresh password or client secret replaces them.
    """
    changed = False
    admin = await session.scalar(select(User).where(User.email == DEMO_ADMIN_EMAIL))
    password = known.provider_admin.password if known else ""
    if admin is None or not verify_password(admin.password_hash, password):
        password = secrets.token_urlsafe(12)
        if admin is None:
            admin = User(email=DEMO_ADMIN_EMAIL, staff_role="staff_admin", password_hash="")
            session.add(admin)
        admin.password_hash = hash_password(password)
        changed = True

    tenant = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_TENANT_SLUG))
    if tenant is None:
        tenant = (await create_tenant(session, DEMO_TENANT_SLUG, "Demo Client Firm")).tenant
        changed = True

    client = await session.scalar(select(ApiClient).where(ApiClient.client_id == DEMO_CLIENT_ID))
    secret = known.client.client_secret if known else ""
    if client is None or not secret_matches(secret_key, secret, client.secret_digest):
        secret = new_client_secret()
        if client is None:
            client = ApiClient(
                tenant_id=tenant.id,
                client_id=DEMO_CLIENT_ID,
                name="Demo integration",
                scopes=sorted(CLIENT_SCOPES),
            )
            session.add(client)
        client.secret_digest = secret_digest(secret_key, secret)
        changed = True
    # A public app (PKCE only; RFC 8252 loopback redirect), also the console's sign-in app.
    if await ensure_public_app(session, DEMO_APP_ID, "Demo console", DEMO_APP_REDIRECT):
        changed = True
    if console_callback:
        await ensure_public_app(session, DEMO_APP_ID, "Demo console", console_callback)
    if await seed_catalog(session):
        changed = True
    await session.flush()

    credentials = DemoCredentials(
        provider_admin=DemoAdmin(email=DEMO_ADMIN_EMAIL, password=password),
        tenant=DemoTenant(slug=tenant.slug),
        client=DemoClient(client_id=DEMO_CLIENT_ID, client_secret=secret),
    )
    return SeedResult(credentials=credentials, tenant=tenant, changed=changed)


async def apply_demo_chart(engine: AsyncEngine, tenant: Tenant) -> int:
    """The demo firm's books: the small-business starter chart (accounts it lacks only)."""
    from bpo.core.tenancy import issue_tenant_context, tenant_session
    from bpo.ledger.accounts import apply_chart

    ctx = issue_tenant_context(tenant.id, tenant.slug)
    async with tenant_session(engine, ctx, "worker") as session:
        created, _ = await apply_chart(session, ctx, "system:demo", "small-business")
    return created
