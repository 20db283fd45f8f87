"""ES256 signing keys: sealed at rest, rotated next -> active -> previous -> retired.

Every process keeps a `KeyRing` (the active private key plus the public keys of next,
active and previous) and reloads it every few seconds. A rotation therefore never fails a
request: a token signed with the new active key carries a kid that every ring already held
as `next`, and tokens signed with the old active key stay valid as `previous` until the next
rotation, which must come later than a token's lifetime (10 minutes).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from joserfc.jwk import ECKey
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bpo.core.security import seal, unseal
from bpo.identity.models import SigningKey

LIVE = ("next", "active", "previous")
RELOAD_EVERY_S = 5.0
LIVE_KEYS = select(SigningKey).where(SigningKey.status.in_(LIVE))


def new_signing_key(secret_key: str, status: str) -> SigningKey:
    key = ECKey.generate_key("P-256", private=True)
    kid = key.thumbprint()  # RFC 7638: stable, derived from the public key
    public = {**key.as_dict(private=False), "kid": kid, "use": "sig", "alg": "ES256"}
    return SigningKey(
        kid=kid,
        status=status,
        public_jwk=public,
        private_key_sealed=seal(secret_key, kid, key.as_pem(private=True)),
        activated_at=datetime.now(UTC) if status == "active" else None,
    )


async def ensure_keys(session: AsyncSession, secret_key: str) -> None:
    """An active and a next key exist (first start, or after an operator wiped them)."""
    live = select(SigningKey.status).where(SigningKey.status.in_(LIVE))
    held = set((await session.scalars(live)).all())
    for status in ("active", "next"):
        if status not in held:
            session.add(new_signing_key(secret_key, status))
    await session.flush()


async def rotate_keys(session: AsyncSession, secret_key: str) -> str:
    """previous -> retired, active -> previous, next -> active, a new next. Returns the new
    active kid. Runs under a row lock, so two rotations cannot interleave."""
    await ensure_keys(session, secret_key)
    rows = (await session.scalars(LIVE_KEYS.with_for_update())).all()
    by_status = {row.status: row for row in rows}
    now = datetime.now(UTC)
    # One step at a time: the partial unique index allows one key per live status.
    if previous := by_status.get("previous"):
        previous.status, previous.retired_at = "retired", now
        await session.flush()
    by_status["active"].status = "previous"
    await session.flush()
    by_status["next"].status, by_status["next"].activated_at = "active", now
    await session.flush()
    session.add(new_signing_key(secret_key, "next"))
    await session.flush()
    return by_status["next"].kid


@dataclass
class KeyRing:
    """What one process signs and verifies with; reloaded from the database periodically."""

    secret_key: str
    active_kid: str = ""
    signing_key: ECKey | None = None
    public_keys: dict[str, ECKey] = field(default_factory=dict)
    jwks: dict[str, list[dict[str, str]]] = field(default_factory=lambda: {"keys": []})
    loaded_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def load(self, engine: AsyncEngine) -> None:
        async with AsyncSession(engine) as session:
            rows = (await session.scalars(LIVE_KEYS)).all()
            if not any(row.status == "active" for row in rows):
                try:
                    async with session.begin_nested():
                        await ensure_keys(session, self.secret_key)
                    await session.commit()
                except IntegrityError:  # another process made them first
                    await session.rollback()
                rows = (await session.scalars(LIVE_KEYS)).all()
        active = next(row for row in rows if row.status == "active")
        if active.kid != self.active_kid:
            pem = unseal(self.secret_key, active.kid, active.private_key_sealed)
            self.signing_key = ECKey.import_key(pem)
            self.active_kid = active.kid
        order = {"active": 0, "next": 1, "previous": 2}
        ordered = sorted(rows, key=lambda row: order[row.status])
        self.public_keys = {row.kid: ECKey.import_key(dict(row.public_jwk)) for row in ordered}
        self.jwks = {"keys": [row.public_jwk for row in ordered]}
        self.loaded_at = time.monotonic()

    async def fresh(self, engine: AsyncEngine) -> KeyRing:
        """The ring, reloaded if older than RELOAD_EVERY_S (one reload at a time)."""
        if time.monotonic() - self.loaded_at > RELOAD_EVERY_S:
            async with self._lock:
                if time.monotonic() - self.loaded_at > RELOAD_EVERY_S:
                    await self.load(engine)
        return self


async def retire_now(session: AsyncSession, kid: str) -> None:
    """Take a key out of circulation at once (a suspected leak)."""
    await session.execute(
        update(SigningKey)
        .where(SigningKey.kid == kid)
        .values(status="retired", retired_at=datetime.now(UTC))
    )
