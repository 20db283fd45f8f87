"""An OAuth client as Authlib sees it: a firm's machine client or a sign-in app, loaded
from the database before a grant runs (so Authlib's synchronous core does no I/O)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from authlib.oauth2.rfc6749 import ClientMixin

from bpo.core.security import secret_matches

SECRET_METHODS = ("client_secret_basic", "client_secret_post")
AUTH_METHODS = (*SECRET_METHODS, "none")


@dataclass(frozen=True, slots=True)
class OAuthClient(ClientMixin):  # type: ignore[misc]
    """A client as Authlib sees it, loaded before the grant runs.

    `api`: a client firm's machine client (client credentials, bound to its tenant).
    `app`: an application people sign in through (authorization code + PKCE, refresh);
    public when it has no secret."""

    kind: Literal["api", "app"]
    client_id: str
    scopes: tuple[str, ...]
    secret_digest: bytes | None
    secret_key: str
    tenant_id: uuid.UUID | None = None
    redirect_uris: tuple[str, ...] = ()
    previous_secret_digest: bytes | None = None
    previous_secret_expires_at: datetime | None = None

    @property
    def public(self) -> bool:
        return self.secret_digest is None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # every authorization request names its redirect URI

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(self.granted_scopes(scope))

    def granted_scopes(self, scope: str | None) -> list[str]:
        """The requested scopes the client holds (all of them when none are asked for)."""
        held = set(self.scopes)
        return sorted(set(scope.split()) & held if scope else held)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact, character for character

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_digest is None:
            return False
        if secret_matches(self.secret_key, client_secret, self.secret_digest):
            return True
        overlap = self.previous_secret_expires_at
        return (
            self.previous_secret_digest is not None
            and overlap is not None
            and overlap > datetime.now(UTC)
            and secret_matches(self.secret_key, client_secret, self.previous_secret_digest)
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none" if self.public else method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return self.kind == "app" and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.kind == "api":
            return grant_type == "client_credentials"
        return grant_type in ("authorization_code", "refresh_token")
