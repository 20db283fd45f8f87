"""People APIs: a firm's members and API clients (tenant admins), the provider's staff
(staff admins), invites, and the caller's own account."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import PLATFORM_CHAIN
from bpo.core.errors import Problem
from bpo.core.pagination import PageCursor, PageLimit
from bpo.core.ratelimit import FAILURE_WINDOW_S, Limit, RateLimiter, retry_after
from bpo.core.tenancy import TenantContext
from bpo.identity import accounts, totp
from bpo.identity.guards import (
    PUBLIC,
    STAFF_ADMIN,
    TENANT_ADMIN,
    TENANT_STAFF,
    Principal,
    requires,
)
from bpo.people import service
from bpo.people.models import Invite

if TYPE_CHECKING:
    from bpo.identity.models import ApiClient, Membership, User
from bpo.people.schemas import (
    AcceptedOut,
    ClientCreate,
    ClientOut,
    ClientPage,
    ClientRotate,
    InviteAccept,
    InviteCreate,
    InviteOut,
    InvitePage,
    MemberOut,
    MemberPage,
    MemberUpdate,
    MeOut,
    StaffInviteCreate,
    StaffOut,
    StaffUpdate,
    TenantBrief,
    TotpConfirm,
    TotpEnrollment,
    TotpStart,
)
from bpo.platform.tenants import service as tenants
from bpo.webhooks.service import record_event

ClientId = Annotated[str, PathParameter(min_length=1, max_length=64)]


def member_out(membership: Membership, user: User) -> MemberOut:
    return MemberOut(
        user_id=str(user.id),
        email=user.email,
        name=user.name,
        role=membership.role,
        status=membership.status if user.status == "active" else user.status,
        joined_at=membership.created_at,
    )


def invite_out(invite: Invite, token: str | None = None) -> InviteOut:
    return InviteOut(
        id=str(invite.id),
        email=invite.email,
        role=invite.role,
        created_at=invite.created_at,
        expires_at=invite.expires_at,
        status=service.invite_status(invite),
        token=token,
    )


def _shown(state: State, token: str) -> str | None:
    """The invite token goes to the invited address by mail; only a local development
    stack also hands it to the inviter (there may be no mail server to read it from)."""
    return token if state.settings.environment == "development" else None


def client_out(client: ApiClient, secret: str | None = None) -> ClientOut:
    return ClientOut(
        client_id=client.client_id,
        name=client.name,
        scopes=list(client.scopes),
        status=client.status,
        created_at=client.created_at,
        previous_secret_expires_at=client.previous_secret_expires_at,
        client_secret=secret,
    )


class MembersController(Controller):
    path = "/v1/tenants/{slug:str}/users"
    tags = ["members"]
    guards = [TENANT_ADMIN]

    @get("/", summary="The firm's members and their roles", operation_id="listMembers")
    async def list_(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> MemberPage:
        rows, next_cursor = await accounts.list_members(db_session, tenant.tenant_id, limit, cursor)
        return MemberPage([member_out(m, u) for m, u in rows], next_cursor)

    @patch(
        "/{user_id:uuid}",
        summary="Change a member's role, or deactivate them",
        operation_id="updateMember",
    )
    async def update(
        self,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[MemberUpdate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
    ) -> MemberOut:
        membership, user = await accounts.update_member(
            db_session, tenant.tenant_id, user_id, data.role, data.status
        )
        out = member_out(membership, user)
        await _changed(db_session, principal, tenant, "member.updated", f"user:{user_id}", out)
        return out

    @post(
        "/invites",
        status_code=201,
        summary="Invite someone (the token is shown once)",
        operation_id="createInvite",
    )
    async def invite(
        self,
        data: JSONBody[InviteCreate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
        state: State,
    ) -> InviteOut:
        invite, token = await service.create_invite(
            db_session,
            email=data.email,
            role=data.role,
            hours=data.expires_in_hours,
            tenant_id=tenant.tenant_id,
            invited_by=principal.user_id,
            secret_key=state.settings.secret_key,
        )
        out = invite_out(invite)
        await _changed(db_session, principal, tenant, "member.invited", f"invite:{invite.id}", out)
        return invite_out(invite, _shown(state, token))

    @get("/invites", summary="Invites of the firm, with their status", operation_id="listInvites")
    async def invites(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> InvitePage:
        rows, next_cursor = await service.list_invites(db_session, tenant.tenant_id, limit, cursor)
        return InvitePage([invite_out(i) for i in rows], next_cursor)

    @delete(
        "/invites/{invite_id:uuid}",
        status_code=204,
        summary="Revoke an invite",
        operation_id="revokeInvite",
    )
    async def revoke_invite(
        self,
        invite_id: FromPath[uuid.UUID],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
    ) -> None:
        await service.revoke_invite(db_session, tenant.tenant_id, invite_id)
        await _changed(db_session, principal, tenant, "invite.revoked", f"invite:{invite_id}", None)


class ClientsController(Controller):
    path = "/v1/tenants/{slug:str}/clients"
    tags = ["api clients"]
    guards = [TENANT_ADMIN]

    @get("/", summary="The firm's API clients (never their secrets)", operation_id="listApiClients")
    async def list_(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> ClientPage:
        rows, next_cursor = await accounts.list_clients(db_session, tenant.tenant_id, limit, cursor)
        return ClientPage([client_out(c) for c in rows], next_cursor)

    @post(
        "/",
        status_code=201,
        summary="Create an API client (the secret is shown once)",
        operation_id="createApiClient",
    )
    async def create(
        self,
        data: JSONBody[ClientCreate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
        state: State,
    ) -> ClientOut:
        client, secret = await accounts.create_client(
            db_session, state.settings.secret_key, tenant.tenant_id, data.name, data.scopes
        )
        target = f"api_client:{client.client_id}"
        await _changed(
            db_session, principal, tenant, "api_client.created", target, client_out(client)
        )
        return client_out(client, secret)

    @post(
        "/{client_id:str}/rotate",
        status_code=200,
        summary="Rotate the secret, with overlap",
        operation_id="rotateApiClientSecret",
    )
    async def rotate(
        self,
        client_id: ClientId,
        data: JSONBody[ClientRotate],
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
        state: State,
    ) -> ClientOut:
        client, secret = await accounts.rotate_client(
            db_session, state.settings.secret_key, tenant.tenant_id, client_id, data.overlap_seconds
        )
        target = f"api_client:{client_id}"
        await _changed(
            db_session, principal, tenant, "api_client.rotated", target, client_out(client)
        )
        return client_out(client, secret)

    @delete(
        "/{client_id:str}",
        status_code=204,
        summary="Delete a client; its tokens stop",
        operation_id="deleteApiClient",
    )
    async def remove(
        self,
        client_id: ClientId,
        tenant: NamedDependency[TenantContext],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
    ) -> None:
        await accounts.delete_client(db_session, tenant.tenant_id, client_id)
        target = f"api_client:{client_id}"
        await _changed(db_session, principal, tenant, "api_client.deleted", target, None)


class StaffController(Controller):
    path = "/v1/staff"
    tags = ["staff"]

    @get(
        "/tenants",
        guards=[requires(roles=TENANT_STAFF, tenant_bound=False)],
        summary="The tenants this staff member works for (all, for a staff admin)",
        operation_id="listStaffTenants",
    )
    async def tenants(
        self, principal: NamedDependency[Principal], db_session: NamedDependency[AsyncSession]
    ) -> list[TenantBrief]:
        assert principal.user_id is not None and principal.role is not None
        rows = await accounts.visible_tenants(db_session, principal.user_id, principal.role)
        return [TenantBrief(slug=t.slug, name=t.name, status=t.status) for t in rows]

    @get(
        "/members",
        guards=[STAFF_ADMIN],
        summary="The provider's staff and their tenants",
        operation_id="listStaffMembers",
    )
    async def members(self, db_session: NamedDependency[AsyncSession]) -> list[StaffOut]:
        return [_staff_out(user, slugs) for user, slugs in await accounts.list_staff(db_session)]

    @patch(
        "/members/{user_id:uuid}",
        guards=[STAFF_ADMIN],
        summary="Change a staff member's role, or deactivate them",
        operation_id="updateStaffMember",
    )
    async def update(
        self,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[StaffUpdate],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
    ) -> StaffOut:
        if user_id == principal.user_id and (data.status == "deactivated" or data.role == "staff"):
            raise Problem(409, "conflict", "staff admins cannot demote or deactivate themselves")
        user = await accounts.update_staff(db_session, user_id, data.role, data.status)
        out = _staff_out(user, [])
        await _changed(db_session, principal, None, "staff.updated", f"user:{user_id}", out)
        return out

    @put(
        "/members/{user_id:uuid}/assignments/{slug:str}",
        guards=[STAFF_ADMIN],
        status_code=204,
        summary="Assign a staff member to a tenant",
        operation_id="assignStaffMember",
    )
    async def assign(
        self,
        user_id: FromPath[uuid.UUID],
        slug: FromPath[str],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
    ) -> None:
        await accounts.assign(db_session, user_id, slug, principal.user_id)
        target = f"user:{user_id}"
        await _changed(db_session, principal, None, "staff.assigned", target, {"tenant": slug})

    @delete(
        "/members/{user_id:uuid}/assignments/{slug:str}",
        guards=[STAFF_ADMIN],
        status_code=204,
        summary="End a staff member's assignment to a tenant",
        operation_id="unassignStaffMember",
    )
    async def unassign(
        self,
        user_id: FromPath[uuid.UUID],
        slug: FromPath[str],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
    ) -> None:
        await accounts.unassign(db_session, user_id, slug)
        target = f"user:{user_id}"
        await _changed(db_session, principal, None, "staff.unassigned", target, {"tenant": slug})

    @post(
        "/invites",
        guards=[STAFF_ADMIN],
        status_code=201,
        summary="Invite someone to the provider's staff (the token is shown once)",
        operation_id="createStaffInvite",
    )
    async def invite(
        self,
        data: JSONBody[StaffInviteCreate],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[AsyncSession],
        state: State,
    ) -> InviteOut:
        invite, token = await service.create_invite(
            db_session,
            email=data.email,
            role=data.role,
            hours=data.expires_in_hours,
            tenant_id=None,
            invited_by=principal.user_id,
            secret_key=state.settings.secret_key,
        )
        out = invite_out(invite)
        await _changed(db_session, principal, None, "staff.invited", f"invite:{invite.id}", out)
        return invite_out(invite, _shown(state, token))


async def _changed(
    session: AsyncSession,
    principal: Principal,
    tenant: TenantContext | None,
    action: str,
    target: str,
    after: Any,
) -> None:
    """Audit the change in its transaction: in the firm's chain, and as a tenant event its
    webhooks receive; provider staff changes (tenant None) in the platform's chain."""
    chain = tenant.tenant_id if tenant is not None else PLATFORM_CHAIN
    await audit.record(session, chain, actor=principal, action=action, target=target, after=after)
    if tenant is not None:
        data = {"target": target, **(msgspec.to_builtins(after) if after is not None else {})}
        await record_event(session, tenant, action, data)


