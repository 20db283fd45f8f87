"""The settlement jobs: a statement import (written with progress), and a matching run for
a bank account after new lines arrive or the account is confirmed."""

from __future__ import annotations

import uuid

from bpo.jobs.context import current_job
from bpo.jobs.registry import job
from bpo.settlements import imports, runs


@job(queue="default", name=imports.IMPORT_JOB, max_retries=3, time_limit=1_800_000)
async def import_statement(import_id: str, actor: str) -> None:
    """Write an uploaded statement file's lines (checked at upload), post them, match."""
    context = current_job()
    if context.tenant is None:
        raise RuntimeError("a statement import runs for a tenant")
    await imports.run(context.session, context.tenant, uuid.UUID(import_id), actor)


@job(queue="default", name=imports.MATCH_JOB, max_retries=3, time_limit=1_800_000)
async def match_account(bank_account_id: str, actor: str) -> None:
    """Run the account's matching cascade over its open lines."""
    context = current_job()
    if context.tenant is None:
        raise RuntimeError("a matching run runs for a tenant")
    async with context.session() as session:
        await runs.run(session, context.tenant, actor, bank_account_id)
