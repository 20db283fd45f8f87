"""People jobs: invites reach the invited address by mail, never the inviter.

The token travels through the outbox and the broker sealed (AES-GCM under the secret key,
bound to the invite), so neither holds a usable credential. An invite revoked, accepted or
expired before the job runs is not mailed.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from bpo.core.mail import Mail, send_mail
from bpo.core.security import seal, unseal
from bpo.jobs.context import exactly_once, worker_settings
from bpo.jobs.registry import job
from bpo.people.models import Invite
from bpo.platform.tenants import service as tenants


def sealed_invite_token(secret_key: str, invite_id: uuid.UUID, token: str) -> str:
    return base64.b64encode(seal(secret_key, f"invite:{invite_id}", token.encode())).decode()


@job(queue="default", max_retries=8)
async def mail_invite(invite_id: str, sealed_token: str) -> None:
    settings = worker_settings()
    ident = uuid.UUID(invite_id)
    async with exactly_once() as session:  # a redelivered message mails at most once more
        invite = await session.get(Invite, ident)
        if invite is None or invite.accepted_at is not None or invite.revoked_at is not None:
            return
        if invite.expires_at <= datetime.now(UTC):
            return
        token = unseal(
            settings.secret_key or "", f"invite:{ident}", base64.b64decode(sealed_token)
        ).decode()
        target = "the provider's staff"
        if invite.tenant_id is not None:
            tenant = await tenants.tenant_by_id(session, invite.tenant_id)
            target = tenant.name if tenant is not None else "a firm"
        mail = Mail(
            to=invite.email,
            subject=f"You are invited to {target} on bpo",
            text=_invite_text(settings.issuer, target, invite.role, token, invite.expires_at),
        )
        await send_mail(
            settings.smtp_url,
            settings.mail_from,
            mail,
            development=settings.environment == "development",
        )


def _invite_text(issuer: str, target: str, role: str, token: str, expires: datetime) -> str:
    return (
        f"You are invited to join {target} on bpo as {role.replace('_', ' ')}.\n\n"
        f"Your invite token (valid until {expires.astimezone(UTC):%Y-%m-%d %H:%M} UTC):\n\n"
        f"    {token}\n\n"
        f"Accept it by choosing a password:\n"
        f"    POST {issuer}/v1/invites/accept\n"
        f'    {{"token": "<the token above>", "password": "<at least 12 characters>"}}\n\n'
        "If you did not expect this, ignore this message: nothing happens unless the token is "
        "used.\n"
    )