def _staff_out(user: User, slugs: list[str]) -> StaffOut:
    return StaffOut(
        user_id=str(user.id),
        email=user.email,
        name=user.name,
        role=user.staff_role or "",
        status=user.status,
        tenants=slugs,
    )


@post(
    "/v1/invites/accept",
    status_code=200,
    tags=["members"],
    opt={PUBLIC: True},
    summary="Accept an invite: the token is the credential; sets the password of a new account",
    operation_id="acceptInvite",
)
async def accept_invite(
    data: JSONBody[InviteAccept], db_session: NamedDependency[AsyncSession], state: State
) -> AcceptedOut:
    user, invite = await service.accept_invite(
        db_session, state.password_work, data.token, data.password, data.name
    )
    tenant = None
    if invite.tenant_id is not None:
        tenant = (await tenants.slugs_of(db_session, {invite.tenant_id}))[invite.tenant_id]
    return AcceptedOut(user_id=str(user.id), email=user.email, role=invite.role, tenant=tenant)


@get(
    "/v1/me",
    guards=[requires(tenant_bound=False)],
    tags=["me"],
    summary="Who the token is",
    operation_id="getMe",
)
async def me(
    principal: NamedDependency[Principal], db_session: NamedDependency[AsyncSession]
) -> MeOut:
    out = MeOut(
        kind=principal.kind,
        subject=principal.subject,
        client_id=principal.client_id,
        scopes=sorted(principal.scopes),
        role=principal.role,
    )
    if principal.user_id is not None:
        user = await accounts.person(db_session, principal.user_id)
        out.email, out.totp_enrolled = user.email, user.totp_confirmed_at is not None
    if principal.token_tenant is not None and principal.user_id is not None:
        # The firm a person's token is bound to, and their role in it now.
        slugs = await tenants.slugs_of(db_session, {principal.token_tenant})
        out.tenant = slugs.get(principal.token_tenant)
        out.role = await accounts.member_role(db_session, principal.user_id, principal.token_tenant)
    return out


