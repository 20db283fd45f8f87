"""Request and response types of the tenant registry API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from bpo.platform.models import SLUG_PATTERN


class TenantCreate(msgspec.Struct, forbid_unknown_fields=True):
    slug: Annotated[
        str,
        msgspec.Meta(
            min_length=3,
            max_length=40,
            pattern=SLUG_PATTERN,
            description="Lowercase, 3-40 characters; never changes. Some words are reserved.",
            examples=["acme-trading"],
        ),
    ]
    name: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=200, pattern=r"\S", examples=["Acme Trading Ltd"]),
    ]


class TenantOut(msgspec.Struct):
    id: str
    slug: str
    name: str
    status: str
    schema_name: str
    created_at: datetime
    updated_at: datetime
    last_export_at: datetime | None
    provisioned_from: str | None = None  # "warm-pool" or "cold" on the create response


class TenantPage(msgspec.Struct):
    items: list[TenantOut]
    next_cursor: str | None
