"""What `bpo migrate` shows: a progress bar while upgrading, a drift report with --check."""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bpo.core.db import Database
from bpo.core.tenant_migrations import (
    DriftReport,
    MigrationReport,
    check_drift,
    upgrade_tenants,
)
from bpo.core.tracks import upgrade_platform

console = Console(stderr=True)


def run_with_progress(url: str, concurrency: int) -> bool:
    """Upgrade everything; print a summary and each failure. True when nothing failed."""
    report = asyncio.run(_upgrade(url, concurrency))
    print(
        f"platform at head; tenant schemas: {report.total} registered, "
        f"{report.already_at_head} already at {report.head}, {len(report.upgraded)} upgraded, "
        f"{len(report.failed)} failed ({report.seconds:.2f} s)"
    )
    for schema, error in sorted(report.failed.items()):
        console.print(f"[red]failed[/red] {schema}: {error}")
    if report.failed:
        console.print("Fix the cause and run `bpo migrate` again: it resumes where it failed.")
    return report.ok


async def _upgrade(url: str, concurrency: int) -> MigrationReport:
    db = Database(url)
    try:
        await upgrade_platform(db.engine)
        with Progress(
            TextColumn("tenant schemas"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[failed]} failed"),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("migrate", total=0, failed=0)
            failed = 0

            def started(total: int) -> None:
                progress.update(task, total=total)

            def done(schema: str, error: str | None) -> None:
                nonlocal failed
                failed += error is not None
                progress.update(task, advance=1, failed=failed)

            return await upgrade_tenants(
                db.engine, concurrency=concurrency, on_start=started, on_done=done
            )
    finally:
        await db.dispose()


def print_drift(url: str) -> bool:
    """Report what would change and where models and migrations disagree. True when clean."""

    async def check() -> DriftReport:
        db = Database(url)
        try:
            return await check_drift(db.engine)
        finally:
            await db.dispose()

    drift = asyncio.run(check())
    lines = [
        f"platform: at {drift.platform_revision}, head {drift.platform_head}",
        f"platform models vs migrations: {len(drift.platform_model_drift)} difference(s)",
        f"tenant schemas behind {drift.tenant_head}: {len(drift.tenants_behind)}",
        f"tenant models vs migrations: {len(drift.tenant_model_drift)} difference(s)",
    ]
    for line in lines:
        print(line)
    for diff in [*drift.platform_model_drift, *drift.tenant_model_drift]:
        print(f"  {diff}")
    for schema, revision in sorted(drift.tenants_behind.items())[:20]:
        print(f"  {schema}: at {revision or 'unknown'}")
    print("clean" if drift.clean else "drift: run `bpo migrate` (or add a migration)")
    return drift.clean