@post(
    "/v1/me/totp",
    guards=[requires(tenant_bound=False)],
    status_code=201,
    tags=["me"],
    summary="Start TOTP enrolment: a new secret, asked at sign-in once confirmed",
    operation_id="startTotpEnrolment",
)
async def enrol_totp(
    data: JSONBody[TotpStart],
    principal: NamedDependency[Principal],
    db_session: NamedDependency[AsyncSession],
    state: State,
) -> TotpEnrollment:
    user = await _person(db_session, principal)
    if user.totp_confirmed_at is not None:
        raise Problem(409, "conflict", "TOTP is already enrolled")
    await _recent_password(state, user, data.password)
    secret, sealed = totp.new_secret(state.settings.secret_key, user.id)
    user.totp_secret_sealed = sealed
    return TotpEnrollment(secret=secret, otpauth_uri=totp.provisioning_uri(secret, user.email))


@post(
    "/v1/me/totp/confirm",
    guards=[requires(tenant_bound=False)],
    status_code=204,
    tags=["me"],
    summary="Confirm TOTP enrolment with a current code",
    operation_id="confirmTotpEnrolment",
)
async def confirm_totp(
    data: JSONBody[TotpConfirm],
    principal: NamedDependency[Principal],
    db_session: NamedDependency[AsyncSession],
    state: State,
) -> None:
    user = await _person(db_session, principal)
    if user.totp_secret_sealed is None or user.totp_confirmed_at is not None:
        raise Problem(409, "conflict", "start the enrolment first (POST /v1/me/totp)")
    step = totp.matching_step(
        state.settings.secret_key, user.id, user.totp_secret_sealed, data.code, None
    )
    if step is None:
        raise Problem(
            422,
            "validation-failed",
            "the code does not match; check the clock",
            errors=[{"pointer": "/code", "detail": "wrong or stale code"}],
        )
    user.totp_last_step, user.totp_confirmed_at = step, datetime.now(UTC)


async def _recent_password(state: State, user: User, password: str) -> None:
    """The account's password, checked now; failures count like failed sign-ins."""
    limit = Limit(
        "failed password checks for this account",
        f"login:email:{user.email}",
        state.settings.login_failures_per_email,
        FAILURE_WINDOW_S,
    )
    limiter: RateLimiter = state.limiter
    if (exceeded := await limiter.hit(limit)) is not None:
        raise Problem(
            429,
            "rate-limited",
            f"too many {limit.name}; try again later",
            headers={"Retry-After": retry_after(exceeded)},
        )
    if not await state.password_work.verify(user.password_hash, password):
        raise Problem(
            403,
            "forbidden",
            "the password is wrong",
            errors=[{"pointer": "#/password", "detail": "does not match the account's password"}],
        )
    await limiter.hit(limit, amount=-1)


async def _person(session: AsyncSession, principal: Principal) -> User:
    if principal.user_id is None:
        raise Problem(403, "forbidden", "API clients have no second factor; this is for people")
    return await accounts.person(session, principal.user_id, lock=True)


route_handlers: list[ControllerRouterHandler] = [
    MembersController,
    ClientsController,
    StaffController,
    accept_invite,
    me,
    enrol_totp,
    confirm_totp,
]
