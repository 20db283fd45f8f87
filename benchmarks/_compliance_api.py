"""Single-name screening through the API: `bpo serve` against a fresh database with the
full SDN list loaded (tests/data/sanctions), one connection sending POST /screenings one
after another; p50/p95 beside GET /v1/me on the same connection (the request path's own
cost: token, tenant, JSON), so the ratio shows what screening adds.

Usage: python benchmarks/_compliance_api.py [--count 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._identity import server_env
from benchmarks._load import first_response, free_port, run, spawned
from benchmarks._services import services

from bpo.compliance import sanctions
from bpo.core.db import Database
from bpo.core.security import new_client_secret, secret_digest
from bpo.identity.keys import KeyRing
from bpo.identity.models import ApiClient
from bpo.identity.tokens import issue_access_token
from bpo.models import load_all_models
from bpo.platform.tenants.service import create_tenant

SLUG = "bench-screening"
DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "sanctions"
NAMES = ("Abu Zubaydah", "Banco Nacional de Cuba", "Maria Schneider", "Acme Trading GmbH",
         "Hassan Nasrallah", "Kim Jong Un", "Johann Müller", "Aerocaribbean Airlines")  # fmt: skip


async def seed(url: str, secret_key: str, issuer: str) -> str:
    """The firm, an API client with the compliance scopes, the SDN list; a token."""
    db = Database(url)
    try:
        async with db.sessionmaker.begin() as session:
            tenant_id = (await create_tenant(session, SLUG, "Screening bench")).tenant.id
            session.add(ApiClient(
                tenant_id=tenant_id, client_id=f"{SLUG}-client", name=SLUG,
                scopes=["compliance:read", "compliance:write"],
                secret_digest=secret_digest(secret_key, new_client_secret()),
            ))  # fmt: skip
        files = [(f"{k}.csv", (DATA / f"ofac_{k}.csv").read_bytes()) for k in ("sdn", "alt", "add")]
        async with db.sessionmaker.begin() as session:
            await sanctions.load(session, files, "bench", None)
        ring = KeyRing(secret_key)
        await ring.load(db.engine)
    finally:
        await db.dispose()
    token, _ = issue_access_token(
        ring, issuer=issuer, audience=issuer, subject=f"{SLUG}-client",
        client_id=f"{SLUG}-client", scope="compliance:read compliance:write", tenant=tenant_id,
    )  # fmt: skip
    return token


def request(method: str, path: str, token: str, body: object | None = None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def timed(port: int, requests: list[bytes]) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    took = []
    try:
        for req in requests:
            started = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n")
                          if h.lower().startswith(b"content-length"))  # fmt: skip
            await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200"), head
            took.append(time.perf_counter() - started)
    finally:
        writer.close()
    return took


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def figure(count: int) -> None:
    load_all_models()
    with services() as svc:
        secret_key, port = secrets.token_urlsafe(32), free_port()
        issuer = f"http://127.0.0.1:{port}"
        token = run(seed(svc.database_url, secret_key, issuer))
        env = server_env(svc.database_url, svc.broker_url, secret_key, port)
        rng = random.Random(5)
        base = f"/v1/tenants/{SLUG}/compliance/screenings"
        screens = [request("POST", base, token, {"name": rng.choice(NAMES)}) for _ in range(count)]
        me = [request("GET", "/v1/me", token)] * count
        with spawned([sys.executable, "-m", "bpo", "serve"], env, port, "/health/ready"):
            started = time.perf_counter()
            status, answer = first_response(port, screens[0])  # builds the index
            assert status == 200, answer[:300]
            first = time.perf_counter() - started
            took = run(timed(port, screens))
            baseline = run(timed(port, me))
        print(f"api      first screening (index built in the server): {first:.2f} s")
        print(f"api      POST /screenings x{count}, one connection: p50 {pct(took, 0.5):.1f} ms, "
              f"p95 {pct(took, 0.95):.1f} ms (goal p95 < 50 ms); GET /v1/me p50 "
              f"{pct(baseline, 0.5):.1f} ms, p95 {pct(baseline, 0.95):.1f} ms; ratio p95 "
              f"{pct(took, 0.95) / max(pct(baseline, 0.95), 1e-9):.1f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="screenings timed")
    figure(parser.parse_args().count)


if __name__ == "__main__":
    main()
