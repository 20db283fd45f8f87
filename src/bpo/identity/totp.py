"""TOTP (RFC 6238) second factor: secrets sealed at rest, each code accepted once."""

from __future__ import annotations

import time
import uuid

import pyotp

from bpo.core.security import seal, unseal

STEP_S = 30


def _aad(user_id: uuid.UUID) -> str:
    return f"totp:{user_id}"  # binds the sealed secret to its user


def new_secret(secret_key: str, user_id: uuid.UUID) -> tuple[str, bytes]:
    """A fresh base32 secret and its sealed form."""
    secret = pyotp.random_base32()
    return secret, seal(secret_key, _aad(user_id), secret.encode())


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="bpo")


def matching_step(
    secret_key: str, user_id: uuid.UUID, sealed: bytes, code: str, last_step: int | None
) -> int | None:
    """The time step `code` belongs to (now or one step either side), if it is newer than
    the last accepted one; None otherwise. Store the step to stop replays."""
    code = code.strip()
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(unseal(secret_key, _aad(user_id), sealed).decode())
    now_step = int(time.time()) // STEP_S
    for step in (now_step - 1, now_step, now_step + 1):
        if totp.at(step * STEP_S) == code and (last_step is None or step > last_step):
            return step
    return None
