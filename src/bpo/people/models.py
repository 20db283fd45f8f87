"""Who may act for which tenant: memberships, staff assignments, invites.

Users and API clients live in `platform.models` (the registry); this module adds the links
between people and tenants that every request's access check reads.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase

TENANT_ROLES = ("tenant_admin", "tenant_member")
MEMBERSHIP_STATUSES = ("active", "deactivated")


class Membership(PlatformBase):
    """A user's role in one tenant. Deactivating it stops the user's tokens for that tenant."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint(f"role IN {TENANT_ROLES}", name="role"),
        CheckConstraint(f"status IN {MEMBERSHIP_STATUSES}", name="status"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform.users.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform.tenants.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class StaffAssignment(PlatformBase):
    """A provider staff member assigned to a tenant: only assigned tenants are visible."""

    __tablename__ = "staff_assignments"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform.users.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform.tenants.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    assigned_by: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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
