"""`bpo tenants ...`: the registry from the command line (same rules as the API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bpo.core.commands import load_settings
from bpo.core.db import Database
from bpo.embedded import run_with_database

tenants = typer.Typer(
    help="Create, inspect, suspend, export and delete tenants.", no_args_is_help=True
)


def _describe(tenant: Any) -> str:
    return (
        f"{tenant.slug}\t{tenant.status}\t{tenant.name}\t{tenant.schema_name}\t"
        f"created {tenant.created_at:%Y-%m-%d %H:%M}Z"
    )


@tenants.command("create")
def create(
    slug: str,
    name: Annotated[str, typer.Option(help="The firm's name")],
) -> None:
    """Register a tenant: schema and role from the warm pool, or built now."""
    from bpo.platform.tenants.service import create_tenant

    async def work(db: Database) -> str:
        async with db.sessionmaker.begin() as session:
            created = await create_tenant(session, slug, name)
            source = "warm pool" if created.from_pool else "cold"
            return f"{_describe(created.tenant)}\t({source})"

    typer.echo(run_with_database(work))


@tenants.command("list")
def list_() -> None:
    """Every tenant: slug, status, name, schema, created."""
    from bpo.platform.tenants.service import list_tenants

    async def work(db: Database) -> list[str]:
        lines: list[str] = []
        cursor = None
        async with db.sessionmaker() as session:
            while True:
                page, cursor = await list_tenants(session, limit=100, cursor=cursor)
                lines.extend(_describe(t) for t in page)
                if cursor is None:
                    return lines

    for line in run_with_database(work):
        typer.echo(line)


@tenants.command("show")
def show(slug: str) -> None:
    """One tenant, with its role, last export and migration status."""
    from sqlalchemy import select

    from bpo.core.tenant_migrations import TenantMigration
    from bpo.platform.tenants.service import get_tenant

    async def work(db: Database) -> list[str]:
        async with db.sessionmaker() as session:
            tenant = await get_tenant(session, slug)
            status = await session.scalar(
                select(TenantMigration).where(TenantMigration.schema_name == tenant.schema_name)
            )
        exported = tenant.last_export_at.isoformat() if tenant.last_export_at else "never"
        if status is None:
            migration = "none recorded (built at head)"
        else:
            migration = f"{status.revision or '-'} at {status.attempted_at.isoformat()}"
            if status.last_error:
                migration += f", error: {status.last_error}"
        return [
            f"slug: {tenant.slug}",
            f"name: {tenant.name}",
            f"id: {tenant.id}",
            f"status: {tenant.status}",
            f"schema: {tenant.schema_name}",
            f"role: {tenant.role_name}",
            f"created: {tenant.created_at.isoformat()}",
            f"last export: {exported}",
            f"last migration: {migration}",
        ]

    for line in run_with_database(work):
        typer.echo(line)


def _set_status(slug: str, status: str) -> None:
    from bpo.platform.tenants.service import set_status

    async def work(db: Database) -> str:
        async with db.sessionmaker.begin() as session:
            return _describe(await set_status(session, slug, status))

    typer.echo(run_with_database(work))


@tenants.command("suspend")
def suspend(slug: str) -> None:
    """Suspend: every tenant route answers 403 until resumed."""
    _set_status(slug, "suspended")


@tenants.command("resume")
def resume(slug: str) -> None:
    """Resume a suspended tenant."""
    _set_status(slug, "active")


@tenants.command("export")
def export(
    slug: str,
    out: Annotated[Path | None, typer.Option(help="Archive path [<slug>-<time>.tar.gz]")] = None,
) -> None:
    """Write every table of the tenant (COPY) to one .tar.gz with a manifest and checksums."""
    from datetime import UTC, datetime

    from bpo.platform.tenants.export import export_tenant

    path = out or Path(f"{slug}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar.gz")

    async def work(db: Database) -> str:
        result = await export_tenant(db.engine, slug, path)
        rows = sum(t["rows"] for t in result.tables)
        return f"{result.path}\t{len(result.tables)} tables, {rows} rows\tsha256 {result.sha256}"

    typer.echo(run_with_database(work))


@tenants.command("restore")
def restore(
    archive: Annotated[Path, typer.Argument(help="An archive `bpo tenants export` wrote")],
    slug: Annotated[str | None, typer.Option(help="The slug [the archive's]")] = None,
    name: Annotated[str | None, typer.Option(help="The firm's name [the archive's]")] = None,
) -> None:
    """Restore a tenant from its export under its own id (its audit chain covers the id):
    verified first, loaded in one transaction, the chain re-verified; all or nothing."""
    from bpo.platform.tenants.restore import restore_tenant

    async def work(db: Database) -> list[str]:
        result = await restore_tenant(db.engine, archive, slug=slug, name=name, actor="system:cli")
        rows = sum(n for table, n in result.rows.items() if table != "audit_events")
        revision = result.revision
        if result.upgraded_to:
            revision += f", upgraded to {result.upgraded_to}"
        return [
            f"restored {result.slug}\t{result.name}\t{result.tenant_id}\t{result.schema}",
            f"revision {revision}",
            f"{len(result.rows) - 1} tables, {rows} rows",
            f"audit chain verified ({result.audit_events} entries)",
            f"archive sha256 {result.archive_sha256}; took {result.seconds['total']:.2f} s",
            "members, API clients and staff assignments are not in an export: grant them again",
        ]

    for line in run_with_database(work):
        typer.echo(line)


@tenants.command("delete")
def delete(
    slug: str,
    force: Annotated[bool, typer.Option("--force", help="Delete without a fresh export")] = False,
) -> None:
    """Drop the tenant's data, schema and role (needs an export from the last 24 h)."""
    from bpo.platform.tenants.service import delete_tenant

    async def work(db: Database) -> bool:
        return await delete_tenant(db.engine, slug, force=force)

    typer.echo(f"deleted {slug}" if run_with_database(work) else f"{slug}: nothing to delete")


@tenants.command("pool-fill")
def pool_fill(
    size: Annotated[int | None, typer.Argument(help="Target size [BPO_TENANT_POOL_SIZE]")] = None,
) -> None:
    """Top the warm pool of ready schemas up to SIZE."""
    from bpo.platform.tenants.provisioning import fill_pool

    target = size if size is not None else load_settings().tenant_pool_size

    async def work(db: Database) -> int:
        return await fill_pool(db.engine, target)

    typer.echo(f"added {run_with_database(work)} schema(s); pool target {target}")
