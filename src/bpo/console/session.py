"""The console's session: the person's tokens, sealed in a cookie the browser cannot read.

The cookie is encrypted and authenticated (Fernet: AES-128-CBC with HMAC-SHA256, a key
derived from BPO_SECRET_KEY for this purpose only), HttpOnly, SameSite=Strict, Secure when
bpo is served over https, and scoped to /console. Nothing is kept on the server between
requests, so any API replica serves any console request. The session also carries the
CSRF token every form and htmx request must echo (a synchronizer token: SameSite alone
does not cover same-site subdomains or old browsers).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from typing import TypeVar

import msgspec
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bpo.settings import Settings

PATH = "/console"
CALLBACK_PATH = f"{PATH}/callback"
SESSION_COOKIE = "bpo_console"
LOGIN_COOKIE = "bpo_console_login"
SESSION_MAX_AGE_S = 12 * 3600  # a working day; the refresh token may live longer
LOGIN_MAX_AGE_S = 600  # from the redirect to the sign-in page back to the callback
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
T = TypeVar("T")


class Session(msgspec.Struct, forbid_unknown_fields=True):
    access_token: str
    refresh_token: str | None
    expires_at: int  # the access token's
    csrf: str
    kind: str  # user | staff
    role: str | None
    email: str | None
    tenant: str | None  # the firm a tenant user's token is bound to
    scopes: list[str]


class Login(msgspec.Struct, forbid_unknown_fields=True):
    """The authorization request in flight: what the callback must find again."""

    state: str
    verifier: str
    next: str


def console_callback(settings: Settings) -> str:
    """The console's redirect URI, registered on the sign-in app it uses."""
    return settings.issuer + CALLBACK_PATH


class Sealer:
    """Seals and opens the console's cookies with a key of their own."""

    def __init__(self, secret_key: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"bpo console session v1"
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, value: Session | Login) -> str:
        # Without base64's '=' padding a cookie value needs no quoting.
        return self._fernet.encrypt(msgspec.json.encode(value)).decode().rstrip("=")

    def open_session(self, raw: str | None) -> Session | None:
        return self._open(raw, Session, SESSION_MAX_AGE_S)

    def open_login(self, raw: str | None) -> Login | None:
        return self._open(raw, Login, LOGIN_MAX_AGE_S)

    def _open(self, raw: str | None, kind: type[T], ttl: int) -> T | None:
        """The cookie's value, or None when it is missing, forged, altered or too old."""
        if not raw or len(raw) > 8192:
            return None
        try:
            padded = raw + "=" * (-len(raw) % 4)
            return msgspec.json.decode(self._fernet.decrypt(padded.encode(), ttl=ttl), type=kind)
        except (InvalidToken, msgspec.DecodeError, msgspec.ValidationError):
            return None


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")


def expiring(session: Session, margin_s: int = 30) -> bool:
    return session.expires_at - margin_s <= time.time()
