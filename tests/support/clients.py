"""API clients for tests, stored as the service stores them (HMAC digest of the secret)."""

from __future__ import annotations

from bpo.core.db import Database
from bpo.core.security import new_client_secret, secret_digest
from bpo.core.tenancy import TenantContext
from bpo.identity.models import ApiClient
from tests.conftest import TEST_SECRET_KEY


async def make_client(
    db: Database, tenant: TenantContext, client_id: str, scopes: list[str]
) -> str:
    """Register `client_id` for `tenant`; returns its secret."""
    secret = new_client_secret()
    async with db.sessionmaker.begin() as session:
        session.add(
            ApiClient(
                tenant_id=tenant.tenant_id,
                client_id=client_id,
                name=client_id,
                scopes=scopes,
                secret_digest=secret_digest(TEST_SECRET_KEY, secret),
            )
        )
    return secret
