"""A tenant export archive, read and checked before a restore touches the database.

Only regular files with plain relative names, exactly the files the manifest lists (plus
`manifest.json` and `SHA256SUMS`), `SHA256SUMS` agreeing with the manifest, and each file's
size and SHA-256 agreeing with both; a truncated or garbled archive is a clear refusal.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import tarfile
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Annotated

import msgspec

from bpo.core.errors import Problem
from bpo.core.tenancy import schema_name
from bpo.platform.tenants.export import FORMAT

MANIFEST, SUMS = "manifest.json", "SHA256SUMS"
AUDIT_TABLE, VERSION_TABLE = "audit_events", "alembic_version"
_MANIFEST_LIMIT = 16 << 20  # bytes: a manifest lists tables, it is never large
_AUDIT_BATCH = 5_000


class RestoreError(Problem):
    """A restore refused or failed, and why (nothing was created)."""

    def __init__(self, detail: str, status: int = 422, slug: str = "invalid-archive") -> None:
        super().__init__(status, slug, detail, title="The restore was refused")


TableName = Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, msgspec.Meta(ge=0)]


class ArchivedTable(msgspec.Struct, frozen=True):
    table: TableName
    file: str
    rows: Count
    bytes: Count
    sha256: Sha256


class ArchivedTenant(msgspec.Struct, frozen=True):
    id: uuid.UUID
    slug: str
    name: str
    status: str


class ArchivedSchema(msgspec.Struct, frozen=True):
    name: str
    revision: str


class Manifest(msgspec.Struct, frozen=True):
    format: str
    exported_at: datetime
    tenant: ArchivedTenant
    schema: ArchivedSchema
    tables: list[ArchivedTable]


@dataclass(frozen=True, slots=True)
class VerifiedArchive:
    manifest: Manifest
    folder: Path  # where the data files were extracted (data/<table>.csv)
    sha256: str  # of the whole archive

    def path(self, table: ArchivedTable) -> Path:
        return self.folder / table.file


def read_archive(archive: Path, folder: Path) -> VerifiedArchive:
    """Check the archive and extract its data files into `folder`, or raise RestoreError.

    Blocking (tarfile, hashing): run it on a thread."""
    try:
        tar = tarfile.open(archive, "r:gz")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise RestoreError(f"no archive at {archive}") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise _damaged(archive, exc) from None
    with tar:
        try:
            members = tar.getmembers()  # reads to the end: a truncated archive fails here
            by_name = _check_members(members)
            manifest = _read_manifest(tar, by_name)
            _check_sums(tar, by_name, manifest)
            data = [by_name[t.file] for t in manifest.tables]
            tar.extractall(folder, members=data, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise _damaged(archive, exc) from None
    for table in manifest.tables:
        size, digest = _size_and_sha256(folder / table.file)
        if (size, digest) != (table.bytes, table.sha256):
            raise RestoreError(
                f"{table.file} does not match the manifest (SHA-256 {digest}, {size} bytes; "
                f"the manifest says {table.sha256}, {table.bytes} bytes): the file was changed "
                "or damaged"
            )
    _check_version_file(folder, manifest)
    return VerifiedArchive(manifest, folder, _size_and_sha256(archive)[1])


def _damaged(archive: Path, exc: BaseException) -> RestoreError:
    why = str(exc).strip() or type(exc).__name__
    return RestoreError(
        f"{archive.name} is not a readable .tar.gz archive (truncated or damaged?): {why}"
    )


def _check_members(members: list[tarfile.TarInfo]) -> dict[str, tarfile.TarInfo]:
    by_name: dict[str, tarfile.TarInfo] = {}
    for member in members:
        name = member.name
        parts = PurePosixPath(name).parts
        if name.startswith("/") or "\\" in name or ".." in parts or not parts:
            raise RestoreError(f"archive member {name!r} has an unsafe path")
        if not member.isreg():
            kind = "link" if member.issym() or member.islnk() else "directory or device"
            raise RestoreError(f"archive member {name!r} is a {kind}: only files are expected")
        if name in by_name:
            raise RestoreError(f"archive member {name!r} appears twice")
        by_name[name] = member
    return by_name


def _read_manifest(tar: tarfile.TarFile, by_name: dict[str, tarfile.TarInfo]) -> Manifest:
    member = by_name.get(MANIFEST)
    if member is None:
        raise RestoreError(f"the archive has no {MANIFEST}: not a bpo tenant export")
    if member.size > _MANIFEST_LIMIT:
        raise RestoreError(f"{MANIFEST} is too large ({member.size} bytes)")
    raw = _member_bytes(tar, member)
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise RestoreError(f"{MANIFEST} is not valid JSON: {exc}") from None
    found = document.get("format") if isinstance(document, dict) else None
    if found != FORMAT:
        raise RestoreError(f"{MANIFEST} has format {found!r}; this bpo restores {FORMAT!r}")
    try:
        manifest = msgspec.convert(document, Manifest)
    except msgspec.ValidationError as exc:
        raise RestoreError(f"{MANIFEST}: {exc}") from None
    if manifest.schema.name != schema_name(manifest.tenant.id):
        raise RestoreError(f"{MANIFEST}: the schema name does not belong to the tenant's id")
    names = [t.table for t in manifest.tables]
    if len(set(names)) != len(names):
        raise RestoreError(f"{MANIFEST} lists a table twice")
    for table in manifest.tables:
        if table.file != f"data/{table.table}.csv":
            raise RestoreError(f"{MANIFEST}: table {table.table} has the file {table.file!r}")
    for needed in (VERSION_TABLE, AUDIT_TABLE):
        if needed not in names:
            raise RestoreError(f"{MANIFEST} lists no {needed} table")
    expected = {MANIFEST, SUMS} | {t.file for t in manifest.tables}
    for name in by_name:
        if name not in expected:
            raise RestoreError(f"archive member {name!r} is not in the manifest")
    for name in sorted(expected - by_name.keys()):
        raise RestoreError(f"{name} is missing from the archive")
    for table in manifest.tables:  # before extracting anything: no disk filled with junk
        if by_name[table.file].size != table.bytes:
            raise RestoreError(
                f"{table.file} holds {by_name[table.file].size} bytes; the manifest says "
                f"{table.bytes}"
            )
    return manifest


def _check_sums(tar: tarfile.TarFile, by_name: dict[str, tarfile.TarInfo], m: Manifest) -> None:
    listed: dict[str, str] = {}
    text_ = _member_bytes(tar, by_name[SUMS], limit=_MANIFEST_LIMIT).decode(errors="replace")
    for line in text_.splitlines():
        digest, _, name = line.partition("  ")
        if not name or name in listed:
            raise RestoreError(f"{SUMS} has a malformed or repeated line: {line[:120]!r}")
        listed[name] = digest
    for table in m.tables:
        if listed.pop(table.file, None) != table.sha256:
            raise RestoreError(f"{SUMS} and {MANIFEST} disagree on {table.file}")
    if listed:
        raise RestoreError(f"{SUMS} names {min(listed)}, which the manifest does not list")


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int = -1) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:  # not a regular file: already refused by _check_members
        raise RestoreError(f"archive member {member.name!r} cannot be read")
    with handle:
        return handle.read(limit)


def _size_and_sha256(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _csv_rows(path: Path, limit: int) -> list[list[str]]:
    """The first `limit` rows of a CSV file."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(islice(csv.reader(handle), limit))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RestoreError(f"data/{path.name} is not a readable CSV file: {exc}") from None


def csv_header(path: Path) -> list[str]:
    rows = _csv_rows(path, 1)
    return rows[0] if rows else []


def _check_version_file(folder: Path, manifest: Manifest) -> None:
    """The schema's own alembic_version row must say the manifest's revision."""
    rows = _csv_rows(folder / f"data/{VERSION_TABLE}.csv", 3)
    if rows != [["version_num"], [manifest.schema.revision]]:
        raise RestoreError(
            f"data/{VERSION_TABLE}.csv does not hold the manifest's revision "
            f"{manifest.schema.revision!r}"
        )
