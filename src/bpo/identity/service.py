"""The authorization server's database side: what a request preloads for Authlib, what it
writes back, and the record of every issuance and refusal (all in the request's transaction).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, any_, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bpo.core.coalesce import Coalescer
from bpo.core.db import Database
from bpo.core.ids import uuid7
from bpo.identity import grants
from bpo.identity.clients import OAuthClient
from bpo.identity.keys import KeyRing
from bpo.identity.models import (
    ApiClient,
    AuthorizationCode,
    Membership,
    OAuthApp,
    RefreshToken,
    RevokedToken,
    TokenEvent,
    User,
)
from bpo.identity.scopes import USER_SCOPES, scopes_for_role
from bpo.identity.server import REFRESH_LIFETIME_S
from bpo.identity.tokens import InvalidToken, verify_access_token
from bpo.platform.tenants import service as tenants

if TYPE_CHECKING:
    from bpo.platform.models import Tenant

CODE_LIFETIME_S = 60


_clients, _apps = ApiClient.__table__, OAuthApp.__table__
TOKEN_EVENTS = cast(Table, TokenEvent.__table__)
_API_CLIENTS = select(
    _clients.c.client_id,
    _clients.c.tenant_id,
    _clients.c.scopes,
    _clients.c.secret_digest,
    _clients.c.previous_secret_digest,
    _clients.c.previous_secret_expires_at,
).where(
    _clients.c.client_id == any_(bindparam("client_ids")),
    _clients.c.status == "active",
    _clients.c.tenant_id.in_(tenants.active_tenant_ids()),
)
_APPS = select(
    _apps.c.client_id, _apps.c.scopes, _apps.c.secret_digest, _apps.c.redirect_uris
).where(_apps.c.client_id == any_(bindparam("client_ids")))


async def ensure_public_app(
    session: AsyncSession, client_id: str, name: str, redirect_uri: str
) -> bool:
    """The public sign-in app `client_id` exists and accepts `redirect_uri` (added beside the
    ones it has); True when something changed."""
    app = await session.get(OAuthApp, client_id)
    if app is None:
        session.add(OAuthApp(client_id=client_id, name=name, redirect_uris=[redirect_uri],
                             secret_digest=None, scopes=sorted(USER_SCOPES)))  # fmt: skip
        return True
    if redirect_uri in app.redirect_uris:
        return False
    app.redirect_uris = [*app.redirect_uris, redirect_uri]
    return True


async def load_client(
    db: AsyncSession | AsyncConnection, client_id: str | None, secret_key: str
) -> OAuthClient | None:
    """The named client: an active API client of an active tenant, or a sign-in app."""
    if not client_id or len(client_id) > 64:
        return None
    return (await load_clients(db, [client_id], secret_key)).get(client_id)


async def load_clients(
    db: AsyncSession | AsyncConnection, client_ids: list[str], secret_key: str
) -> dict[str, OAuthClient]:
    """Several clients by id, in one statement (two when some are sign-in apps): Core
    selects of the columns needed, for the token endpoint's hottest query."""
    params = {"client_ids": sorted(set(client_ids))}
    found = {
        row.client_id: OAuthClient(
            kind="api",
            client_id=row.client_id,
            tenant_id=row.tenant_id,
            scopes=tuple(row.scopes),
            secret_digest=row.secret_digest,
            previous_secret_digest=row.previous_secret_digest,
            previous_secret_expires_at=row.previous_secret_expires_at,
            secret_key=secret_key,
        )
        for row in await db.execute(_API_CLIENTS, params)
    }
    missing = sorted(set(client_ids) - found.keys())
    if missing:
        for app in await db.execute(_APPS, {"client_ids": missing}):
            found[app.client_id] = OAuthClient(
                kind="app",
                client_id=app.client_id,
                scopes=tuple(app.scopes),
                secret_digest=app.secret_digest,
                redirect_uris=tuple(app.redirect_uris),
                secret_key=secret_key,
            )
    return found


