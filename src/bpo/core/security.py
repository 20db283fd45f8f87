"""Password hashing (argon2id) and keyed digests of machine secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 "low memory" profile


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_client_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def secret_digest(secret_key: str, secret: str) -> bytes:
    """HMAC-SHA256: a secret with 256 bits of entropy needs no slow hash (DESIGN §8)."""
    return hmac.new(secret_key.encode(), secret.encode(), hashlib.sha256).digest()


def secret_matches(secret_key: str, secret: str, digest: bytes) -> bool:
    return hmac.compare_digest(secret_digest(secret_key, secret), digest)
