"""Who may call: people (users) and firms' machine clients, sign-in apps, signing keys,
and the record of every token issuance and refusal."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase

KEY_STATUSES = ("next", "active", "previous", "retired")
STAFF_ROLES = ("staff", "staff_admin")
TENANT_ROLES = ("tenant_admin", "tenant_member")
MEMBERSHIP_STATUSES = ("active", "deactivated")


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


class SigningKey(PlatformBase):
    """An ES256 key pair. Only the `active` key signs; `next`, `active` and `previous` are
    published in the JWKS and accepted; `retired` keys are kept for the record only."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        CheckConstraint(f"status IN {KEY_STATUSES}", name="status"),
        # At most one key in each live state.
        Index(
            "uq_signing_keys_live_status",
            "status",
            unique=True,
            postgresql_where=text("status <> 'retired'"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(10), default="ES256", server_default="ES256")
    status: Mapped[str] = mapped_column(String(10))
    public_jwk: Mapped[dict[str, str]] = mapped_column(JSONB)
    # The private key (PKCS#8 PEM) sealed with AES-256-GCM under a key derived from
    # BPO_SECRET_KEY; the kid is the associated data, so a sealed key cannot be swapped.
    private_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TokenEvent(PlatformBase):
    """One token issuance or refusal: who, which client, which tenant, which grant, result."""

    __tablename__ = "token_events"
    __table_args__ = (
        CheckConstraint("result IN ('issued', 'refused')", name="result"),
        Index("ix_token_events_client_at", "client_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    result: Mapped[str] = mapped_column(String(10))
    grant_type: Mapped[str | None] = mapped_column(String(60))
    client_id: Mapped[str | None] = mapped_column(String(64))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column()
    subject: Mapped[str | None] = mapped_column(String(64))
    scope: Mapped[str | None] = mapped_column(Text)
    jti: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(60))
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))


class OAuthApp(PlatformBase):
    """An application people sign in through (authorization code + PKCE): the provider's
    console, a client firm's portal, a CLI. Public when it has no secret."""

    __tablename__ = "oauth_apps"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Compared exactly, character for character (RFC 9700 §2.1).
    redirect_uris: Mapped[list[str]] = mapped_column(ARRAY(Text))
    secret_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuthorizationCode(PlatformBase):
    """A single-use code (its SHA-256 only), bound to app, redirect URI and PKCE challenge."""

    __tablename__ = "authorization_codes"

    code_digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("platform.users.id", ondelete="CASCADE"))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column()
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the code was exchanged for, so a second use can revoke it (RFC 6749 §4.1.2).
    issued_jti: Mapped[str | None] = mapped_column(String(64))
    issued_family: Mapped[uuid.UUID | None] = mapped_column()


class RefreshToken(PlatformBase):
    """One refresh token (its SHA-256 only). Each use rotates it within its family; using
    a rotated one again revokes the whole family (RFC 9700 §4.14.2)."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family_id", "family_id"),
        Index("ix_refresh_tokens_user_id", "user_id"),
    )

    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    family_id: Mapped[uuid.UUID] = mapped_column()
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("platform.users.id", ondelete="CASCADE"))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column()
    scope: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RevokedToken(PlatformBase):
    """The access-token denylist: a revoked `jti`, kept until the token would have expired."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
