"""Content over HTTP, both ways in constant memory: digests (RFC 9530 `Content-Digest` /
`Repr-Digest`, and RFC 3230 `Digest`), streaming multipart uploads, `Range` requests
(RFC 9110 §14) and the verified stream out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header

from bpo.core.errors import Problem
from bpo.records.storage import CHUNK, Fetched, Spooled, TooLarge, spool

ALGORITHMS = {"sha-256": "sha256", "sha-512": "sha512"}  # RFC 9530's active algorithms
_DICT_MEMBER = re.compile(r"\s*([a-z][a-z0-9_.*-]*)\s*=\s*:([A-Za-z0-9+/=]*):\s*(?:;[^,]*)?")
MAX_METADATA = 64 * 1024


def wanted_digests(headers: Any) -> dict[str, bytes]:
    """The digests the client sent, by hashlib name: `Content-Digest` / `Repr-Digest`
    (structured dictionaries, `sha-256=:base64:`) or `Digest` (`SHA-256=base64`). Unknown
    algorithms are ignored (RFC 9530 §2); a malformed header is a 400."""
    found: dict[str, bytes] = {}
    for name in ("content-digest", "repr-digest"):
        value = headers.get(name)
        if value:
            found |= _structured(name, value)
    legacy = headers.get("digest")
    if legacy:
        for member in legacy.split(","):
            algo, sep, encoded = member.strip().partition("=")
            if not sep:
                raise _malformed("Digest", "expected algorithm=base64")
            if algo.lower() in ALGORITHMS:
                found[ALGORITHMS[algo.lower()]] = _b64("Digest", encoded.strip())
    for algo, digest in found.items():
        if len(digest) != hashlib.new(algo).digest_size:
            raise _malformed("the digest header", f"a {algo} digest has the wrong length")
    return found


def _structured(header: str, value: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for member in value.split(","):
        match = _DICT_MEMBER.fullmatch(member)
        if match is None:
            raise _malformed(header, "expected algorithm=:base64: members (RFC 9530)")
        if match.group(1) in ALGORITHMS:
            found[ALGORITHMS[match.group(1)]] = _b64(header, match.group(2))
    return found


def _b64(header: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(header, "the digest is not base64") from None


def _malformed(header: str, why: str) -> Problem:
    return Problem(
        400, "malformed-request", f"{header}: {why}", errors=[{"pointer": header, "detail": why}]
    )


def check_digests(spooled: Spooled, wanted: dict[str, bytes]) -> None:
    """A mismatch is a 422 `digest-mismatch`; the caller stores nothing."""
    for algo, digest in wanted.items():
        actual = spooled.sha256 if algo == "sha256" else spooled.extra[algo]
        if bytes.fromhex(actual) != digest:
            spooled.discard()
            raise Problem(
                422,
                "digest-mismatch",
                f"the content's {algo} is {base64.b64encode(bytes.fromhex(actual)).decode()},"
                f" not the {base64.b64encode(digest).decode()} the request declared;"
                " nothing was stored",
            )


def digest_header(sha256_hex: str) -> str:
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


async def spool_body(
    chunks: AsyncIterator[bytes], into: Path, limit: int, wanted: dict[str, bytes]
) -> Spooled:
    try:
        spooled = await spool(chunks, into, limit, tuple(a for a in wanted if a != "sha256"))
    except TooLarge:
        raise Problem(
            413, "payload-too-large", f"the content exceeds the limit of {limit} bytes"
        ) from None
    check_digests(spooled, wanted)
    return spooled


@dataclass(slots=True)
class Upload:
    """A multipart upload: the `metadata` part (JSON) and the `file` part (spooled)."""

    metadata: bytes = b""
    spooled: Spooled | None = None
    content_type: str = "application/octet-stream"
    filename: str | None = None
    fields: list[str] = field(default_factory=list)


async def multipart_upload(
    chunks: AsyncIterator[bytes],
    content_type: str,
    into: Path,
    limit: int,
    wanted: dict[str, bytes],
) -> Upload:
    """Parse `multipart/form-data` as it streams: the file part goes straight to the
    spool (hashed as it goes), the metadata part is kept (64 KiB at most)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise Problem(400, "malformed-request", "multipart/form-data needs a boundary")
    upload = Upload()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
    state: dict[str, Any] = {"headers": {}, "name": None, "field": b"", "value": b""}
    spooling: asyncio.Task[Spooled] | None = None

    async def file_chunks() -> AsyncIterator[bytes]:
        while (item := await queue.get()) is not None:
            yield item

    pending: list[bytes] = []

    def on_part_begin() -> None:
        state["headers"], state["name"] = {}, None

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        upload.fields.append(name)
        if name == "file":
            upload.filename = disposition.get(b"filename", b"").decode("utf-8", "replace") or None
            declared = state["headers"].get(b"content-type", b"application/octet-stream")
            upload.content_type = declared.decode("latin-1")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["name"] == "file":
            pending.append(data[start:end])
        elif state["name"] == "metadata":
            upload.metadata += data[start:end]
            if len(upload.metadata) > MAX_METADATA:
                raise Problem(413, "payload-too-large", "the metadata part is over 64 KiB")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    try:
        async for chunk in chunks:
            try:
                parser.write(chunk)
            except Problem:
                raise
            except Exception as exc:
                raise Problem(
                    400, "malformed-request", f"the multipart body is malformed: {exc}"
                ) from None
            if pending:
                if spooling is None:
                    spooling = asyncio.ensure_future(spool(file_chunks(), into, limit))
                for piece in pending:
                    await queue.put(piece)
                pending.clear()
        parser.finalize()
    except BaseException:
        if spooling is not None:
            spooling.cancel()
        raise
    if spooling is None:  # an empty (or missing) file part
        spooling = asyncio.ensure_future(spool(file_chunks(), into, limit))
    await queue.put(None)
    try:
        upload.spooled = await spooling
    except TooLarge:
        raise Problem(
            413, "payload-too-large", f"the content exceeds the limit of {limit} bytes"
        ) from None
    if "file" not in upload.fields:
        upload.spooled.discard()
        raise Problem(400, "malformed-request", "the multipart body has no `file` part")
    return upload


