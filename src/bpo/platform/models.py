"""The provider's registry: tenants, people and API clients (extended by later issues)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase
from bpo.core.tenancy import role_name, schema_name

TENANT_STATUSES = ("active", "suspended", "deleting")
# 3-40 characters: a lowercase letter, then letters, digits or hyphens, not ending in one.
SLUG_PATTERN = "^[a-z][a-z0-9-]{1,38}[a-z0-9]$"
STAFF_ROLES = ("staff", "staff_admin")


class Tenant(PlatformBase):
    """A client firm. Its schema and role are derived from its id, never from user text."""

    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint(f"slug ~ '{SLUG_PATTERN}'", name="slug_format"),
        CheckConstraint(f"status IN {TENANT_STATUSES}", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    # Immutable: a trigger refuses updates (migration p0002).
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    last_export_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_export_sha256: Mapped[str | None] = mapped_column(String(64))

    @property
    def schema_name(self) -> str:
        return schema_name(self.id)

    @property
    def role_name(self) -> str:
        return role_name(self.id)


class TenantSchemaPool(PlatformBase):
    """Warm pool: schemas (and roles) already at the tenant track's head, awaiting a signup.

    The row's id becomes the tenant's id, so the schema name stays derived from the id.
    """

    __tablename__ = "tenant_schema_pool"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    revision: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantMigration(PlatformBase):
    """The last migration attempt of one tenant schema (`bpo migrate` keeps one per schema)."""

    __tablename__ = "tenant_migrations"

    schema_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    revision: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    migrated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)


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
    name: Mapped[str | None] = mapped_column(String(200))
    # TOTP (RFC 6238) secret, sealed like signing keys; asked at login once confirmed.
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The last TOTP time step accepted, so a code cannot be replayed within its window.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
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
    # After a rotation the old secret keeps working until this time (the overlap window).
    previous_secret_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The scopes this client may ask for; a token request without `scope` gets all of them.
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list, server_default="{}")
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyKey(PlatformBase):
    """A POST's Idempotency-Key and, once it succeeded, its sealed answer (24 hours)."""

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)  # client:subject
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))  # method, path, body
    status: Mapped[int | None] = mapped_column(Integer)  # None while the first still runs
    headers: Mapped[list[Any] | None] = mapped_column(JSONB)
    body_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
