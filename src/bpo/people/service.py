"""Members, invites, API clients and staff: the rules, whatever the route.

Every query names the tenant it works in, so another tenant's user, invite or client is
simply not found (404), never touched.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.security import PasswordWork, new_client_secret, secret_digest
from bpo.identity.grants import digest
from bpo.identity.scopes import CLIENT_SCOPES
from bpo.identity.service import revoke_user_refresh_tokens
from bpo.jobs.outbox import enqueue
from bpo.people.jobs import mail_invite, sealed_invite_token
from bpo.people.models import Invite, Membership, StaffAssignment
from bpo.platform.models import ApiClient, Tenant, User


def _not_found(what: str, ident: object) -> Problem:
    return Problem(404, "not-found", f"no {what} {ident}")


# --- members ---------------------------------------------------------------------------


async def list_members(
    session: AsyncSession, tenant_id: uuid.UUID
) -> list[tuple[Membership, User]]:
    rows = await session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant_id)
        .order_by(User.email)
    )
    return [(m, u) for m, u in rows]


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


# --- invites ---------------------------------------------------------------------------


async def create_invite(
    session: AsyncSession,
    *,
    email: str,
    role: str,
    hours: int,
    tenant_id: uuid.UUID | None,
    invited_by: uuid.UUID | None,
    secret_key: str,
) -> tuple[Invite, str]:
    """A one-time invite; a pending one for the same email and target is replaced. The token
    is mailed to the invited address (by a job, from this transaction's outbox)."""
    email = email.strip().lower()
    if tenant_id is not None:
        member = await session.scalar(
            select(Membership.status)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == tenant_id, User.email == email)
        )
        if member is not None:
            raise Problem(409, "conflict", f"{email} is already a member (status {member})")
    now = datetime.now(UTC)
    pending = await session.scalars(
        select(Invite).where(
            Invite.email == email,
            Invite.tenant_id.is_(None) if tenant_id is None else Invite.tenant_id == tenant_id,
            Invite.accepted_at.is_(None),
            Invite.revoked_at.is_(None),
        )
    )
    for old in pending:
        old.revoked_at = now
    token = secrets.token_urlsafe(32)
    invite = Invite(
        token_digest=digest(token),
        email=email,
        tenant_id=tenant_id,
        role=role,
        invited_by=invited_by,
        expires_at=now + timedelta(hours=hours),
    )
    session.add(invite)
    await session.flush()
    await session.refresh(invite)
    sealed = sealed_invite_token(secret_key, invite.id, token)
    await enqueue(session, mail_invite, str(invite.id), sealed, tenant=None)
    return invite, token


def invite_status(invite: Invite) -> str:
    if invite.accepted_at is not None:
        return "accepted"
    if invite.revoked_at is not None:
        return "revoked"
    return "expired" if invite.expires_at <= datetime.now(UTC) else "pending"


async def list_invites(session: AsyncSession, tenant_id: uuid.UUID | None) -> list[Invite]:
    target = Invite.tenant_id.is_(None) if tenant_id is None else Invite.tenant_id == tenant_id
    return list(await session.scalars(select(Invite).where(target).order_by(Invite.created_at)))


async def revoke_invite(
    session: AsyncSession, tenant_id: uuid.UUID | None, invite_id: uuid.UUID
) -> None:
    target = Invite.tenant_id.is_(None) if tenant_id is None else Invite.tenant_id == tenant_id
    invite = await session.scalar(select(Invite).where(Invite.id == invite_id, target))
    if invite is None:
        raise _not_found("invite", invite_id)
    if invite.accepted_at is None and invite.revoked_at is None:
        invite.revoked_at = datetime.now(UTC)
        await session.flush()