def client_loader(db: Database, secret_key: str) -> Coalescer[str, OAuthClient | None]:
    """`load_client` for concurrent token requests: one statement for all of them."""

    async def load(client_ids: list[str]) -> list[OAuthClient | None]:
        async with db.autocommit() as conn:
            found = await load_clients(conn, client_ids, secret_key)
        return [found.get(client_id) for client_id in client_ids]

    return Coalescer(load)


def token_event_writer(db: Database) -> Coalescer[dict[str, Any], None]:
    """`token_events` rows of concurrent token requests: one INSERT, one commit; each
    request answers only after the commit that holds its row."""

    async def write(rows: list[dict[str, Any]]) -> list[None]:
        async with db.autocommit() as conn:
            await record_token_events(conn, rows)
        return [None] * len(rows)

    return Coalescer(write)


# --- people ---------------------------------------------------------------------------


async def grantee_for(
    session: AsyncSession,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID | None,
    scope: str,
) -> grants.Grantee | None:
    """The user as they stand now, for `tenant_id` (None for staff); None when they may not
    sign in there any more (deactivated, membership ended, tenant suspended)."""
    user = await session.get(User, user_id)
    if user is None or user.status != "active":
        return None
    if tenant_id is None:
        if user.staff_role is None:
            return None
        allowed = scopes_for_role(user.staff_role)
        return grants.Grantee(user.id, None, user.staff_role, _narrow(scope, allowed))
    role = (
        await session.execute(
            select(Membership.role).where(
                Membership.user_id == user_id,
                Membership.tenant_id == tenant_id,
                Membership.status == "active",
                Membership.tenant_id.in_(tenants.active_tenant_ids()),
            )
        )
    ).scalar_one_or_none()
    if role is None:
        return None
    return grants.Grantee(user.id, tenant_id, None, _narrow(scope, scopes_for_role(role)))


def _narrow(scope: str, allowed: set[str]) -> str:
    return " ".join(sorted(set(scope.split()) & allowed))


# --- the token endpoint: preload, then write back ---------------------------------------


async def preload_token_request(
    session: AsyncSession, exchange: grants.Exchange, form: dict[str, str]
) -> None:
    """Load (and lock) the code or refresh token the request presents."""
    client = exchange.client
    if client is None or client.kind != "app":
        return
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code" and form.get("code"):
        await _preload_code(session, exchange, grants.digest(form["code"]))
    elif grant_type == "refresh_token" and form.get("refresh_token"):
        await _preload_refresh(session, exchange, grants.digest(form["refresh_token"]))


