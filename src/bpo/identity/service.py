"""Loading API clients for the token endpoint, and recording every issuance and refusal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.identity.models import TokenEvent
from bpo.identity.server import OAuthClient
from bpo.platform.models import ApiClient, Tenant


async def load_client(
    session: AsyncSession, client_id: str | None, secret_key: str
) -> OAuthClient | None:
    """The named client, if it exists, is active and its tenant is active."""
    if not client_id or len(client_id) > 64:
        return None
    row = (
        await session.execute(
            select(ApiClient)
            .join(Tenant, Tenant.id == ApiClient.tenant_id)
            .where(
                ApiClient.client_id == client_id,
                ApiClient.status == "active",
                Tenant.status == "active",
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    return OAuthClient(
        client_id=row.client_id,
        tenant_id=row.tenant_id,
        scopes=tuple(row.scopes),
        secret_digest=row.secret_digest,
        previous_secret_digest=row.previous_secret_digest,
        previous_secret_expires_at=row.previous_secret_expires_at,
        secret_key=secret_key,
    )


async def record_token_request(
    session: AsyncSession,
    *,
    pairs: list[tuple[str, str]],
    client: OAuthClient | None,
    issued: list[dict[str, Any]],
    error: str | None,
    ip: str | None,
    request_id: str | None,
) -> None:
    """One row per token request, in the request's transaction."""
    form = dict(pairs)
    claims = issued[0]["_claims"] if issued else {}
    session.add(
        TokenEvent(
            result="issued" if issued else "refused",
            grant_type=(form.get("grant_type") or "")[:60] or None,
            client_id=client.client_id if client else (form.get("client_id") or "")[:64] or None,
            tenant_id=client.tenant_id if client else None,
            subject=claims.get("sub"),
            scope=claims.get("scope") or (form.get("scope") or "")[:500] or None,
            jti=claims.get("jti"),
            error=error,
            ip=ip,
            request_id=request_id,
        )
    )
