"""Password hashing (argon2id), keyed digests of machine secrets, and sealing secrets that
must be read back (signing keys, TOTP and webhook secrets) under BPO_SECRET_KEY."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bpo.core.errors import Problem

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 "low memory" profile


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_T = TypeVar("_T")


class PasswordWorkBusy(Problem):
    """More password checks are waiting than the process will queue: answer 429, retry."""

    def __init__(self) -> None:
        super().__init__(
            429,
            "rate-limited",
            "too many password checks are in progress; retry in a few seconds",
            headers={"Retry-After": "5"},
        )


class PasswordWork:
    """argon2 hashing and verification off the event loop, a bounded number at a time.

    Each check costs tens of milliseconds of CPU by design; without a bound, a burst of sign-in
    attempts would occupy every thread and starve the rest of the API. At most `concurrent`
    run at once and at most `queued` wait; beyond that the caller is told to retry."""

    def __init__(self, concurrent: int = 2, queued: int = 32) -> None:
        self._slots = asyncio.Semaphore(concurrent)
        self._queued = queued
        self._waiting = 0

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self.run(verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        return await self.run(hash_password, password)

    async def run(self, work: Callable[..., _T], *args: str) -> _T:
        if self._waiting >= self._queued:
            raise PasswordWorkBusy()
        self._waiting += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(work, *args)
        finally:
            self._waiting -= 1


def token_digest(value: str) -> bytes:
    """How one-time tokens (invites, codes, refresh tokens: 256-bit random values) are
    stored: their SHA-256, so a database read does not yield a usable token."""
    return hashlib.sha256(value.encode()).digest()


def new_client_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def secret_digest(secret_key: str, secret: str) -> bytes:
    """HMAC-SHA256: a secret with 256 bits of entropy needs no slow hash (DESIGN §8)."""
    return hmac.new(secret_key.encode(), secret.encode(), hashlib.sha256).digest()


def secret_matches(secret_key: str, secret: str, digest: bytes) -> bool:
    return hmac.compare_digest(secret_digest(secret_key, secret), digest)


@lru_cache(maxsize=4)
def _sealing_key(secret_key: str) -> AESGCM:
    # The HKDF label predates webhook secrets; changing it would orphan sealed keys.
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"bpo signing keys v1"
    ).derive(secret_key.encode())
    return AESGCM(derived)


def seal(secret_key: str, context: str, plaintext: bytes) -> bytes:
    """AES-256-GCM; `context` (a key id, a user id, ...) is bound as associated data, so a
    sealed value copied to another row does not open."""
    nonce = os.urandom(12)
    return nonce + _sealing_key(secret_key).encrypt(nonce, plaintext, context.encode())


def unseal(secret_key: str, context: str, sealed: bytes) -> bytes:
    return _sealing_key(secret_key).decrypt(sealed[:12], sealed[12:], context.encode())
