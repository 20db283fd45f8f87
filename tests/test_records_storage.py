"""Both stores through a real `bpo serve`: content of 0 B, 1 B, 5 MiB + 1 and 100 MiB streamed
in and out with its hash checked, tampering on disk and in S3 refused, and the S3 store's
Object Lock refusing early deletion by itself (moto's S3 server on loopback)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bpo.core.db import Database
from bpo.records.storage import Lock, S3Settings, Spooled, StoreRefused, open_store
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.processes import spawn_serve
from tests.support.records import S3_KEY, S3_SECRET, S3Server, filed, firm, s3_server

MIB = 1 << 20
SIZES = (0, 1, 5 * MIB + 1, 100 * MIB)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def _store_env(backend: str, s3: S3Server, data_dir: Path) -> dict[str, str]:
    env = {"BPO_DATA_DIR": str(data_dir)}
    if backend == "s3":
        bucket = s3.bucket(locked=False)
        env |= {
            "BPO_RECORDS_URL": f"s3://{bucket}/firm-records",
            "BPO_RECORDS_S3_ENDPOINT": s3.endpoint,
            "BPO_RECORDS_S3_ACCESS_KEY": S3_KEY,
            "BPO_RECORDS_S3_SECRET_KEY": S3_SECRET,
            "BPO_RECORDS_TEST_BUCKET": bucket,
        }
    return env


@pytest.fixture(params=["file", "s3"])
def served(
    request: pytest.FixtureRequest, settings: Settings, s3: S3Server, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    env = _store_env(request.param, s3, tmp_path / "data")
    process, base = spawn_serve(
        settings.database_url, settings.broker_url, BPO_SECRET_KEY=TEST_SECRET_KEY,
        BPO_LOG_LEVEL="WARNING", BPO_PUBLIC_URL=settings.public_url,
        BPO_BROKER_NAMESPACE=f"bpo-test-{uuid.uuid4().hex[:8]}", **env,
    )  # fmt: skip
    try:
        yield base, env | {"backend": request.param}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _pattern(size: int) -> Iterator[bytes]:
    """`size` pseudo-random bytes in 1 MiB pieces (never held whole)."""
    seed = hashlib.sha256(str(size).encode()).digest()
    block = (seed * (MIB // 32 + 1))[:MIB]
    left = size
    counter = 0
    while left > 0:
        piece = hashlib.sha256(counter.to_bytes(8, "big")).digest() + block[32:]
        yield piece[: min(left, MIB)]
        left -= min(left, MIB)
        counter += 1


async def _streamed(size: int) -> AsyncIterator[bytes]:
    for piece in _pattern(size):
        yield piece


async def test_round_trips_of_every_size_on_both_stores(
    served: tuple[str, dict[str, str]], db: Database, settings: Settings
) -> None:
    base, env = served
    slug = f"store-{env['backend']}"
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        _, admin = await firm(http, db, settings, slug)  # type: ignore[arg-type]
        for size in SIZES:
            want = hashlib.sha256()
            for piece in _pattern(size):
                want.update(piece)
            doc = await filed(http, slug, admin, title=f"size {size}")  # type: ignore[arg-type]
            url = f"/v1/tenants/{slug}/records/documents/{doc['id']}/content"
            put = await http.put(url, content=_streamed(size), headers=admin)  # chunked
            assert put.status_code == 201, put.text
            assert put.json()["current_version"]["sha256"] == want.hexdigest()
            assert put.json()["current_version"]["size"] == size
            got, length = hashlib.sha256(), 0
            async with http.stream("GET", url, headers=admin) as answer:
                assert answer.status_code == 200
                assert answer.headers["etag"] == f'"{want.hexdigest()}"'
                async for chunk in answer.aiter_bytes():
                    got.update(chunk)
                    length += len(chunk)
            assert (got.hexdigest(), length) == (want.hexdigest(), size)
        over = await http.put(
            url, content=_streamed(2 * MIB), headers={**admin, "Content-Digest": "sha-256=:" +
            "A" * 43 + "=:"},
        )  # fmt: skip
        assert over.status_code == 422 and over.json()["type"].endswith("/digest-mismatch")


async def test_tampering_in_s3_is_refused(
    s3: S3Server, settings: Settings, db: Database, tmp_path: Path
) -> None:
    env = _store_env("s3", s3, tmp_path / "data")
    process, base = spawn_serve(
        settings.database_url, settings.broker_url, BPO_SECRET_KEY=TEST_SECRET_KEY,
        BPO_LOG_LEVEL="WARNING", BPO_PUBLIC_URL=settings.public_url, **env,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            _, admin = await firm(http, db, settings, "store-tamper")  # type: ignore[arg-type]
            content = os.urandom(10_000)
            doc = await filed(http, "store-tamper", admin, content)  # type: ignore[arg-type]
            sha = hashlib.sha256(content).hexdigest()
            keys = [
                o["Key"]
                for o in s3.client().list_objects_v2(Bucket=env["BPO_RECORDS_TEST_BUCKET"])[
                    "Contents"
                ]
                if o["Key"].endswith(sha)
            ]
            assert len(keys) == 1 and keys[0].startswith("firm-records/")
            s3.client().put_object(
                Bucket=env["BPO_RECORDS_TEST_BUCKET"], Key=keys[0], Body=content[::-1]
            )
            url = f"/v1/tenants/store-tamper/records/documents/{doc['id']}/content"
            answer = await http.get(url, headers=admin)
            assert answer.status_code == 500, answer.text
            assert answer.json()["type"].endswith("/record-corrupted")
            assert content[::-1][:64] not in answer.content
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


async def test_object_lock_refuses_early_deletion_in_the_store_itself(
    s3: S3Server, tmp_path: Path
) -> None:
    bucket = s3.bucket(locked=True)
    store: Any = open_store(
        f"s3://{bucket}/locked", tmp_path, S3Settings(s3.endpoint, "us-east-1", S3_KEY, S3_SECRET)
    )
    assert await store.locking()
    from datetime import date

    path = tmp_path / "blob"
    path.write_bytes(b"kept for years")
    sha = hashlib.sha256(b"kept for years").hexdigest()
    version = await store.put(
        Spooled(path, sha, 14), f"t/{sha}", Lock("compliance", date(2033, 1, 1))
    )
    assert version
    head = s3.client().head_object(Bucket=bucket, Key=f"locked/t/{sha}", VersionId=version)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].date().isoformat() == "2033-01-01"
    with pytest.raises(StoreRefused):
        await store.remove(f"t/{sha}", version, bypass=True)
    await store.protect(f"t/{sha}", version, Lock("compliance", date(2034, 1, 1), held=True))
    head = s3.client().head_object(Bucket=bucket, Key=f"locked/t/{sha}", VersionId=version)
    assert head["ObjectLockRetainUntilDate"].date().isoformat() == "2034-01-01"
    assert head["ObjectLockLegalHoldStatus"] == "ON"
    await store.protect(f"t/{sha}", version, Lock("compliance", date(2030, 1, 1)))  # never shorter
    head = s3.client().head_object(Bucket=bucket, Key=f"locked/t/{sha}", VersionId=version)
    assert head["ObjectLockRetainUntilDate"].date().isoformat() == "2034-01-01"
    fetched = await store.fetch(f"t/{sha}", version, sha)
    assert fetched.path.read_bytes() == b"kept for years"
    fetched.close()
    # Governance mode yields to a bypass (a provider admin's early deletion), once no hold.
    gov = tmp_path / "gov"
    gov.write_bytes(b"governed")
    gsha = hashlib.sha256(b"governed").hexdigest()
    gversion = await store.put(
        Spooled(gov, gsha, 8), f"t/{gsha}", Lock("governance", date(2033, 1, 1))
    )
    with pytest.raises(StoreRefused):
        await store.remove(f"t/{gsha}", gversion)
    await store.remove(f"t/{gsha}", gversion, bypass=True)


async def test_a_streamed_body_past_the_limit_is_cut_off_and_nothing_kept(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    process, base = spawn_serve(
        settings.database_url, settings.broker_url, BPO_SECRET_KEY=TEST_SECRET_KEY,
        BPO_LOG_LEVEL="WARNING", BPO_PUBLIC_URL=settings.public_url,
        BPO_DATA_DIR=str(data_dir), BPO_RECORDS_MAX_BYTES=str(3 * MIB),
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            _, admin = await firm(http, db, settings, "store-limit")  # type: ignore[arg-type]
            doc = await filed(http, "store-limit", admin)  # type: ignore[arg-type]
            url = f"/v1/tenants/store-limit/records/documents/{doc['id']}/content"
            # No Content-Length (chunked): the running count stops it at the limit. The
            # answer comes before the body ends, so this connection is not reused after it.
            cut = {**admin, "Connection": "close"}
            answer = await http.put(url, content=_streamed(8 * MIB), headers=cut)
            assert answer.status_code == 413, answer.text
            assert answer.json()["type"].endswith("/payload-too-large")
            page = f"/v1/tenants/store-limit/records/documents/{doc['id']}"
            shown = (await http.get(page, headers=admin)).json()
            assert shown["status"] == "pending" and shown["current_version"] is None
            fits = await http.put(url, content=_streamed(3 * MIB), headers=admin)
            assert fits.status_code == 201, fits.text
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    left = [p for p in (data_dir / "records").rglob("*") if p.is_file()]
    assert len(left) == 1 and left[0].name == fits.json()["current_version"]["sha256"]
