"""Audit events and the head of each chain (platform tables, one chain per tenant).

They live in `platform`, not in the tenant schemas, so that a change made on a platform
connection (a tenant admin's member or API-client change) and one made on a tenant
connection (a webhook endpoint) both append to the tenant's chain in their own transaction.
Tenant roles may append only to their own chain (row-level security, see the migrations)
and can read neither table nor touch the heads; the API reads them for the tenant the guard
found.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.models import PlatformBase

# The chain of provider-side (platform) admin actions.
PLATFORM_CHAIN = uuid.UUID(int=0)


class AuditEvent(PlatformBase):
    """One event. Inserted with the canonical bytes around its number (`link_*`); a deferred
    trigger numbers, hashes and links it into its chain at commit (migration p0013)."""

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("chain_id", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    chain_id: Mapped[uuid.UUID] = mapped_column()  # tenant id, or PLATFORM_CHAIN
    seq: Mapped[int | None] = mapped_column(BigInteger)  # 1, 2, ... per chain, at commit
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(300))
    before_digest: Mapped[str | None] = mapped_column(String(64))
    after_digest: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(200))
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # The canonical bytes before and after the number, until the commit links the event.
    link_before: Mapped[str | None] = mapped_column(Text)
    link_after: Mapped[str | None] = mapped_column(Text)


class AuditHead(PlatformBase):
    """The last link of a chain: commits that link events serialise on this row (only while
    they commit), and verify checks that the newest events were not cut off."""

    __tablename__ = "audit_heads"

    chain_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
