"""Record keeping (issue 22): a large document through the API beside `cp` of the same file
on the same disk, with the API process's peak memory; many 1 MiB documents at once on each
store; full-text search over a million documents. Printed, never asserted.

Setup: a fresh database; one firm made through bpo's provisioning with a record class and
an API client (records:read records:write); `bpo serve` (one process) with its data dir on
this machine's disk; for the S3 store, moto's S3 server on loopback (a separate process).

  large     a --size-mib file: `cp` to the same disk (the baseline), then PUT through the
            API (curl -T, streamed; no Content-Length limit hit) and GET back (curl, to a
            file): MB/s each and the ratio to cp; the API process's peak RSS (VmHWM) after
            both, and before them (start-up).
  many      --docs documents of 1 MiB, --clients concurrent clients, each one multipart
            POST (metadata and file in one request): documents/s, on the local store and on
            the S3 store (moto: an in-memory server, so this measures bpo's side).
  search    --search-docs documents written straight into the firm's tables (titles,
            counterparties, tags and 40 words of text from a 5,000-word vocabulary; the
            trigger builds each search vector), then GET /documents?q=... with a word of
            the vocabulary (half of them with a counterparty filter), --reads times on one
            connection: p50/p95.

Goals (issue 22): large upload and download >= 0.5 of cp, API peak RSS < 100 MB; search
p95 < 300 ms over 1,000,000 documents.

Usage: python benchmarks/records.py [--size-mib 1024] [--docs 2000] [--clients 32]
       [--search-docs 1000000] [--reads 200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from benchmarks import _cli
from benchmarks._identity import server_env
from benchmarks._load import free_port, spawned
from benchmarks._services import services

from bpo.core.db import Database
from bpo.core.security import new_client_secret, secret_digest
from bpo.core.tenancy import TenantContext, issue_tenant_context, tenant_session
from bpo.identity.keys import KeyRing
from bpo.identity.models import ApiClient
from bpo.identity.tokens import issue_access_token
from bpo.models import load_all_models
from bpo.platform.tenants.service import create_tenant

SLUG = "records-bench"
MIB = 1 << 20
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopq"
PARTIES = [f"Counterparty {n:03d} Ltd" for n in range(500)]


async def seed(url: str, issuer: str) -> tuple[TenantContext, str]:
    db = Database(url)
    try:
        async with db.sessionmaker.begin() as session:
            tenant_id = (await create_tenant(session, SLUG, "Records bench")).tenant.id
            session.add(
                ApiClient(
                    tenant_id=tenant_id,
                    client_id=f"{SLUG}-client",
                    name="bench",
                    scopes=["records:read", "records:write"],
                    secret_digest=secret_digest(SECRET, new_client_secret()),
                )
            )
        tenant = issue_tenant_context(tenant_id, SLUG)
        ring = KeyRing(SECRET)
        await ring.load(db.engine)
    finally:
        await db.dispose()
    token, _ = issue_access_token(
        ring,
        issuer=issuer,
        audience=issuer,
        subject=f"{SLUG}-client",
        client_id=f"{SLUG}-client",
        scope="records:read records:write",
        tenant=tenant_id,
    )
    return tenant, token


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(left, MIB)])
            left -= MIB


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


async def new_document(http: httpx.AsyncClient, headers: dict[str, str], title: str) -> str:
    body = {"record_class": "bench", "title": title, "document_date": "2026-11-03"}
    made = await http.post(f"/v1/tenants/{SLUG}/records/documents", json=body, headers=headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def add_class(url: str, tenant: TenantContext) -> None:
    db = Database(url)
    try:
        async with tenant_session(db.engine, tenant, "worker") as session:
            from sqlalchemy import text

            await session.execute(
                text(
                    "INSERT INTO records_classes"
                    " (id, code, name, mode, retention_years, created_by)"
                    " VALUES (:id, 'bench', 'Bench', 'governance', 7, 'bench')"
                ),
                {"id": uuid.uuid4()},
            )
    finally:
        await db.dispose()


def large(
    base: str, port: int, pid: int, headers: dict[str, str], size_mib: int, tmp: Path
) -> None:
    source, copy, back = tmp / "source.bin", tmp / "copy.bin", tmp / "back.bin"
    make_file(source, size_mib * MIB)
    subprocess.run(["sync"], check=False)
    started_rss = vm_hwm_mb(pid)
    cp_s = min(timed(["cp", str(source), str(copy)]) for _ in range(2))
    copy.unlink()
    doc = asyncio.run(_doc(base, headers, "large"))
    auth = ["-H", f"Authorization: {headers['Authorization']}"]
    url = f"http://127.0.0.1:{port}/v1/tenants/{SLUG}/records/documents/{doc}/content"
    up_s = timed(
        [
            "curl",
            "-sS",
            "-f",
            "-X",
            "PUT",
            "-T",
            str(source),
            *auth,
            "-H",
            "Content-Type: application/octet-stream",
            url,
            "-o",
            "/dev/null",
        ]
    )
    down_s = timed(["curl", "-sS", "-f", *auth, url, "-o", str(back)])
    same = (
        hashlib.sha256(source.read_bytes()).digest() == hashlib.sha256(back.read_bytes()).digest()
    )
    mb = size_mib * MIB / 1e6
    print(f"large {size_mib} MiB: cp {mb / cp_s:,.0f} MB/s ({cp_s:.2f} s)")
    print(f"  upload {mb / up_s:,.0f} MB/s ({up_s:.2f} s) = {cp_s / up_s:.2f} of cp")
    print(
        f"  download {mb / down_s:,.0f} MB/s ({down_s:.2f} s) = {cp_s / down_s:.2f} of cp;"
        f" content identical: {same}"
    )
    print(f"  API peak RSS: {vm_hwm_mb(pid):.0f} MB (after start-up: {started_rss:.0f} MB)")


async def _doc(base: str, headers: dict[str, str], title: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=600) as http:
        return await new_document(http, headers, title)


def many(base: str, headers: dict[str, str], docs: int, clients: int, tmp: Path) -> float:
    """Documents per second, each one multipart POST of a distinct 1 MiB file, sent by
    `curl --parallel` (one C process: the load generator costs little of the machine)."""
    folder = tmp / f"many-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    content = bytearray(os.urandom(MIB))
    meta = folder / "meta.json"
    meta.write_text(
        json.dumps({"record_class": "bench", "title": "many", "document_date": "2026-11-03"})
    )
    lines = []
    for n in range(docs):
        content[-8:] = n.to_bytes(8, "big")
        (folder / f"{n}.bin").write_bytes(content)
        lines += [
            f'url = "{base}/v1/tenants/{SLUG}/records/documents"',
            f'header = "Authorization: {headers["Authorization"]}"',
            f'form = "metadata=<{meta}"',
            f'form = "file=@{folder / f"{n}.bin"};type=application/octet-stream"',
            'output = "/dev/null"',
            'write-out = "%{http_code}\\n"',
            "next",
        ]
    config = folder / "curl.conf"
    config.write_text("\n".join(lines[:-1]) + "\n")
    started = time.perf_counter()
    done = subprocess.run(
        ["curl", "-sS", "--parallel", "--parallel-max", str(clients), "-K", str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    shutil.rmtree(folder)
    codes = done.stdout.split()
    failed = len([c for c in codes if c != "201"]) + (docs - len(codes))
    if failed:
        print(f"  !! {failed} uploads failed: {sorted(set(codes))[:5]} {done.stderr[:200]}")
    return docs / elapsed


async def fill(url: str, tenant: TenantContext, count: int) -> float:
    """`count` documents written by SQL (the search trigger fills each vector)."""
    from sqlalchemy import text

    rng = random.Random(22)
    words = [f"w{n:04d}" for n in range(5000)]
    started = time.perf_counter()
    db = Database(url)
    try:
        batch = 20_000
        for start in range(0, count, batch):
            rows = min(batch, count - start)
            texts = [" ".join(rng.choices(words, k=40)) for _ in range(rows)]
            parties = [rng.choice(PARTIES) for _ in range(rows)]
            async with tenant_session(db.engine, tenant, "worker") as session:
                await session.execute(
                    text(
                        "INSERT INTO records_documents (id, class_id, title, type, counterparty,"
                        " document_date, received_on, tags, mode, retain_until, status,"
                        " extracted_text, created_by)"
                        " SELECT gen_random_uuid(), c.id, 'Document ' || n, 'invoice', p,"
                        " date '2020-01-01' + CAST(n % 2000 AS int),"
                        " date '2020-01-01' + CAST(n % 2000 AS int), ARRAY['t' || (n % 50)],"
                        " 'governance', date '2030-01-01', 'active', t, 'bench'"
                        " FROM records_classes c,"
                        " unnest(CAST(:texts AS text[]), CAST(:parties AS text[]))"
                        "   WITH ORDINALITY AS u(t, p, n) WHERE c.code = 'bench'"
                    ),
                    {"texts": texts, "parties": parties},
                )
        async with db.engine.connect() as conn:
            await conn.execute(text(f'ANALYZE "{tenant.schema}".records_documents'))
            await conn.commit()
    finally:
        await db.dispose()
    return time.perf_counter() - started


async def search(base: str, headers: dict[str, str], reads: int) -> list[float]:
    rng = random.Random(5)
    times: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for n in range(reads + 5):
            params = {"q": f"w{rng.randrange(5000):04d}", "limit": "50"}
            if n % 2:
                params["counterparty"] = rng.choice(PARTIES)
            started = time.perf_counter()
            reply = await http.get(
                f"/v1/tenants/{SLUG}/records/documents", params=params, headers=headers
            )
            elapsed = time.perf_counter() - started
            assert reply.status_code == 200, reply.text
            if n >= 5:  # the first few warm the caches
                times.append(elapsed * 1000)
    return times


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = _cli.parser(__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--search-docs", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=200)
    args = _cli.parse(
        parser, {"size_mib": 16, "docs": 64, "clients": 8, "search_docs": 5000, "reads": 20}
    )
    load_all_models()
    with (
        services() as svc,
        tempfile.TemporaryDirectory(prefix="bpo-records-bench-", dir=Path.cwd()) as tmp,
    ):
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        tenant, token = asyncio.run(seed(svc.database_url, issuer))
        asyncio.run(add_class(svc.database_url, tenant))
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        env = server_env(svc.database_url, svc.broker_url, SECRET, port)
        env |= {"BPO_DATA_DIR": str(Path(tmp) / "data"), "BPO_PUBLIC_URL": issuer}
        argv = [sys.executable, "-m", "bpo", "serve"]
        with spawned(argv, env, port, "/health/live") as server:
            large(base, port, server.process.pid, headers, args.size_mib, Path(tmp))
            rate = many(base, headers, args.docs, args.clients, Path(tmp))
            print(f"many 1 MiB documents, {args.clients} clients, local store: {rate:,.0f} docs/s")
            filled = asyncio.run(fill(svc.database_url, tenant, args.search_docs))
            print(f"search: {args.search_docs:,} documents written in {filled:.0f} s")
            times = asyncio.run(search(base, headers, args.reads))
            print(
                f"  q= over {args.search_docs:,} documents: p50 {statistics.median(times):.1f} ms"
                f" p95 {pct(times, 0.95):.1f} ms max {max(times):.1f} ms"
            )
        s3_many(env, argv, port, headers, args, Path(tmp))


def s3_many(
    env: dict[str, str],
    argv: list[str],
    port: int,
    headers: dict[str, str],
    args: argparse.Namespace,
    tmp: Path,
) -> None:
    """The same many-documents run with the S3 store (moto's server on loopback)."""
    import boto3

    moto_port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        for _ in range(100):
            try:
                httpx.get(f"{endpoint}/moto-api/")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="k",
            aws_secret_access_key="s",
        ).create_bucket(Bucket="bench", ObjectLockEnabledForBucket=True)
        s3_env = env | {
            "BPO_RECORDS_URL": "s3://bench/records",
            "BPO_RECORDS_S3_ENDPOINT": endpoint,
            "BPO_RECORDS_S3_ACCESS_KEY": "k",
            "BPO_RECORDS_S3_SECRET_KEY": "s",
        }
        with spawned(argv, s3_env, port, "/health/live"):
            base = f"http://127.0.0.1:{port}"
            rate = many(base, headers, args.docs, args.clients, tmp)
            print(
                f"many 1 MiB documents, {args.clients} clients, S3 store (moto, Object Lock):"
                f" {rate:,.0f} docs/s"
            )
    finally:
        moto.terminate()
        moto.wait(10)


if __name__ == "__main__":
    main()
