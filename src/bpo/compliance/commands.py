"""`bpo sanctions ...`: the provider's sanctions lists from the command line."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from bpo.core.db import Database
from bpo.embedded import run_with_database

sanctions_cli = typer.Typer(help="Load and list sanctions list versions.", no_args_is_help=True)


@sanctions_cli.command("load")
def load_command(
    files: Annotated[
        list[Path], typer.Argument(help="OFAC sdn.csv [alt.csv add.csv], or FtM JSON lines")
    ],
    published: Annotated[
        str | None, typer.Option(help="The list's publication date, YYYY-MM-DD")
    ] = None,
) -> None:
    """Load a new version of a list (a load of the same files changes nothing); every firm's
    counterparties are then re-screened by a job, raising only new hits."""
    from bpo.compliance import sanctions
    from bpo.compliance.jobs import RESCREEN_JOB
    from bpo.core.errors import Problem
    from bpo.jobs.outbox import enqueue

    on = date.fromisoformat(published) if published else None
    payload = [(f.name, f.read_bytes()) for f in files]

    async def work(db: Database) -> str:
        async with db.sessionmaker.begin() as session:
            row, new = await sanctions.load(session, payload, "cli:sanctions", on)
            if new:
                await enqueue(session, RESCREEN_JOB, str(row.id), "cli:sanctions", tenant=None)
        state = "loaded" if new else "unchanged (same files as the current version)"
        return (
            f"{row.source} {row.id}: {row.entries:,} entries, {row.aliases:,} aliases, "
            f"+{row.added} ~{row.changed} -{row.removed}; {state}"
        )

    try:
        typer.echo(run_with_database(work))
    except Problem as problem:
        typer.echo(f"refused: {problem.detail}", err=True)
        raise typer.Exit(2) from None


@sanctions_cli.command("list")
def list_command() -> None:
    """The loaded versions, newest first."""
    from bpo.compliance import sanctions

    async def work(db: Database) -> list[str]:
        async with db.sessionmaker() as session:
            rows = await sanctions.versions(session)
        return [f"{r.id}\t{r.source}\t{r.status}\t{r.published_on or '-'}\t{r.entries:,}\t"
                f"{r.loaded_at:%Y-%m-%d %H:%M}" for r in rows]  # fmt: skip

    for line in run_with_database(work):
        typer.echo(line)
