"""Who is calling, and may they: one guard per route, declaring its scopes and roles.

`requires("work:read", roles=TENANT_STAFF)` verifies the bearer token (RFC 6750), then asks
the database, in one statement, what the caller is *now*: whether the token's `jti` was
revoked, whether the client, user, membership or staff assignment is still active, and the
caller's current role. So a deactivated user's or a deleted client's tokens stop at once,
and a role change counts from the next request.

On `/v1/tenants/{slug}/...` the same statement decides whether the token grants that tenant
(its client's tenant, the user's membership, a staff assignment; every tenant for
`staff_admin`). A tenant the token does not grant is a 404, exactly like a tenant that does
not exist, so tenants cannot be enumerated.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy import text

from bpo.core.db import Database
from bpo.core.errors import Problem
from bpo.core.idempotency import claim as claim_idempotency_key
from bpo.core.tenancy import TenantContext, issue_tenant_context
from bpo.identity.keys import KeyRing
from bpo.identity.standing import StandingCache
from bpo.identity.tokens import AccessClaims, InvalidToken, verify_access_token

Kind = Literal["client", "user", "staff"]
TENANT_ROLES = ("tenant_admin", "tenant_member")
STAFF_ROLES = ("staff", "staff_admin")
TENANT_ADMINS = ("tenant_admin", "staff_admin")
TENANT_STAFF = ("staff", "staff_admin")
ANY_ROLE: tuple[str, ...] = ()
PUBLIC = "public"  # handler.opt key of routes that need no token (a short, tested list)
# ASGI scope key of the console's in-process calls (bpo.console.api): a scope key, which no
# request from the network can carry, unlike a header.
CONSOLE_CALL = "bpo.console_call"


@dataclass(frozen=True, slots=True)
class Access:
    """What a route requires: every scope listed, and one of the roles (any when empty)."""

    scopes: tuple[str, ...]
    roles: tuple[str, ...]
    tenant_bound: bool  # a /v1/tenants/{slug}/... route: the token must grant the tenant
    # Open while the tenant is suspended: billing, so a firm suspended for an unpaid
    # invoice can still see it and pay.
    while_suspended: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of this request, as the database sees them now."""

    kind: Kind
    subject: str
    client_id: str
    scopes: frozenset[str]
    role: str | None  # client, tenant_admin, tenant_member, staff, staff_admin
    user_id: uuid.UUID | None
    jti: str
    expires_at: int
    tenant: TenantContext | None = None
    token_tenant: uuid.UUID | None = None  # the firm a user's token is bound to, if any


async def ring_of(state: State) -> KeyRing:
    ring: KeyRing | None = state.get("key_ring")
    if ring is None:
        raise Problem(503, "service-unavailable", "signing keys need BPO_SECRET_KEY to be set")
    return await ring.fresh(state.db.engine)


