"""The provider's registry: tenants, people and API clients (extended by later issues)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase

TENANT_STATUSES = ("active", "suspended", "deleting")
STAFF_ROLES = ("staff", "staff_admin")


class Tenant(PlatformBase):
    """A client firm. Its data lives in schema `tenant_<id hex>`, never named from user text."""

    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'", name="slug_format"),
        CheckConstraint(f"status IN {TENANT_STATUSES}", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def schema_name(self) -> str:
        return tenant_schema_name(self.id)


def tenant_schema_name(tenant_id: uuid.UUID) -> str:
    return f"tenant_{tenant_id.hex}"


class User(PlatformBase):
    """A person who signs in: provider staff (staff_role set) or a member of client firms."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint(f"staff_role IS NULL OR staff_role IN {STAFF_ROLES}", name="staff_role"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    staff_role: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiClient(PlatformBase):
    """A client firm's machine client (OAuth client credentials), bound to one tenant."""

    __tablename__ = "api_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform.tenants.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # HMAC-SHA256 of the 256-bit random secret, keyed with BPO_SECRET_KEY (DESIGN §8).
    secret_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
