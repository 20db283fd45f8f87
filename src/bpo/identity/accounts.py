"""Accounts and access, whatever the route: a firm's members, its API clients, the
provider's staff and their assignments, and what invites need of them. Other domains reach
users, clients, memberships and staff through these functions, never their tables.

Every query names the tenant it works in, so another tenant's user or client is simply not
found (404), never touched.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.pagination import key_cursor, key_cursor_parts, page_of, uuid_cursor
from bpo.core.security import PasswordWork, new_client_secret, secret_digest
from bpo.identity.models import ApiClient, Membership, StaffAssignment, User
from bpo.identity.scopes import CLIENT_SCOPES
from bpo.identity.service import revoke_user_refresh_tokens
from bpo.platform.tenants import service as tenants

if TYPE_CHECKING:
    from bpo.platform.models import Tenant


def _not_found(what: str, ident: object) -> Problem:
    return Problem(404, "not-found", f"no {what} {ident}")


# --- members of a firm --------------------------------------------------------------------


async def list_members(
    session: AsyncSession, tenant_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[tuple[Membership, User]], str | None]:
    """By email, `limit` at a time; the cursor is the last shown (email, user id)."""
    query = (
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant_id)
    )
    if cursor is not None:
        email, user_id = key_cursor_parts(cursor, 2)
        query = query.where(tuple_(User.email, User.id) > (email, uuid_cursor(user_id)))
    rows = [(m, u) for m, u in await session.execute(
        query.order_by(User.email, User.id).limit(limit + 1))]  # fmt: skip
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1][1]
    return rows[:limit], key_cursor(last.email, last.id)


async def update_member(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str | None,
    status: str | None,
) -> tuple[Membership, User]:
    row = (
        await session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
            .with_for_update(of=Membership)
        )
    ).first()
    if row is None:
        raise _not_found("member", user_id)
    membership, user = row
    was_admin = membership.role == "tenant_admin" and membership.status == "active"
    membership.role = role or membership.role
    membership.status = status or membership.status
    stays_admin = membership.role == "tenant_admin" and membership.status == "active"
    if was_admin and not stays_admin:
        await _keep_one_admin(session, tenant_id)
    if membership.status == "deactivated":
        await revoke_user_refresh_tokens(session, user_id, tenant_id)
    await session.flush()
    return membership, user


async def _keep_one_admin(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    await session.flush()
    admins = await session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(
            Membership.tenant_id == tenant_id,
            Membership.role == "tenant_admin",
            Membership.status == "active",
        )
    )
    if not admins:
        raise Problem(
            409, "conflict", "a firm needs at least one active tenant_admin; appoint another first"
        )


# --- what an invite needs -----------------------------------------------------------------


async def person(session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False) -> User:
    """A person's own account (for /v1/me and their second factor)."""
    return await session.get_one(User, user_id, with_for_update=lock)


async def member_role(
    session: AsyncSession, user_id: uuid.UUID, tenant_id: uuid.UUID
) -> str | None:
    """The person's role in the firm, while their membership is active."""
    role: str | None = await session.scalar(
        select(Membership.role).where(
            Membership.user_id == user_id,
            Membership.tenant_id == tenant_id,
            Membership.status == "active",
        )
    )
    return role


async def member_status(session: AsyncSession, tenant_id: uuid.UUID, email: str) -> str | None:
    """The membership status of `email` in the tenant, or None when not a member."""
    status: str | None = await session.scalar(
        select(Membership.status)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant_id, User.email == email)
    )
    return status


async def account_for(
    session: AsyncSession, passwords: PasswordWork, email: str, password: str, name: str | None
) -> User:
    """A new account with `password`; an existing one must prove itself with its password
    (accepting an invite never resets a password)."""
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=name, password_hash=await passwords.hash(password))
        session.add(user)
        await session.flush()
    elif not await passwords.verify(user.password_hash, password):
        raise Problem(403, "forbidden", "an account with this email exists: give its password")
    return user


async def grant_role(
    session: AsyncSession, user: User, tenant_id: uuid.UUID | None, role: str
) -> None:
    """Make `user` a member of the tenant with `role`, or the provider's staff (no tenant)."""
    if tenant_id is None:
        user.staff_role = role
        return
    existing = await session.get(Membership, (user.id, tenant_id))
    if existing is None:
        session.add(Membership(user_id=user.id, tenant_id=tenant_id, role=role))
    else:
        existing.role, existing.status = role, "active"


# --- API clients -----------------------------------------------------------------------


def _check_scopes(scopes: list[str]) -> None:
    unknown = sorted(set(scopes) - set(CLIENT_SCOPES))
    if unknown:
        raise Problem(
            422,
            "validation-failed",
            f"unknown or not allowed for API clients: {', '.join(unknown)}",
            errors=[{"pointer": "/scopes", "detail": f"allowed: {', '.join(CLIENT_SCOPES)}"}],
        )


