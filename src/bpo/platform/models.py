"""The provider's tenant registry: the firms and the warm pool of ready schemas. (Users and
API clients are identity's; memberships, invites and staff assignments are people's.)"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase
from bpo.core.tenancy import role_name, schema_name

TENANT_STATUSES = ("active", "suspended", "deleting")
# 3-40 characters: a lowercase letter, then letters, digits or hyphens, not ending in one.
SLUG_PATTERN = "^[a-z][a-z0-9-]{1,38}[a-z0-9]$"


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
