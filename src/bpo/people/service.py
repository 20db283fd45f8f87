"""Invites: the rules, whatever the route. A firm's admins invite members, the provider's
admins invite staff; the token reaches the invited address by mail. Accounts and roles are
identity's, reached through `identity.accounts`.

Every query names the tenant it works in, so another tenant's invite is simply not found
(404), never touched.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.pagination import page_of, uuid_cursor
from bpo.core.security import PasswordWork
from bpo.core.security import token_digest as digest
from bpo.identity import accounts
from bpo.jobs.outbox import enqueue
from bpo.people.jobs import mail_invite, sealed_invite_token
from bpo.people.models import Invite

if TYPE_CHECKING:
    from bpo.identity.models import User


def _not_found(what: str, ident: object) -> Problem:
    return Problem(404, "not-found", f"no {what} {ident}")


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
        member = await accounts.member_status(session, tenant_id, email)
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


async def list_invites(
    session: AsyncSession, tenant_id: uuid.UUID | None, limit: int, cursor: str | None
) -> tuple[list[Invite], str | None]:
    """Oldest first (ids are time-ordered), `limit` at a time."""
    target = Invite.tenant_id.is_(None) if tenant_id is None else Invite.tenant_id == tenant_id
    query = select(Invite).where(target)
    after = uuid_cursor(cursor)
    if after is not None:
        query = query.where(Invite.id > after)
    rows = list(await session.scalars(query.order_by(Invite.id).limit(limit + 1)))
    return page_of(rows, limit)


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
    user = await accounts.account_for(session, passwords, invite.email, password, name)
    await accounts.grant_role(session, user, invite.tenant_id, invite.role)
    invite.accepted_at = datetime.now(UTC)
    await session.flush()
    return user, invite