async def list_clients(
    session: AsyncSession, tenant_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[ApiClient], str | None]:
    """Oldest first (ids are time-ordered), `limit` at a time."""
    query = select(ApiClient).where(ApiClient.tenant_id == tenant_id)
    after = uuid_cursor(cursor)
    if after is not None:
        query = query.where(ApiClient.id > after)
    rows = list(await session.scalars(query.order_by(ApiClient.id).limit(limit + 1)))
    return page_of(rows, limit)


async def create_client(
    session: AsyncSession, secret_key: str, tenant_id: uuid.UUID, name: str, scopes: list[str]
) -> tuple[ApiClient, str]:
    _check_scopes(scopes)
    secret = new_client_secret()
    client = ApiClient(
        tenant_id=tenant_id,
        client_id=f"bpo_{secrets.token_hex(12)}",
        name=name,
        scopes=sorted(set(scopes)),
        secret_digest=secret_digest(secret_key, secret),
    )
    session.add(client)
    await session.flush()
    await session.refresh(client)
    return client, secret


async def _client(session: AsyncSession, tenant_id: uuid.UUID, client_id: str) -> ApiClient:
    client = await session.scalar(
        select(ApiClient)
        .where(ApiClient.tenant_id == tenant_id, ApiClient.client_id == client_id)
        .with_for_update()
    )
    if client is None:
        raise _not_found("API client", client_id)
    return client


async def rotate_client(
    session: AsyncSession, secret_key: str, tenant_id: uuid.UUID, client_id: str, overlap_s: int
) -> tuple[ApiClient, str]:
    """A new secret; the old one keeps working for the overlap window, then stops."""
    client = await _client(session, tenant_id, client_id)
    secret = new_client_secret()
    client.previous_secret_digest = client.secret_digest if overlap_s else None
    client.previous_secret_expires_at = (
        datetime.now(UTC) + timedelta(seconds=overlap_s) if overlap_s else None
    )
    client.secret_digest = secret_digest(secret_key, secret)
    await session.flush()
    return client, secret


async def delete_client(session: AsyncSession, tenant_id: uuid.UUID, client_id: str) -> None:
    """Its tokens stop at once: every request checks that the client still exists."""
    await session.delete(await _client(session, tenant_id, client_id))
    await session.flush()


# --- staff -----------------------------------------------------------------------------


async def list_staff(session: AsyncSession) -> list[tuple[User, list[str]]]:
    """Staff members and the slugs of the tenants they are assigned to."""
    users = list(
        await session.scalars(select(User).where(User.staff_role.is_not(None)).order_by(User.email))
    )
    assigned = (
        await session.execute(
            select(StaffAssignment.user_id, StaffAssignment.tenant_id).where(
                StaffAssignment.user_id.in_([user.id for user in users])
            )
        )
    ).all()
    slug_of = await tenants.slugs_of(session, {tenant_id for _, tenant_id in assigned})
    slugs: dict[uuid.UUID, list[str]] = {user.id: [] for user in users}
    for user_id, tenant_id in assigned:
        if tenant_id in slug_of:
            slugs[user_id].append(slug_of[tenant_id])
    return [(user, sorted(slugs[user.id])) for user in users]


async def staff_role_of(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    """The user's staff role (None: no such user, or not provider staff)."""
    role: str | None = await session.scalar(select(User.staff_role).where(User.id == user_id))
    return role


async def staff_member(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id, with_for_update=True)
    if user is None or user.staff_role is None:
        raise _not_found("staff member", user_id)
    return user


async def update_staff(
    session: AsyncSession, user_id: uuid.UUID, role: str | None, status: str | None
) -> User:
    """A deactivated staff member's tokens stop at once (every request checks the user)."""
    user = await staff_member(session, user_id)
    user.staff_role = role or user.staff_role
    user.status = status or user.status
    if user.status != "active":
        await revoke_user_refresh_tokens(session, user.id)
    await session.flush()
    return user


async def assign(
    session: AsyncSession, user_id: uuid.UUID, slug: str, by: uuid.UUID | None
) -> None:
    await staff_member(session, user_id)
    tenant = await tenants.live_tenant(session, slug)
    if await session.get(StaffAssignment, (user_id, tenant.id)) is None:
        session.add(StaffAssignment(user_id=user_id, tenant_id=tenant.id, assigned_by=by))
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:  # assigned concurrently: the same outcome
            pass


async def unassign(session: AsyncSession, user_id: uuid.UUID, slug: str) -> None:
    await staff_member(session, user_id)
    tenant = await tenants.live_tenant(session, slug)
    assignment = await session.get(StaffAssignment, (user_id, tenant.id))
    if assignment is None:
        raise _not_found("assignment of this staff member to", repr(slug))
    await session.delete(assignment)
    await session.flush()


async def visible_tenants(session: AsyncSession, user_id: uuid.UUID, role: str) -> list[Tenant]:
    """Assigned tenants; every tenant for a staff admin."""
    if role == "staff_admin":
        return await tenants.live_tenants(session)
    ids = await session.scalars(
        select(StaffAssignment.tenant_id).where(StaffAssignment.user_id == user_id)
    )
    return await tenants.live_tenants(session, set(ids))
