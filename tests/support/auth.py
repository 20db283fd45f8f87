"""People, clients and their access tokens for tests, stored as the service stores them.

Tokens are signed with the database's key ring, exactly as the token endpoint signs them;
tests of the token endpoint itself go through HTTP (test_oauth_*.py).
"""

from __future__ import annotations

import uuid

from bpo.core.db import Database
from bpo.core.security import hash_password
from bpo.core.tenancy import TenantContext
from bpo.identity.keys import KeyRing
from bpo.identity.models import Membership, StaffAssignment, User
from bpo.identity.scopes import CLIENT_SCOPES, scopes_for_role
from bpo.identity.tokens import issue_access_token
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.clients import make_client

PASSWORD = "correct horse battery staple"
_HASH: list[str] = []


def password_hash() -> str:
    if not _HASH:
        _HASH.append(hash_password(PASSWORD))
    return _HASH[0]


async def ring(db: Database) -> KeyRing:
    loaded = KeyRing(TEST_SECRET_KEY)
    await loaded.load(db.engine)
    return loaded


async def make_user(
    db: Database,
    email: str,
    *,
    tenants: dict[TenantContext, str] | None = None,
    staff_role: str | None = None,
    assigned: list[TenantContext] | None = None,
) -> uuid.UUID:
    """A user with `PASSWORD`: member of `tenants` ({tenant: role}), or staff."""
    async with db.sessionmaker.begin() as session:
        user = User(email=email, password_hash=password_hash(), staff_role=staff_role)
        session.add(user)
        await session.flush()
        for tenant, role in (tenants or {}).items():
            session.add(Membership(user_id=user.id, tenant_id=tenant.tenant_id, role=role))
        for tenant in assigned or []:
            session.add(StaffAssignment(user_id=user.id, tenant_id=tenant.tenant_id))
        return user.id


async def user_token(
    db: Database,
    settings: Settings,
    user_id: uuid.UUID,
    *,
    tenant: TenantContext | None = None,
    staff_role: str | None = None,
    role: str = "tenant_member",
    scopes: set[str] | None = None,
) -> str:
    granted = scopes if scopes is not None else scopes_for_role(staff_role or role)
    token, _ = issue_access_token(
        await ring(db),
        issuer=settings.issuer,
        audience=settings.issuer,
        subject=str(user_id),
        client_id="bpo-console",
        scope=" ".join(sorted(granted)),
        tenant=tenant.tenant_id if tenant else None,
        staff_role=staff_role,
    )
    return token


async def client_token(
    db: Database, settings: Settings, tenant: TenantContext, scopes: list[str] | None = None
) -> str:
    """A new API client of `tenant` and a token for it (as client credentials would issue)."""
    client_id = f"test-{uuid.uuid4().hex[:10]}"
    granted = scopes if scopes is not None else list(CLIENT_SCOPES)
    await make_client(db, tenant, client_id, granted)
    token, _ = issue_access_token(
        await ring(db),
        issuer=settings.issuer,
        audience=settings.issuer,
        subject=client_id,
        client_id=client_id,
        scope=" ".join(granted),
        tenant=tenant.tenant_id,
    )
    return token


async def staff_admin_token(db: Database, settings: Settings) -> str:
    user_id = await make_user(
        db, f"admin-{uuid.uuid4().hex[:8]}@provider.example", staff_role="staff_admin"
    )
    return await user_token(db, settings, user_id, staff_role="staff_admin")


async def admin_of(db: Database, settings: Settings, tenant: TenantContext) -> dict[str, str]:
    """Headers of a new tenant admin of `tenant` (a user token with the admin role)."""
    user_id = await make_user(db, f"admin@{tenant.slug}.example", tenants={tenant: "tenant_admin"})
    return bearer(await user_token(db, settings, user_id, tenant=tenant, role="tenant_admin"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