async def _preload_code(session: AsyncSession, exchange: grants.Exchange, code: bytes) -> None:
    # Locked like a refresh token (below): a code being exchanged right now is skipped.
    row = (
        await session.execute(
            select(AuthorizationCode).where(AuthorizationCode.code_digest == code).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None or exchange.client is None or row.client_id != exchange.client.client_id:
        return
    if row.used_at is not None:
        # A second use: revoke what the first one issued (RFC 6749 §4.1.2).
        await revoke_family_and_token(session, row.issued_family, row.issued_jti)
        return
    if row.expires_at <= datetime.now(UTC):
        return
    exchange.code = grants.CodeRecord(
        row.code_digest, row.client_id, row.redirect_uri, row.scope, row.code_challenge
    )
    exchange.user = await grantee_for(session, row.user_id, row.tenant_id, row.scope)


async def _preload_refresh(session: AsyncSession, exchange: grants.Exchange, token: bytes) -> None:
    # One use at a time: a request that finds the token locked by another in flight is
    # refused without waiting (no connection is held waiting on a lock); one that finds it
    # already rotated is a replay, and revokes the family.
    row = (
        await session.execute(
            select(RefreshToken)
            .where(RefreshToken.token_digest == token)
            .with_for_update(skip_locked=True)
        )
    ).scalar_one_or_none()
    if row is None or exchange.client is None or row.client_id != exchange.client.client_id:
        return
    if row.revoked_at is not None:
        return
    if row.rotated_at is not None:
        await revoke_family_and_token(session, row.family_id, None)
        return
    if row.expires_at <= datetime.now(UTC):
        return
    exchange.refresh = grants.RefreshRecord(
        row.token_digest, row.family_id, row.client_id, row.scope
    )
    exchange.user = await grantee_for(session, row.user_id, row.tenant_id, row.scope)


async def write_back(session: AsyncSession, exchange: grants.Exchange) -> None:
    """Persist what Authlib produced: the code's use, the rotation, the new refresh token."""
    issued = exchange.issued[0] if exchange.issued else None
    family = exchange.refresh.family_id if exchange.refresh else uuid.uuid4()
    now = datetime.now(UTC)
    if exchange.code_consumed and exchange.code is not None:
        await session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_digest == exchange.code.digest)
            .values(
                used_at=now,
                issued_jti=issued["_claims"]["jti"] if issued else None,
                issued_family=family if issued and "refresh_token" in issued else None,
            )
        )
    if exchange.refresh_rotated and exchange.refresh is not None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_digest == exchange.refresh.digest)
            .values(rotated_at=now)
        )
    if issued and "refresh_token" in issued and exchange.user is not None:
        user = exchange.user
        session.add(
            RefreshToken(
                token_digest=grants.digest(issued["refresh_token"]),
                family_id=family,
                client_id=issued["_claims"]["client_id"],
                user_id=user.user_id,
                tenant_id=user.tenant_id,
                scope=issued["scope"],
                expires_at=now + timedelta(seconds=REFRESH_LIFETIME_S),
            )
        )
        await session.flush()


async def save_codes(session: AsyncSession, exchange: grants.Exchange) -> None:
    """The codes the authorization endpoint issued: single use, valid for a minute."""
    expires = datetime.now(UTC) + timedelta(seconds=CODE_LIFETIME_S)
    for code in exchange.codes:
        grantee: grants.Grantee = code["grantee"]
        session.add(
            AuthorizationCode(
                code_digest=code["code_digest"],
                client_id=code["client_id"],
                user_id=grantee.user_id,
                tenant_id=grantee.tenant_id,
                redirect_uri=code["redirect_uri"],
                scope=code["scope"],
                code_challenge=code["code_challenge"],
                expires_at=expires,
            )
        )
    await session.flush()


# --- revocation -----------------------------------------------------------------------


async def revoke_family_and_token(
    session: AsyncSession, family_id: uuid.UUID | None, jti: str | None
) -> None:
    """Revoke a refresh-token family and an access token (by jti), if given."""
    now = datetime.now(UTC)
    if family_id is not None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    if jti is not None:
        await deny_jti(session, jti, int(time.time()) + 600)


async def deny_jti(session: AsyncSession, jti: str, expires_at: int) -> None:
    await session.execute(
        pg_insert(RevokedToken)
        .values(jti=jti, expires_at=datetime.fromtimestamp(expires_at, UTC))
        .on_conflict_do_nothing()
    )


async def revoke_user_refresh_tokens(
    session: AsyncSession, user_id: uuid.UUID, tenant_id: uuid.UUID | None = None
) -> None:
    """A deactivated user (or membership): their refresh tokens stop at once. Their access
    tokens stop too, because every request checks the user's standing."""
    condition = [RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)]
    if tenant_id is not None:
        condition.append(RefreshToken.tenant_id == tenant_id)
    await session.execute(
        update(RefreshToken).where(*condition).values(revoked_at=datetime.now(UTC))
    )