async def accept_invite(
    session: AsyncSession, passwords: PasswordWork, token: str, password: str, name: str | None
) -> tuple[User, Invite]:
    """Accepting sets the password of a new account; an existing account proves itself
    with its current password instead (an invite never resets a password)."""
    invite = await session.scalar(
        select(Invite).where(Invite.token_digest == digest(token)).with_for_update()
    )
    if invite is None or invite.revoked_at is not None:
        raise Problem(404, "not-found", "no such invite (it may have been revoked)")
    if invite.accepted_at is not None:
        raise Problem(409, "conflict", "this invite was already accepted")
    if invite.expires_at <= datetime.now(UTC):
        raise Problem(410, "gone", "this invite has expired; ask for a new one", title="Expired")
    user = await session.scalar(select(User).where(User.email == invite.email))
    if user is None:
        user = User(
            email=invite.email,
            name=name,
            password_hash=await passwords.hash(password),
        )
        session.add(user)
        await session.flush()
    elif not await passwords.verify(user.password_hash, password):
        raise Problem(403, "forbidden", "an account with this email exists: give its password")
    if invite.tenant_id is None:
        user.staff_role = invite.role
    else:
        await _join(session, user.id, invite.tenant_id, invite.role)
    invite.accepted_at = datetime.now(UTC)
    await session.flush()
    return user, invite


async def _join(session: AsyncSession, user_id: uuid.UUID, tenant_id: uuid.UUID, role: str) -> None:
    existing = await session.get(Membership, (user_id, tenant_id))
    if existing is None:
        session.add(Membership(user_id=user_id, tenant_id=tenant_id, role=role))
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


async def list_clients(session: AsyncSession, tenant_id: uuid.UUID) -> list[ApiClient]:
    rows = await session.scalars(
        select(ApiClient).where(ApiClient.tenant_id == tenant_id).order_by(ApiClient.created_at)
    )
    return list(rows)


async def create_client(
    session: AsyncSession, secret_key: str, tenant: Tenant | uuid.UUID, name: str, scopes: list[str]
) -> tuple[ApiClient, str]:
    _check_scopes(scopes)
    tenant_id = tenant if isinstance(tenant, uuid.UUID) else tenant.id
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
    users = list(
        await session.scalars(select(User).where(User.staff_role.is_not(None)).order_by(User.email))
    )
    slugs: dict[uuid.UUID, list[str]] = {user.id: [] for user in users}
    rows = await session.execute(
        select(StaffAssignment.user_id, Tenant.slug)
        .join(Tenant, Tenant.id == StaffAssignment.tenant_id)
        .where(StaffAssignment.user_id.in_(slugs))
        .order_by(Tenant.slug)
    )
    for user_id, slug in rows:
        slugs[user_id].append(slug)
    return [(user, slugs[user.id]) for user in users]


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


async def tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None or tenant.status == "deleting":
        raise _not_found("tenant", repr(slug))
    return tenant


async def assign(
    session: AsyncSession, user_id: uuid.UUID, slug: str, by: uuid.UUID | None
) -> None:
    await staff_member(session, user_id)
    tenant = await tenant_by_slug(session, slug)
    if await session.get(StaffAssignment, (user_id, tenant.id)) is None:
        session.add(StaffAssignment(user_id=user_id, tenant_id=tenant.id, assigned_by=by))
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:  # assigned concurrently: the same outcome
            pass


async def unassign(session: AsyncSession, user_id: uuid.UUID, slug: str) -> None:
    await staff_member(session, user_id)
    tenant = await tenant_by_slug(session, slug)
    assignment = await session.get(StaffAssignment, (user_id, tenant.id))
    if assignment is None:
        raise _not_found("assignment of this staff member to", repr(slug))
    await session.delete(assignment)
    await session.flush()


async def visible_tenants(session: AsyncSession, user_id: uuid.UUID, role: str) -> list[Tenant]:
    """Assigned tenants; every tenant for a staff admin."""
    query = select(Tenant).where(Tenant.status != "deleting").order_by(Tenant.slug)
    if role != "staff_admin":
        query = query.join(StaffAssignment, StaffAssignment.tenant_id == Tenant.id).where(
            StaffAssignment.user_id == user_id
        )
    return list(await session.scalars(query))
