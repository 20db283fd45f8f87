"""`bpo ledger ...`: the books from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from bpo.core.db import Database
from bpo.embedded import run_with_database

ledger = typer.Typer(help="Verify the firms' books.", no_args_is_help=True)


@ledger.command("verify")
def verify_command(
    slug: Annotated[str | None, typer.Argument(help="One firm (default: every live firm)")] = None,
) -> None:
    """Recompute every balance from the lines and every hash; print any difference and
    exit 1 if anything drifted."""
    from bpo.core.tenancy import issue_tenant_context
    from bpo.ledger.verify import verify
    from bpo.platform.tenants import service as tenants

    async def work(db: Database) -> list[tuple[str, bool, list[str]]]:
        async with db.sessionmaker() as session:
            if slug is not None:
                firms = [await tenants.live_tenant(session, slug)]
            else:
                firms = await tenants.live_tenants(session)
        results = []
        for firm in firms:
            verdict = await verify(db.engine, issue_tenant_context(firm.id, firm.slug))
            lines = [
                f"  {d.what}: {d.account or ''} {d.currency or ''} {d.on or ''} "
                f"{'entry ' + str(d.entry_number) if d.entry_number else ''} {d.detail}"
                for d in verdict.differences
            ]
            summary = f"{verdict.lines_checked:,} lines, {verdict.entries_checked:,} entries"
            results.append(
                (f"{firm.slug}\t{'ok' if verdict.ok else 'DRIFT'}\t{summary}", verdict.ok, lines)
            )
        return results

    ok = True
    for head, fine, lines in run_with_database(work):
        typer.echo(head)
        for line in lines:
            typer.echo(line)
        ok = ok and fine
    if not ok:
        raise typer.Exit(1)
