"""The firms and the provider's staff the mixed load acts as, made before any server starts
through bpo's own services (as the other benchmarks make theirs), and the backlog check.

Each firm: a tenant (provisioned: schema and role), an API client with every client scope
and a known secret (tokens come from POST /oauth/token), the small-business starter chart,
a confirmed EUR bank account (1110 cash, 1190 suspense, 6600 fees), a record class `load`,
and a webhook endpoint for every event type pointing at the load's receiver. The provider:
the catalog service `bookkeeping` (skill accounting, no review), --staff members with that
skill assigned to every firm (their tokens are minted with the database's key ring as the
sign-in app would issue them: authorization code + PKCE is not part of the mix), and a
sanctions list (the whole OFAC SDN list of tests/data/sanctions; with --quick the ten
FollowTheMoney entries of ftm_sample.jsonl, so each replica's index builds in no time).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from tests.support.work import service_in

from bpo.compliance import sanctions
from bpo.core.db import Database
from bpo.core.security import secret_digest
from bpo.core.tenancy import issue_tenant_context, tenant_session
from bpo.identity.keys import KeyRing
from bpo.identity.models import ApiClient, StaffAssignment, User
from bpo.identity.scopes import CLIENT_SCOPES
from bpo.identity.tokens import issue_access_token
from bpo.ledger import accounts as ledger_accounts
from bpo.platform.tenants.service import create_tenant
from bpo.settlements import accounts as bank_accounts
from bpo.settlements.schemas import BankAccountIn, RulesIn
from bpo.webhooks.service import create_endpoint
from bpo.work.catalog import create_service
from bpo.work.models import StaffProfile

WHO = "system:load"
IBAN = "DE89370400440532013000"
SERVICE = "bookkeeping"
RECORD_CLASS = "load"
SANCTIONS = Path(__file__).resolve().parents[2] / "tests" / "data" / "sanctions"


@dataclass
class Firm:
    slug: str
    tenant_id: uuid.UUID
    schema: str
    client_id: str
    secret: str
    bank_account: str
    token: str = ""
    balance: int = 0  # closing balance of the last statement sent (cents)
    statements: int = 0


@dataclass
class World:
    firms: list[Firm]
    staff: list[uuid.UUID]
    sanctions: str  # which list was loaded
    staff_tokens: list[str] = field(default_factory=list)


async def seed(
    url: str, secret_key: str, firms: int, staff: int, receiver: str, quick: bool
) -> World:
    db = Database(url)
    try:
        made = [await _firm(db, secret_key, n, receiver) for n in range(firms)]
        async with db.sessionmaker.begin() as session:
            await create_service(session, service_in(SERVICE))
            people = []
            for n in range(staff):
                user = User(email=f"staff-{n}@load.example", password_hash="x", staff_role="staff")
                session.add(user)
                await session.flush()
                session.add(StaffProfile(user_id=user.id, skills=["accounting"], capacity=1000))
                session.add_all(
                    StaffAssignment(user_id=user.id, tenant_id=f.tenant_id) for f in made
                )
                people.append(user.id)
        if quick:
            files = [("ftm_sample.jsonl", (SANCTIONS / "ftm_sample.jsonl").read_bytes())]
        else:
            files = [
                (f"{k}.csv", (SANCTIONS / f"ofac_{k}.csv").read_bytes())
                for k in ("sdn", "alt", "add")
            ]
        async with db.sessionmaker.begin() as session:
            row, _ = await sanctions.load(session, files, WHO, None)
            listed = f"{row.source}: {row.entries:,} entries, {row.aliases:,} aliases"
    finally:
        await db.dispose()
    return World(made, people, listed)


async def _firm(db: Database, secret_key: str, n: int, receiver: str) -> Firm:
    slug, client_id, secret = f"firm-{n:03d}", f"firm-{n:03d}-books", secrets.token_urlsafe(32)
    async with db.sessionmaker.begin() as session:
        tenant_id = (await create_tenant(session, slug, f"Firm {n}")).tenant.id
        session.add(
            ApiClient(
                tenant_id=tenant_id,
                client_id=client_id,
                name=client_id,
                scopes=list(CLIENT_SCOPES),
                secret_digest=secret_digest(secret_key, secret),
            )
        )
    tenant = issue_tenant_context(tenant_id, slug)
    async with tenant_session(db.engine, tenant, "worker") as session:
        await ledger_accounts.apply_chart(session, tenant, WHO, "small-business")
        account = await bank_accounts.create(
            session, tenant, WHO,
            BankAccountIn(
                name="Main account", currency="EUR", iban=IBAN, cash_account="1110",
                suspense_account="1190", fee_account="6600", rules=RulesIn(fee_tolerance=500),
            ),
        )  # fmt: skip
        await session.execute(
            text(
                "INSERT INTO records_classes (id, code, name, mode, retention_years, created_by)"
                " VALUES (:id, :code, 'Load', 'governance', 7, :who)"
            ),
            {"id": uuid.uuid4(), "code": RECORD_CLASS, "who": WHO},
        )
        await create_endpoint(
            session, secret_key, tenant_id=tenant_id, url=receiver, event_types=["*"],
            description="the load's receiver", enabled=True,
        )  # fmt: skip
    return Firm(slug, tenant_id, tenant.schema, client_id, secret, str(account.id))


async def staff_tokens(url: str, secret_key: str, issuer: str, staff: list[uuid.UUID]) -> list[str]:
    """Staff access tokens for `issuer` (10 minutes, as the sign-in app gets them)."""
    db = Database(url)
    try:
        ring = KeyRing(secret_key)
        await ring.load(db.engine)
    finally:
        await db.dispose()
    return [
        issue_access_token(
            ring, issuer=issuer, audience=issuer, subject=str(user_id), client_id="bpo-console",
            scope="work:read work:write", staff_role="staff",
        )[0]
        for user_id in staff
    ]  # fmt: skip


# --- the backlog the worker still has ----------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    imports_waiting: int  # statement imports queued or running
    imports_failed: int
    deliveries_pending: int  # webhook deliveries not yet succeeded or failed
    deliveries_failed: int
    outbox_due: int  # jobs written, due, not yet handed to the broker
    attempts: int  # webhook delivery attempts so far
    attempts_failed: int  # of which the receiver did not answer 2xx (or was not reached)
    failed_jobs: int
    failure: str  # a sample: a failed import's errors or a failed job's error

    @property
    def empty(self) -> bool:
        return not (self.imports_waiting or self.deliveries_pending or self.outbox_due)


_PER_FIRM = """SELECT
  (SELECT count(*) FROM "{schema}".settlements_imports WHERE status IN ('queued', 'running')),
  (SELECT count(*) FROM "{schema}".settlements_imports WHERE status = 'failed'),
  (SELECT count(*) FROM "{schema}".webhook_deliveries WHERE status = 'pending'),
  (SELECT count(*) FROM "{schema}".webhook_deliveries WHERE status = 'failed'),
  (SELECT errors::text FROM "{schema}".settlements_imports WHERE status = 'failed' LIMIT 1),
  (SELECT count(*) FROM "{schema}".webhook_attempts),
  (SELECT count(*) FROM "{schema}".webhook_attempts
    WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 299),
  (SELECT coalesce(error, status_code::text) FROM "{schema}".webhook_attempts
    WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 299 LIMIT 1)"""
_OUTBOX_DUE = "SELECT count(*) FROM platform.outbox WHERE sent_at IS NULL AND available_at <= now()"
_FAILED_JOBS = "SELECT count(*), min(actor || ': ' || left(error, 400)) FROM platform.failed_jobs"


async def backlog(url: str, firms: list[Firm]) -> Backlog:
    per_firm = " UNION ALL ".join(_PER_FIRM.format(schema=f.schema) for f in firms)
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            rows = (await conn.execute(text(per_firm))).all()
            due = await conn.scalar(text(_OUTBOX_DUE))
            failed = (await conn.execute(text(_FAILED_JOBS))).one()
    finally:
        await db.dispose()
    sample = next((r[4] for r in rows if r[4]), None) or failed[1] or ""
    sample = sample or next((f"a webhook attempt: {r[7]}" for r in rows if r[7]), "")
    return Backlog(
        imports_waiting=sum(r[0] for r in rows),
        imports_failed=sum(r[1] for r in rows),
        deliveries_pending=sum(r[2] for r in rows),
        deliveries_failed=sum(r[3] for r in rows),
        outbox_due=int(due or 0),
        attempts=sum(r[5] for r in rows),
        attempts_failed=sum(r[6] for r in rows),
        failed_jobs=int(failed[0]),
        failure=sample,
    )
