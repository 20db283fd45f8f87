"""Where record content lives: one interface, two stores, content-addressed by SHA-256.

- `LocalStore` (the default): files under the data dir (`<root>/<tenant>/<ab>/<sha256>`),
  written to a temporary file beside them and renamed into place, read-only once there.
- `S3Store`: any S3-compatible store (`BPO_RECORDS_URL=s3://bucket/prefix`). Where the
  bucket has Object Lock, each object carries its document's mode and retain-until date
  (extended, never shortened) and a legal hold while a hold covers it; the store itself then
  refuses early deletion too.

Content arrives through `spool` (the request body streamed into a temporary file while its
SHA-256 and size are computed, in constant memory) and is read back through `fetch`, which
re-hashes it before the first byte goes out: content that no longer matches its hash is
`Corrupted`, never served.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from bpo.settings import Settings

CHUNK = 1 << 20  # 1 MiB: what is read, hashed and written at a time
HEAD = 8192  # bytes kept to sniff the content type


class Corrupted(Exception):
    """Stored content that no longer matches its recorded hash (or is missing)."""


class TooLarge(Exception):
    """A body past the configured limit (checked while streaming)."""


class StoreRefused(Exception):
    """The store itself refused (an Object Lock retention or legal hold)."""


@dataclass(slots=True)
class Lock:
    """What the store should hold an object to: the strongest of its documents."""

    mode: str  # governance | compliance
    retain_until: date
    held: bool = False


@dataclass(slots=True)
class Spooled:
    """A body streamed to a temporary file: its hashes, size and first bytes."""

    path: Path
    sha256: str = ""
    size: int = 0
    head: bytes = b""
    extra: dict[str, str] = field(default_factory=dict)  # other digests the client named

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def spool(
    chunks: AsyncIterator[bytes], into: Path, limit: int, also: tuple[str, ...] = ()
) -> Spooled:
    """Stream `chunks` into a new file under `into`, hashing as it goes. Writes are batched
    to 1 MiB and hashed and written on a thread while the next batch arrives (one batch in
    flight, one filling: memory stays at two batches)."""
    os.makedirs(into, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=into, prefix=".upload-")
    out = Spooled(Path(name))
    sha, others = hashlib.sha256(), {a: hashlib.new(a) for a in also}
    pending: list[bytes] = []
    held = 0
    writing: asyncio.Future[None] | None = None

    def flush(parts: list[bytes]) -> None:
        data = b"".join(parts)
        sha.update(data)
        for h in others.values():
            h.update(data)
        _write_all(fd, data)

    try:
        async for chunk in chunks:
            out.size += len(chunk)
            if out.size > limit:
                raise TooLarge(limit)
            if len(out.head) < HEAD:
                out.head += chunk[: HEAD - len(out.head)]
            pending.append(chunk)
            held += len(chunk)
            if held >= CHUNK:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(asyncio.to_thread(flush, pending))
                pending, held = [], 0
        if writing is not None:
            await writing
        await asyncio.to_thread(flush, pending)
    except BaseException:
        if writing is not None:
            await asyncio.gather(writing, return_exceptions=True)
        os.close(fd)
        out.discard()
        raise
    os.close(fd)
    out.sha256 = sha.hexdigest()
    out.extra = {a: h.hexdigest() for a, h in others.items()}
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def hash_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            sha.update(block)
    return sha.hexdigest()


def content_key(tenant_id: Any, sha256: str) -> str:
    return f"{tenant_id}/{sha256[:2]}/{sha256}"


@dataclass(slots=True)
class Fetched:
    """Verified content as a local file (the stored file itself, or a downloaded copy)."""

    path: Path
    size: int
    temporary: bool

    def close(self) -> None:
        if self.temporary:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class Store(Protocol):
    name: str
    spool_dir: Path

    async def put(self, spooled: Spooled, key: str, lock: Lock | None) -> str | None: ...

    async def fetch(self, key: str, version: str | None, sha256: str) -> Fetched: ...

    async def remove(self, key: str, version: str | None, *, bypass: bool = False) -> None: ...

    async def protect(self, key: str, version: str | None, lock: Lock) -> None: ...


class LocalStore:
    """Files under `root`, content-addressed; rename makes a write appear whole or not at all."""

    name = "file"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.spool_dir = root / ".spool"  # same file system: the final rename never copies

    def path(self, key: str) -> Path:
        return self.root / key

    async def put(self, spooled: Spooled, key: str, lock: Lock | None) -> str | None:
        target = self.path(key)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # the same content, already kept: one copy serves both
                spooled.discard()
                return
            os.chmod(spooled.path, 0o440)
            os.replace(spooled.path, target)

        await asyncio.to_thread(move)
        return None

    async def fetch(self, key: str, version: str | None, sha256: str) -> Fetched:
        path = self.path(key)

        def check() -> int:
            try:
                actual = hash_file(path)
            except FileNotFoundError:
                raise Corrupted(f"{key} is missing") from None
            if actual != sha256:
                raise Corrupted(f"{key} hashes to {actual}")
            return path.stat().st_size

        return Fetched(path, await asyncio.to_thread(check), temporary=False)

    async def remove(self, key: str, version: str | None, *, bypass: bool = False) -> None:
        await asyncio.to_thread(lambda: self.path(key).unlink(missing_ok=True))

    async def protect(self, key: str, version: str | None, lock: Lock) -> None:
        return None  # the database's rules guard local files; there is no lock to set


class S3Store:
    """An S3-compatible bucket through boto3 (its calls run on threads). Object Lock is used
    when the bucket has it enabled (checked once)."""

    name = "s3"

    def __init__(self, url: str, spool_dir: Path, client: Any) -> None:
        parts = urlsplit(url)
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.spool_dir = spool_dir
        self.client = client
        self._locking: bool | None = None

    def key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            return await asyncio.to_thread(fn, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            # An Object Lock retention or legal hold answers AccessDenied (S3 documents it).
            if code == "AccessDenied" or (code == "InvalidRequest" and "lock" in str(exc).lower()):
                raise StoreRefused(str(exc)) from exc
            raise

    async def locking(self) -> bool:
        if self._locking is None:
            from botocore.exceptions import ClientError

            try:
                conf = await asyncio.to_thread(
                    self.client.get_object_lock_configuration, Bucket=self.bucket
                )
                enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
                self._locking = enabled == "Enabled"
            except ClientError:
                self._locking = False
        return self._locking

    async def put(self, spooled: Spooled, key: str, lock: Lock | None) -> str | None:
        existing = await self._existing(key, spooled.size)
        if existing is not None:  # the same content, already kept: one copy serves both
            spooled.discard()
            version = existing.get("VersionId")
            version = str(version) if version and version != "null" else None
            if lock is not None:
                await self.protect(key, version, lock)
            return version
        extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"}
        if lock is not None and await self.locking():
            extra |= _lock_args(lock)
        try:
            await asyncio.to_thread(
                self.client.upload_file,
                str(spooled.path),
                self.bucket,
                self.key(key),
                ExtraArgs=extra,
            )
            head = await self._call(self.client.head_object, Bucket=self.bucket, Key=self.key(key))
        finally:
            spooled.discard()
        version = head.get("VersionId")
        return str(version) if version and version != "null" else None

    async def _existing(self, key: str, size: int) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head = await asyncio.to_thread(
                self.client.head_object, Bucket=self.bucket, Key=self.key(key)
            )
        except ClientError:
            return None
        return dict(head) if head.get("ContentLength") == size else None

    async def fetch(self, key: str, version: str | None, sha256: str) -> Fetched:
        from botocore.exceptions import ClientError

        fd, name = tempfile.mkstemp(dir=_made(self.spool_dir), prefix=".fetch-")
        path = Path(name)
        args = {"Bucket": self.bucket, "Key": self.key(key)} | (
            {"VersionId": version} if version else {}
        )

        def download() -> int:
            sha, size = hashlib.sha256(), 0
            body = self.client.get_object(**args)["Body"]
            with os.fdopen(fd, "wb") as out:
                while block := body.read(CHUNK):
                    sha.update(block)
                    size += len(block)
                    out.write(block)
            if sha.hexdigest() != sha256:
                raise Corrupted(f"{key} hashes to {sha.hexdigest()}")
            return size

        try:
            size = await asyncio.to_thread(download)
        except ClientError as exc:
            os.unlink(path)
            raise Corrupted(f"{key}: {exc.response.get('Error', {}).get('Code')}") from exc
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise
        return Fetched(path, size, temporary=True)

    async def remove(self, key: str, version: str | None, *, bypass: bool = False) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(key)}
        if version:
            args["VersionId"] = version
        if bypass:
            args["BypassGovernanceRetention"] = True
        if version and await self.locking():
            await self._call(
                self.client.put_object_legal_hold, LegalHold={"Status": "OFF"}, **_no_bypass(args)
            )
        await self._call(self.client.delete_object, **args)

    async def protect(self, key: str, version: str | None, lock: Lock) -> None:
        """Extend the object's retention to `lock` and set its legal hold on or off."""
        if not await self.locking():
            return
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(key)}
        if version:
            args["VersionId"] = version
        retention = _lock_args(lock)
        current = await self._call(self.client.head_object, **args)
        until = current.get("ObjectLockRetainUntilDate")
        if until is None or until < retention["ObjectLockRetainUntilDate"]:
            await self._call(
                self.client.put_object_retention,
                Retention={
                    "Mode": retention["ObjectLockMode"],
                    "RetainUntilDate": retention["ObjectLockRetainUntilDate"],
                },
                **args,
            )
        status = "ON" if lock.held else "OFF"
        await self._call(self.client.put_object_legal_hold, LegalHold={"Status": status}, **args)