def metadata_json(upload: Upload) -> Any:
    try:
        return json.loads(upload.metadata or b"null")
    except ValueError as exc:
        raise Problem(400, "malformed-request", f"the metadata part is not JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def byte_range(header: str | None, size: int) -> Span | None:
    """The one range a `Range: bytes=...` header asks for, or None for the whole content.
    Several ranges are answered whole (RFC 9110 lets a server ignore Range); an
    unsatisfiable one is a 416."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if (
        not dash
        or not (first.isdigit() or last.isdigit())
        or (first and not first.isdigit())
        or (last and not last.isdigit())
    ):
        return None
    if not first:  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise _unsatisfiable(size)
        return Span(max(size - n, 0), size - 1)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size)
    return Span(start, end)


def _unsatisfiable(size: int) -> Problem:
    return Problem(
        416,
        "range-not-satisfiable",
        f"the range is outside the content's {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )


async def stream_out(fetched: Fetched, span: Span | None, sha256: str) -> AsyncIterator[bytes]:
    """The verified file, in 1 MiB reads on a thread, the next read under way while a block
    is sent. The whole content is hashed again as it goes: a change since the check ends
    the stream broken rather than complete."""
    start, length = (span.start, span.length) if span else (0, fetched.size)
    whole = span is None
    sha = hashlib.sha256()
    ahead: asyncio.Future[bytes] | None = None
    try:
        with fetched.path.open("rb") as f:

            def read(size: int) -> bytes:
                block = f.read(size)
                if whole:
                    sha.update(block)
                return block

            f.seek(start)
            left = length
            ahead = asyncio.ensure_future(asyncio.to_thread(read, min(CHUNK, left)))
            while left > 0:
                block = await ahead
                if not block:
                    raise OSError("the stored content ended early")
                left -= len(block)
                if left > 0:
                    ahead = asyncio.ensure_future(asyncio.to_thread(read, min(CHUNK, left)))
                yield block
            if whole and sha.hexdigest() != sha256:
                raise OSError("the stored content changed while it was sent")
    finally:
        if ahead is not None and not ahead.done():
            await asyncio.gather(ahead, return_exceptions=True)
        fetched.close()
