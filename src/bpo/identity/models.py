"""Signing keys and the record of every token issuance and refusal."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, LargeBinary, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase

KEY_STATUSES = ("next", "active", "previous", "retired")


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
