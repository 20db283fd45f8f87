"""Export a tenant's whole schema: every table via COPY, in one archive with a manifest.

The archive (`.tar.gz`) holds `data/<table>.csv` (CSV with a header row) for every table of
the tenant's schema, `manifest.json` (tenant, revision, time, and per table: rows, bytes,
SHA-256) and `SHA256SUMS`. All tables are read in one REPEATABLE READ, READ ONLY transaction,
so the archive is one consistent snapshot.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bpo import __version__
from bpo.core.errors import Problem
from bpo.platform.models import Tenant

FORMAT = "bpo-tenant-export/1"


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    sha256: str
    tables: list[dict[str, Any]]


async def export_tenant(engine: AsyncEngine, slug: str, destination: Path) -> ExportResult:
    """Write the archive to `destination` and record the export on the tenant."""
    async with engine.connect() as conn:
        tenant = (await conn.execute(select(Tenant).where(Tenant.slug == slug))).first()
        await conn.rollback()
    if tenant is None:
        raise Problem(404, "not-found", f"no tenant {slug!r}")
    if tenant.status == "deleting":
        raise Problem(409, "conflict", f"tenant {slug!r} is being deleted")
    schema = f"tenant_{tenant.id.hex}"
    exported_at = datetime.now(UTC)
    tables: list[dict[str, Any]] = []
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(destination, "w:gz") as archive:
        async with engine.connect() as conn:
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            names = (
                (
                    await conn.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY 1"),
                        {"s": schema},
                    )
                )
                .scalars()
                .all()
            )
            # The schema name is derived from the tenant id, never from input.
            version_sql = f'SELECT version_num FROM "{schema}".alembic_version'  # noqa: S608
            revision = await conn.scalar(text(version_sql))
            raw = (await conn.get_raw_connection()).driver_connection
            for name in names:
                query = f'SELECT * FROM "{schema}"."{name}"'  # noqa: S608 - catalog names
                tables.append(await _copy(raw, name, query, archive, exported_at))
            # The firm's audit chain lives in platform (see bpo.audit.models).
            tables.append(
                await _copy(raw, "audit_events", _AUDIT_QUERY, archive, exported_at, tenant.id)
            )
            await conn.rollback()
        manifest = {
            "format": FORMAT,
            "exported_at": exported_at.isoformat(),
            "exported_by": f"bpo {__version__}",
            "tenant": {
                "id": str(tenant.id),
                "slug": tenant.slug,
                "name": tenant.name,
                "status": tenant.status,
            },
            "schema": {"name": schema, "revision": revision},
            "tables": tables,
        }
        _add_bytes(archive, "manifest.json", json.dumps(manifest, indent=2).encode(), exported_at)
        sums = "".join(f"{t['sha256']}  {t['file']}\n" for t in tables)
        _add_bytes(archive, "SHA256SUMS", sums.encode(), exported_at)
    digest = await asyncio.to_thread(_sha256_of, destination)
    async with engine.begin() as conn:
        await conn.execute(
            update(Tenant)
            .where(Tenant.id == tenant.id)
            .values(last_export_at=exported_at, last_export_sha256=digest)
        )
    return ExportResult(path=destination, sha256=digest, tables=tables)


_AUDIT_QUERY = "SELECT * FROM platform.audit_events WHERE chain_id = $1 ORDER BY seq"


async def _copy(
    raw: Any, table: str, query: str, archive: tarfile.TarFile, when: datetime, *args: Any
) -> dict[str, Any]:
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as spool:

        async def sink(chunk: bytes) -> None:
            spool.write(chunk)
            digest.update(chunk)

        status = await raw.copy_from_query(query, *args, output=sink, format="csv", header=True)
        size = spool.tell()
        spool.seek(0)
        info = tarfile.TarInfo(f"data/{table}.csv")
        info.size, info.mtime = size, int(when.timestamp())
        archive.addfile(info, spool)
    return {
        "table": table,
        "file": f"data/{table}.csv",
        "rows": int(str(status).split()[-1]),
        "bytes": size,
        "sha256": digest.hexdigest(),
    }


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, when: datetime) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(when.timestamp())
    archive.addfile(info, io.BytesIO(data))
