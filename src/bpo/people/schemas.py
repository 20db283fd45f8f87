"""Request and response types of the people APIs: members, invites, API clients, staff."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        examples=["ana@acme.example"],
    ),
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
Password = Annotated[
    str, msgspec.Meta(min_length=12, max_length=256, description="At least 12 characters")
]
TenantRole = Literal["tenant_admin", "tenant_member"]
StaffRole = Literal["staff", "staff_admin"]
Status = Literal["active", "deactivated"]
Scope = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class MemberOut(msgspec.Struct):
    user_id: str
    email: str
    name: str | None
    role: str
    status: str
    joined_at: datetime


class MemberPage(msgspec.Struct):
    items: list[MemberOut]
    next_cursor: str | None


class MemberUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Change a member's role, or deactivate them (their tokens stop at once)."""

    role: TenantRole | None = None
    status: Status | None = None


class InviteCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: TenantRole = "tenant_member"
    expires_in_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 14)] = 72


class StaffInviteCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: StaffRole = "staff"
    expires_in_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 14)] = 72


class InviteOut(msgspec.Struct, omit_defaults=True):
    id: str
    email: str
    role: str
    created_at: datetime
    expires_at: datetime
    status: str  # pending, accepted, revoked, expired
    # Shown once, on creation, in development only; otherwise mailed to the invited address.
    token: str | None = None


class InvitePage(msgspec.Struct):
    items: list[InviteOut]
    next_cursor: str | None


class InviteAccept(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=20, max_length=200)]
    password: Password
    name: Name | None = None


class AcceptedOut(msgspec.Struct, omit_defaults=True):
    user_id: str
    email: str
    role: str
    tenant: str | None = None


class ClientCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=20)]


class ClientRotate(msgspec.Struct, forbid_unknown_fields=True):
    """The old secret keeps working for `overlap_seconds` (up to 7 days; 0 ends it now)."""

    overlap_seconds: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 3600)] = 86_400


class ClientOut(msgspec.Struct, omit_defaults=True):
    client_id: str
    name: str
    scopes: list[str]
    status: str
    created_at: datetime
    previous_secret_expires_at: datetime | None = None
    client_secret: str | None = None  # shown once: on creation and on rotation


class ClientPage(msgspec.Struct):
    items: list[ClientOut]
    next_cursor: str | None


class StaffOut(msgspec.Struct):
    user_id: str
    email: str
    name: str | None
    role: str
    status: str
    tenants: list[str]


class StaffUpdate(msgspec.Struct, forbid_unknown_fields=True):
    role: StaffRole | None = None
    status: Status | None = None


class TenantBrief(msgspec.Struct):
    slug: str
    name: str
    status: str


class MeOut(msgspec.Struct, omit_defaults=True):
    kind: str
    subject: str
    client_id: str
    scopes: list[str]
    role: str | None = None
    tenant: str | None = None
    email: str | None = None
    totp_enrolled: bool | None = None


class TotpStart(msgspec.Struct, forbid_unknown_fields=True):
    """Enrolling a second factor needs the account's password, checked now: a stolen
    session or token alone cannot bind an attacker's authenticator."""

    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class TotpEnrollment(msgspec.Struct):
    secret: str
    otpauth_uri: str


class TotpConfirm(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]