class VerifiedTokens:
    """Signature checks cached per token until it expires (a few hundred kept per process).

    The cache only spares the cryptography: the key must still be in the ring, and the
    revocation and status checks run on every request regardless."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._claims: OrderedDict[str, tuple[str, AccessClaims]] = OrderedDict()

    def verify(self, ring: KeyRing, token: str, issuer: str, now: float) -> AccessClaims:
        hit = self._claims.get(token)
        if hit is not None and hit[0] in ring.public_keys and hit[1].expires_at > now:
            return hit[1]
        claims = verify_access_token(ring, token, issuer=issuer, audience=issuer, now=now)
        kid = _kid_of(token)
        self._claims[token] = (kid, claims)
        if len(self._claims) > self.size:
            self._claims.popitem(last=False)
        return claims


def _kid_of(token: str) -> str:
    segment = token.split(".", 1)[0]
    header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return str(header["kid"])


def requires(
    *scopes: str,
    roles: tuple[str, ...] = ANY_ROLE,
    tenant_bound: bool = True,
    while_suspended: bool = False,
) -> Any:
    """The guard of one route: `guards=[requires("work:read", roles=TENANT_ADMINS)]`."""
    access = Access(tuple(scopes), tuple(roles), tenant_bound, while_suspended)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.scope.get("method") == "OPTIONS":
            return  # the framework's answer about the path; preflights carry no token
        await authorize(connection, access)

    guard.access = access  # type: ignore[attr-defined]  # read by the route-walk test
    return guard


# The two guards most routes use: a firm's admins on its tenant routes, the provider's.
TENANT_ADMIN = requires("admin", roles=TENANT_ADMINS)
STAFF_ADMIN = requires("admin", roles=("staff_admin",), tenant_bound=False)
# A firm's admins on its billing routes, which stay open while the tenant is suspended.
TENANT_BILLING = requires("admin", roles=TENANT_ADMINS, while_suspended=True)


async def authorize(connection: ASGIConnection[Any, Any, Any, Any], access: Access) -> Principal:
    state = connection.app.state
    token = bearer_token(connection.headers.get("authorization"))
    ring = await ring_of(state)
    cache: VerifiedTokens = state.verified_tokens
    try:
        claims = cache.verify(ring, token, state.settings.issuer, time.time())
    except InvalidToken as exc:
        raise _unauthorized(exc.reason) from exc
    slug = connection.path_params.get("slug") if access.tenant_bound else None
    principal = await load_principal(
        state.db, claims, slug, access.while_suspended, state.get("standing")
    )
    if access.roles and principal.role not in access.roles:
        raise Problem(
            403,
            "forbidden",
            f"this needs one of the roles {', '.join(access.roles)}"
            f" (the caller is {principal.role or 'without a role'})",
        )
    missing = [scope for scope in access.scopes if scope not in principal.scopes]
    if missing:
        raise Problem(
            403,
            "insufficient-scope",
            f"the token lacks the scope {' '.join(missing)}",
            headers={"WWW-Authenticate": _insufficient(missing)},
        )
    connection.state.principal = principal
    # Provider staff working a firm's queue are the provider's calls, not the firm's; a
    # firm's admins looking at the console are not making API calls either.
    billed = (
        None
        if principal.kind == "staff" or connection.scope.get(CONSOLE_CALL)
        else (principal.tenant.tenant_id if principal.tenant else claims.tenant)
    )
    if billed is not None:  # counted in memory, written each second; over the plan: 429
        state.api_calls.count(billed)
    # Only now, with the caller proven and allowed here, may a POST's key be claimed or replayed.
    await claim_idempotency_key(connection, f"{principal.client_id}:{principal.subject}")
    return principal


def _insufficient(missing: list[str]) -> str:
    return f'Bearer error="insufficient_scope", scope="{" ".join(missing)}"'


def bearer_token(header: str | None) -> str:
    if not header:
        raise Problem(
            401,
            "unauthorized",
            "this needs an access token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="bpo"'},
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("the Authorization header must be: Bearer <token>")
    return token


def _unauthorized(reason: str) -> Problem:
    safe = reason.replace('"', "'")
    return Problem(
        401,
        "invalid-token",
        f"the access token is refused: {reason}",
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{safe}"'},
    )


def kind_of(claims: AccessClaims) -> Kind:
    if claims.staff_role is not None:
        return "staff"
    return "client" if claims.subject == claims.client_id else "user"


# One statement per request. `active`: the client, or the user (and, for a tenant-bound
# user token, their membership) still stands; `role`: the caller's role here (NULL on a
# tenant route: the token does not grant this tenant).
_ACTIVE = {
    "client": """EXISTS (SELECT 1 FROM platform.api_clients c
        WHERE c.client_id = :client_id AND c.status = 'active'
          AND c.tenant_id = CAST(:token_tenant AS uuid))""",
    "user": """EXISTS (SELECT 1 FROM platform.users u
        WHERE u.id = CAST(:user_id AS uuid) AND u.status = 'active')
      AND (CAST(:token_tenant AS uuid) IS NULL OR EXISTS (SELECT 1 FROM platform.memberships m
        WHERE m.user_id = CAST(:user_id AS uuid) AND m.status = 'active'
          AND m.tenant_id = CAST(:token_tenant AS uuid)))""",
    "staff": """EXISTS (SELECT 1 FROM platform.users u
        WHERE u.id = CAST(:user_id AS uuid) AND u.status = 'active'
          AND u.staff_role IS NOT NULL)""",
}
_TENANT_ROLE = {
    "client": "CASE WHEN t.id = CAST(:token_tenant AS uuid) THEN 'client' END",
    "user": """(SELECT m.role FROM platform.memberships m
        WHERE m.user_id = CAST(:user_id AS uuid) AND m.tenant_id = t.id AND m.status = 'active'
          AND t.id = CAST(:token_tenant AS uuid))""",
    "staff": """(SELECT u.staff_role FROM platform.users u
        WHERE u.id = CAST(:user_id AS uuid) AND (u.staff_role = 'staff_admin' OR EXISTS (
          SELECT 1 FROM platform.staff_assignments a
          WHERE a.user_id = u.id AND a.tenant_id = t.id)))""",
}
_PLATFORM_ROLE = {
    "client": "'client'",
    "user": "CAST(NULL AS text)",
    "staff": "(SELECT u.staff_role FROM platform.users u WHERE u.id = CAST(:user_id AS uuid))",
}
_REVOKED = "EXISTS (SELECT 1 FROM platform.revoked_tokens r WHERE r.jti = :jti)"
# Fixed fragments from above, no user text: every value is a bound parameter.
_TENANT_ACCESS = {
    kind: text(
        f"""SELECT {_REVOKED} AS revoked, {_ACTIVE[kind]} AS active,
              t.id, t.status, {_TENANT_ROLE[kind]} AS role
            FROM (SELECT 1) AS one
            LEFT JOIN platform.tenants t ON t.slug = :slug AND t.status <> 'deleting'"""  # noqa: S608
    )
    for kind in _ACTIVE
}
_PLATFORM_ACCESS = {
    kind: text(
        f"SELECT {_REVOKED} AS revoked, {_ACTIVE[kind]} AS active, {_PLATFORM_ROLE[kind]} AS role"
    )
    for kind in _ACTIVE
}


async def load_principal(
    db: Database,
    claims: AccessClaims,
    slug: str | None,
    while_suspended: bool = False,
    standing: StandingCache | None = None,
) -> Principal:
    """The caller as the database sees them now (or as `standing` remembers it, emptied at
    every change of access); refusals as problems (401, 403, 404)."""
    kind = kind_of(claims)
    user_id = _user_id(claims, kind)
    params = {
        "jti": claims.jti,
        "client_id": claims.client_id,
        "user_id": str(user_id) if user_id else None,
        "token_tenant": str(claims.tenant) if claims.tenant else None,
        "slug": slug,
    }
    key = (kind, claims.jti, claims.client_id, params["user_id"], params["token_tenant"], slug)
    row = standing.get(key) if standing is not None else None
    if row is None:
        generation = standing.generation if standing is not None else 0
        statement = (_TENANT_ACCESS if slug is not None else _PLATFORM_ACCESS)[kind]
        async with db.autocommit() as conn:
            row = (await conn.execute(statement, params)).one()
        if standing is not None:
            standing.put(key, row, generation)
    if row.revoked:
        raise _unauthorized("the token was revoked")
    if not row.active:
        raise _unauthorized("the token's client, user or membership is no longer active")
    tenant = None
    if slug is not None:
        if row.id is None or row.role is None:  # no such tenant, or not granted: one answer
            raise Problem(404, "not-found", f"no tenant {slug!r}")
        if row.status == "suspended" and not while_suspended:
            raise Problem(
                403,
                "tenant-suspended",
                f"tenant {slug!r} is suspended; contact the provider"
                f" (its billing routes, /v1/tenants/{slug}/billing/..., stay open)",
                title="The tenant is suspended",
            )
        tenant = issue_tenant_context(row.id, slug)
    return Principal(
        kind=kind,
        subject=claims.subject,
        client_id=claims.client_id,
        scopes=claims.scopes,
        role=row.role or None,
        user_id=user_id,
        jti=claims.jti,
        expires_at=claims.expires_at,
        tenant=tenant,
        token_tenant=claims.tenant,
    )


def _user_id(claims: AccessClaims, kind: Kind) -> uuid.UUID | None:
    if kind == "client":
        return None
    try:
        return uuid.UUID(claims.subject)
    except ValueError as exc:
        raise _unauthorized("malformed subject") from exc