def _lock_args(lock: Lock) -> dict[str, Any]:
    # Kept through `retain_until`: the store may delete from the next day on (UTC).
    until = datetime.combine(lock.retain_until, time.max, tzinfo=UTC).replace(microsecond=0)
    return {
        "ObjectLockMode": lock.mode.upper(),
        "ObjectLockRetainUntilDate": until,
        "ObjectLockLegalHoldStatus": "ON" if lock.held else "OFF",
    }


def _no_bypass(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k != "BypassGovernanceRetention"}


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True, slots=True)
class S3Settings:
    endpoint: str | None
    region: str
    access_key: str | None
    secret_key: str | None


def open_store(url: str | None, data_dir: Path, s3: S3Settings) -> Store:
    """The store a URL names: `s3://bucket/prefix`, `file:///path`, or (None) the data dir."""
    if url is None:
        return LocalStore(data_dir / "records")
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStore(Path(parts.path))
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name=s3.region,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        config=Config(
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    return S3Store(url, data_dir / "records-spool", client)


_opened: dict[tuple[Any, ...], Store] = {}


def store_for(settings: Settings) -> Store:
    """The process's store for these settings (one client, opened once)."""
    key = (
        settings.records_url,
        settings.data_dir,
        settings.records_s3_endpoint,
        settings.records_s3_access_key,
    )
    if key not in _opened:
        s3 = S3Settings(
            settings.records_s3_endpoint,
            settings.records_s3_region,
            settings.records_s3_access_key,
            settings.records_s3_secret_key,
        )
        _opened[key] = open_store(settings.records_url, settings.data_dir, s3)
    return _opened[key]
