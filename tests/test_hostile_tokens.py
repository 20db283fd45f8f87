"""Tokens an attacker would try, each refused; key rotation that fails no request.

After Authlib's JOSE CVE history: `alg: none`, HMAC signed with the public key, unknown
`crit`, an oversized header; plus the RFC 9068 / RFC 8725 claim checks.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from bpo.core.db import Database
from bpo.identity.keys import KeyRing, rotate_keys
from bpo.identity.models import User
from bpo.identity.service import deny_jti
from bpo.identity.tokens import InvalidToken, issue_access_token, verify_access_token
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY, build_app
from tests.support.auth import bearer, make_user
from tests.support.tenants import make_tenant

ISSUER = AUDIENCE = "https://bpo.example"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "c", "client_id": "c", "jti": "j",
        "iat": now, "nbf": now, "exp": now + 300, "scope": "ledger:read",
    }  # fmt: skip
    return {**base, **overrides}


def signed(ring: KeyRing, header: dict[str, Any], body: dict[str, Any]) -> str:
    assert ring.signing_key is not None
    return jws.serialize_compact(
        header, json.dumps(body).encode(), ring.signing_key, algorithms=["ES256"]
    )


def raw_signed(ring: KeyRing, header: dict[str, Any], body: dict[str, Any]) -> str:
    """ES256 by hand, for headers joserfc itself refuses to produce."""
    assert ring.signing_key is not None
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    der = ring.signing_key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def good_header(ring: KeyRing) -> dict[str, Any]:
    return {"alg": "ES256", "typ": "at+jwt", "kid": ring.active_kid}


@pytest.fixture
async def ring(db: Database) -> KeyRing:
    loaded = KeyRing(TEST_SECRET_KEY)
    await loaded.load(db.engine)
    return loaded


def verify(ring: KeyRing, token: str) -> Any:
    return verify_access_token(ring, token, issuer=ISSUER, audience=AUDIENCE)


async def test_a_good_token_verifies(ring: KeyRing) -> None:
    token, _ = issue_access_token(
        ring, issuer=ISSUER, audience=AUDIENCE, subject="c", client_id="c", scope="ledger:read"
    )
    assert verify(ring, token).scopes == {"ledger:read"}
    # The hand-made signer is right, so the crit and size cases fail for their own reason.
    assert verify(ring, raw_signed(ring, good_header(ring), claims())).subject == "c"


def _alg_none(ring: KeyRing) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": ring.active_kid}
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}."


def _hs256_with_public_key(ring: KeyRing) -> str:
    public_pem = ring.public_keys[ring.active_kid].as_pem(private=False)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": ring.active_kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _unknown_key(ring: KeyRing) -> str:
    stranger = ECKey.generate_key("P-256", private=True)
    header = {"alg": "ES256", "typ": "at+jwt", "kid": ring.active_kid}
    return jws.serialize_compact(
        header, json.dumps(claims()).encode(), stranger, algorithms=["ES256"]
    )


def _stranger_kid(ring: KeyRing) -> str:
    stranger = ECKey.generate_key("P-256", private=True)
    header = {"alg": "ES256", "typ": "at+jwt", "kid": stranger.thumbprint()}
    return jws.serialize_compact(
        header, json.dumps(claims()).encode(), stranger, algorithms=["ES256"]
    )


HOSTILE: dict[str, Callable[[KeyRing], str]] = {
    "alg none": _alg_none,
    "HS256 signed with the public key": _hs256_with_public_key,
    "unknown crit": lambda r: raw_signed(
        r, {**good_header(r), "crit": ["x-bpo"], "x-bpo": 1}, claims()
    ),
    "1 MB header": lambda r: raw_signed(r, {**good_header(r), "pad": "x" * 1_000_000}, claims()),
    "expired": lambda r: signed(r, good_header(r), claims(exp=int(time.time()) - 120)),
    "not yet valid": lambda r: signed(r, good_header(r), claims(nbf=int(time.time()) + 600)),
    "issued in the future": lambda r: signed(r, good_header(r), claims(iat=int(time.time()) + 600)),
    "wrong iss": lambda r: signed(r, good_header(r), claims(iss="https://evil.example")),
    "wrong aud": lambda r: signed(r, good_header(r), claims(aud="https://other.example")),
    "typ JWT": lambda r: signed(r, {**good_header(r), "typ": "JWT"}, claims()),
    "no typ": lambda r: signed(r, {"alg": "ES256", "kid": r.active_kid}, claims()),
    "signed by another key under our kid": _unknown_key,
    "unknown kid": _stranger_kid,
    "lifetime over 10 minutes": lambda r: signed(
        r, good_header(r), claims(exp=int(time.time()) + 3600)
    ),
    "missing jti": lambda r: signed(
        r, good_header(r), {k: v for k, v in claims().items() if k != "jti"}
    ),
    "float exp": lambda r: signed(r, good_header(r), claims(exp=time.time() + 60.5)),
    "claims not an object": lambda r: jws.serialize_compact(
        good_header(r), b"[1, 2]", r.signing_key, algorithms=["ES256"]
    ),
    "garbage": lambda r: "not.a.jwt",
    "two segments": lambda r: "abc.def",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_tokens_are_refused(ring: KeyRing, case: str) -> None:
    token = HOSTILE[case](ring)
    with pytest.raises(InvalidToken):
        verify(ring, token)


async def test_rotation_fails_no_request_and_retires_old_keys(db: Database) -> None:
    before = KeyRing(TEST_SECRET_KEY)
    await before.load(db.engine)  # a process that has not reloaded since
    old_token, _ = issue_access_token(
        before, issuer=ISSUER, audience=AUDIENCE, subject="c", client_id="c", scope=""
    )
    async with db.sessionmaker.begin() as session:
        new_active = await rotate_keys(session, TEST_SECRET_KEY)
    after = KeyRing(TEST_SECRET_KEY)
    await after.load(db.engine)
    assert after.active_kid == new_active != before.active_kid
    new_token, _ = issue_access_token(
        after, issuer=ISSUER, audience=AUDIENCE, subject="c", client_id="c", scope=""
    )
    # Old token on the new ring (as previous), new token on the stale ring (it was next).
    verify(after, old_token)
    verify(before, new_token)
    assert len(after.jwks["keys"]) == 3  # next, active, previous

    async with db.sessionmaker.begin() as session:
        await rotate_keys(session, TEST_SECRET_KEY)
    latest = KeyRing(TEST_SECRET_KEY)
    await latest.load(db.engine)
    with pytest.raises(InvalidToken, match="unknown or retired"):
        verify(latest, old_token)  # its key is retired two rotations on
    verify(latest, new_token)


# --- the same tokens at the API: 401 with RFC 6750's challenge ---------------------------


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = build_app(dataclasses.replace(settings, public_base_url=ISSUER))
    async with AsyncTestClient(app=app) as client:
        yield client


def refused_401(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_the_api_answers_401_to_each(
    api: AsyncTestClient[Litestar], ring: KeyRing, case: str
) -> None:
    refused_401(await api.get("/v1/me", headers=bearer(HOSTILE[case](ring))))


async def test_a_revoked_jti_and_a_deactivated_users_token_get_401(
    api: AsyncTestClient[Litestar], ring: KeyRing, db: Database
) -> None:
    tenant = await make_tenant(db, "hostile-firm")
    user_id = await make_user(db, "ana@hostile.example", tenants={tenant: "tenant_member"})

    def mint() -> tuple[str, dict[str, Any]]:
        return issue_access_token(
            ring, issuer=ISSUER, audience=AUDIENCE, subject=str(user_id),
            client_id="console", scope="work:read", tenant=tenant.tenant_id,
        )  # fmt: skip

    token, minted = mint()
    assert (await api.get("/v1/me", headers=bearer(token))).status_code == 200
    async with db.sessionmaker.begin() as session:
        await deny_jti(session, minted["jti"], minted["exp"])
    refused_401(await api.get("/v1/me", headers=bearer(token)))

    token, _ = mint()
    assert (await api.get("/v1/me", headers=bearer(token))).status_code == 200
    async with db.sessionmaker.begin() as session:
        await session.execute(update(User).where(User.id == user_id).values(status="deactivated"))
    refused_401(await api.get("/v1/me", headers=bearer(token)))
    refused_401(await api.get(f"/v1/tenants/{tenant.slug}/users", headers=bearer(token)))


async def test_no_token_or_another_scheme_is_a_401_challenge(
    api: AsyncTestClient[Litestar],
) -> None:
    bare = await api.get("/v1/me")
    assert bare.status_code == 401 and bare.headers["www-authenticate"] == 'Bearer realm="bpo"'
    refused_401(await api.get("/v1/me", headers={"Authorization": "Basic YTpi"}))