async def load_presented_token(
    session: AsyncSession, ring: KeyRing, issuer: str, token: str
) -> grants.TokenRecord | None:
    """A token sent to introspection or revocation, with its standing now."""
    if token.count(".") == 2:
        try:
            claims = verify_access_token(ring, token, issuer=issuer, audience=issuer)
        except InvalidToken:
            return None
        revoked = await session.get(RevokedToken, claims.jti)
        return grants.TokenRecord(
            kind="access_token",
            client_id=claims.client_id,
            active=revoked is None,
            expires_at=claims.expires_at,
            claims=claims.raw,
            jti=claims.jti,
        )
    row = await session.get(RefreshToken, grants.digest(token))
    if row is None:
        return None
    active = row.revoked_at is None and row.rotated_at is None
    claims_of_refresh = {"scope": row.scope, "sub": str(row.user_id)}
    if row.tenant_id is not None:
        claims_of_refresh["tenant"] = str(row.tenant_id)
    return grants.TokenRecord(
        kind="refresh_token",
        client_id=row.client_id,
        active=active,
        expires_at=int(row.expires_at.timestamp()),
        claims=claims_of_refresh,
        family_id=row.family_id,
    )


async def apply_revocation(session: AsyncSession, token: grants.TokenRecord) -> None:
    if token.kind == "access_token" and token.jti:
        await deny_jti(session, token.jti, token.expires_at)
    elif token.family_id is not None:
        await revoke_family_and_token(session, token.family_id, None)


# --- the record -----------------------------------------------------------------------


def token_event(
    *,
    pairs: list[tuple[str, str]],
    client_id: str | None,
    client: OAuthClient | None,
    issued: list[dict[str, Any]],
    error: str | None,
    ip: str | None,
    request_id: str | None,
) -> dict[str, Any]:
    """The `token_events` row for one token request: issued or refused, and why."""
    form = dict(pairs)
    claims = issued[0]["_claims"] if issued else {}
    return {
        "id": uuid7(),
        "result": "issued" if issued else "refused",
        "grant_type": (form.get("grant_type") or "")[:60] or None,
        "client_id": client.client_id if client else (client_id or "")[:64] or None,
        "tenant_id": client.tenant_id if client and client.tenant_id else _tenant_of(claims),
        "subject": claims.get("sub"),
        "scope": claims.get("scope") or (form.get("scope") or "")[:500] or None,
        "jti": claims.get("jti"),
        "error": error,
        "ip": ip,
        "request_id": request_id,
    }


async def record_token_events(
    db: AsyncSession | AsyncConnection, rows: list[dict[str, Any]]
) -> None:
    """Write the rows in the caller's transaction (a Core insert: no unit of work to flush)."""
    await db.execute(insert(TOKEN_EVENTS), rows)


async def record_sign_in(
    session: AsyncSession,
    *,
    client_id: str | None,
    grantee: grants.Grantee | None,
    error: str | None,
    ip: str | None,
    request_id: str | None,
) -> None:
    """The sign-in page's outcome: a code issued to a person, or a refusal (and why)."""
    session.add(
        TokenEvent(
            result="refused" if error else "issued",
            grant_type="authorization_code",
            client_id=(client_id or "")[:64] or None,
            tenant_id=grantee.tenant_id if grantee else None,
            subject=str(grantee.user_id) if grantee else None,
            scope=grantee.scope if grantee else None,
            error=error,
            ip=ip,
            request_id=request_id,
        )
    )


def _tenant_of(claims: dict[str, Any]) -> uuid.UUID | None:
    tenant = claims.get("tenant")
    return uuid.UUID(tenant) if tenant else None


async def active_tenant_choices(session: AsyncSession, user_id: uuid.UUID) -> list[Tenant]:
    """The tenants a user may sign in to (active membership, active tenant)."""
    ids = await session.scalars(
        select(Membership.tenant_id).where(
            Membership.user_id == user_id, Membership.status == "active"
        )
    )
    return await tenants.live_tenants(session, set(ids), active_only=True)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (
        await session.execute(select(User).where(User.email == email.strip().lower()))
    ).scalar_one_or_none()
