"""Invites: how a person comes to be a firm's member or the provider's staff.

Users, API clients, memberships and staff assignments are identity's (the access model
every request's check reads); people reaches them through `identity.accounts`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase


class Invite(PlatformBase):
    """A one-time, expiring invitation: to a tenant with a role, or to the provider's staff.

    Only the SHA-256 of the token is stored; the token is shown once, to the inviter.
    """

    __tablename__ = "invites"
    __table_args__ = (
        CheckConstraint(
            "(tenant_id IS NOT NULL AND role IN ('tenant_admin', 'tenant_member'))"
            " OR (tenant_id IS NULL AND role IN ('staff', 'staff_admin'))",
            name="role_fits_target",
        ),
        Index("ix_invites_tenant_id_email", "tenant_id", "email"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("platform.tenants.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(20))
    invited_by: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
