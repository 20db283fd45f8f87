"""Restore a tenant from its export archive: verified first, then loaded in one transaction.

The archive is `export.py`'s (`bpo-tenant-export/1`). Before anything touches the database,
every member is checked: only regular files with plain relative names, exactly the files
the manifest lists (plus `manifest.json` and `SHA256SUMS`), `SHA256SUMS` agreeing with the
manifest, and each file's size and SHA-256 agreeing with both. Then one transaction:

1. the tenant row (status `suspended` until the end), its role, and its schema built at the
   archive's revision (at head: exactly as a signup builds it; behind head: the tenant track
   replayed up to that revision; ahead of this code's head: refused);
2. every table loaded with COPY (CSV, header) in foreign-key order, with the tables' own
   triggers switched off for the load (below), identity and serial sequences moved past the
   largest id, row counts checked against the manifest;
3. the schema upgraded to head if it was behind, and the role's grants given;
4. the audit chain put back in `platform` and walked by the audit domain's verify;
5. the restore audited on the platform's chain and the tenant marked active.

Any failure rolls the whole transaction back: PostgreSQL's DDL (CREATE ROLE included) is
transactional, so a refused or failed restore leaves no schema, role, row or audit event.

**The tenant keeps its id.** Each audit event's hash covers its chain id, which is the
tenant id (`bpo.audit.service.canonical`), and the ledger checks each posting against its
audit event in that chain; the record store keeps content under the tenant id too. A new id
would mean re-hashing the chain under it, which is exactly the forgery the chain exists to
expose, so a restore always uses the archive's id (the disaster case: the tenant was deleted
after its export). While a tenant with that id exists the restore is refused; the slug may
differ (`slug=`), since nothing hashed holds it.

**Triggers.** The ledger's and records' triggers refuse rows a restore must write (a posting
booked at another transaction's time, lines added apart from their entry, versions of a
disposed document...): they guard changes, and these rows are history that passed them when
it was written. The restore owns the brand-new tables (created in its own, still invisible
transaction), so it disables their user triggers (`ALTER TABLE ... DISABLE TRIGGER USER`)
for the load and enables them again before anything else runs. Foreign keys stay on (tables
load parents first), so the database still checks every reference. No superuser is needed,
and unlike `session_replication_role = replica` nothing else is switched off (that would
also skip foreign keys and needs a superuser or a grant on the setting).

**The audit chain** lives in `platform.audit_events`, where a deferred trigger numbers and
hashes each event at commit. A login that may set `session_replication_role` (a superuser,
or one granted SET on it) inserts the events as archived with that trigger held off for the
two statements, and their head row. Otherwise they are appended again in sequence order
(`audit.append_params`) and the trigger is fired at once (`SET CONSTRAINTS ... IMMEDIATE`):
PostgreSQL recomputes every number and hash by the formula that made them, each must equal
the archive's (no privilege, no lock other tenants wait on; slower, as the head row changes
once per event in one transaction). Either way the audit domain's verify (`verify_in`, in
this transaction) then walks the chain: contents against hashes, links, and the head.

**Not in the archive**, so not restored: the tenant's platform rows, which its deletion
cascaded away (members, API clients, staff assignments, invites, billing subscription and
usage, the work-queue index, unsent jobs). Members and API clients are granted again after a
restore; the archive's audit chain still records who they were.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import cast

import asyncpg
from sqlalchemy import insert, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bpo.audit import service as audit
from bpo.core.tenancy import role_name, schema_name
from bpo.core.tenant_migrations import (
    tenant_head,
    tenant_script,
    tenant_track,
    upgrade_schema_sync,
)
from bpo.platform.models import Tenant
from bpo.platform.tenants.archive import (
    AUDIT_TABLE,
    VERSION_TABLE,
    ArchivedTable,
    RestoreError,
    VerifiedArchive,
    csv_header,
    read_archive,
)
from bpo.platform.tenants.provisioning import create_tenant_objects_sync, grant_tenant_role_sync
from bpo.platform.tenants.service import slug_problem

_AUDIT_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class RestoreResult:
    tenant_id: uuid.UUID
    slug: str
    name: str
    schema: str
    revision: str  # the archive's
    upgraded_to: str | None  # the head reached, when the archive was behind it
    rows: dict[str, int]  # per table loaded (the audit chain as `audit_events`)
    audit_events: int
    archive_sha256: str
    seconds: dict[str, float] = field(default_factory=dict)  # per phase, and "total"


# --- the restore ---------------------------------------------------------------------------


async def restore_tenant(
    engine: AsyncEngine,
    archive: Path,
    *,
    slug: str | None = None,
    name: str | None = None,
    actor: str = "system:restore",
) -> RestoreResult:
    """Restore the tenant an export archive holds, under its own id (see the module doc).

    `slug` and `name` default to the archive's. Raises RestoreError (a Problem) when the
    archive or the request is refused; nothing is created then, nor on any other failure.
    """
    clock = _Clock()
    with tempfile.TemporaryDirectory(prefix="bpo-restore-") as folder:
        verified = await asyncio.to_thread(read_archive, archive, Path(folder))
        clock.lap("verify archive")
        manifest = verified.manifest
        revision, head = manifest.schema.revision, tenant_head()
        _check_revision(revision, head)
        slug = slug or manifest.tenant.slug
        if (reason := slug_problem(slug)) is not None:
            raise RestoreError(f"the slug {slug!r} {reason}")
        name = (manifest.tenant.name if name is None else name).strip()
        if not name or len(name) > 200:
            raise RestoreError("the name must be 1 to 200 characters long")
        tenant_id, schema = manifest.tenant.id, manifest.schema.name
        async with engine.connect() as conn, conn.begin():
            # A large table's COPY may take longer than the pool's statement timeout.
            await conn.execute(text("SET LOCAL statement_timeout = 0"))
            await _claim(conn, verified, slug, name)
            if revision == head:  # exactly as a signup builds it
                await conn.run_sync(create_tenant_objects_sync, tenant_id)
            else:
                await conn.run_sync(upgrade_schema_sync, schema, None, revision)
            clock.lap("build schema")
            rows = await _load_tables(conn, verified, schema)
            clock.lap("load tables")
            upgraded = None
            if revision != head:
                upgraded = await conn.run_sync(upgrade_schema_sync, schema)
                await conn.run_sync(grant_tenant_role_sync, tenant_id)
                clock.lap("upgrade to head")
            events = await _restore_chain(conn, verified)
            rows[AUDIT_TABLE] = events
            clock.lap("audit chain")
            _, params = audit.prepare_append(
                audit.PLATFORM_CHAIN,
                actor,
                "tenant.restored",
                f"tenant:{slug}",
                after={
                    "id": str(tenant_id),
                    "archive_sha256": verified.sha256,
                    "exported_at": manifest.exported_at.isoformat(),
                    "revision": revision,
                    "rows": sum(rows.values()),
                },
            )
            await conn.execute(text(audit.APPEND_SQL), params)
            await conn.execute(update(Tenant).where(Tenant.id == tenant_id).values(status="active"))
        clock.lap("commit")
    return RestoreResult(
        tenant_id=tenant_id,
        slug=slug,
        name=name,
        schema=schema,
        revision=revision,
        upgraded_to=upgraded,
        rows=rows,
        audit_events=events,
        archive_sha256=verified.sha256,
        seconds=clock.total(),
    )


class _Clock:
    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        self.laps[what], self.last = now - self.last, now

    def total(self) -> dict[str, float]:
        return {**self.laps, "total": self.last - self.started}


def _check_revision(revision: str, head: str) -> None:
    script = tenant_script(str(tenant_track()))
    if revision not in {r.revision for r in script.walk_revisions()}:
        raise RestoreError(
            f"the archive's schema is at revision {revision!r}, which this bpo does not know "
            f"(its tenant track ends at {head!r}): restore it with the bpo that exported it, "
            "or a newer one"
        )


async def _claim(conn: AsyncConnection, verified: VerifiedArchive, slug: str, name: str) -> None:
    """Refuse unless the id, slug, schema, role and chain are all free; then insert the
    tenant row (it holds the slug and id against concurrent restores and signups)."""
    tenant_id = verified.manifest.tenant.id
    found = (
        await conn.execute(
            text(
                "SELECT (SELECT slug FROM platform.tenants WHERE id = :id),"
                " (SELECT id FROM platform.tenants WHERE slug = :slug),"
                " EXISTS (SELECT 1 FROM platform.tenant_schema_pool WHERE id = :id),"
                " EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :schema),"
                " EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :role),"
                " EXISTS (SELECT 1 FROM platform.audit_events WHERE chain_id = :id)"
                " OR EXISTS (SELECT 1 FROM platform.audit_heads WHERE chain_id = :id)"
            ),
            {
                "id": tenant_id,
                "slug": slug,
                "schema": schema_name(tenant_id),
                "role": role_name(tenant_id),
            },
        )
    ).one()
    same_id, slug_owner, pooled, has_schema, has_role, has_chain = found
    if same_id is not None:
        raise RestoreError(
            f"tenant {tenant_id} still exists (slug {same_id!r}): a restore keeps the tenant's "
            "id, which its audit chain's hashes cover; delete that tenant first (after "
            "exporting it), or restore into another database",
            409,
            "conflict",
        )
    if slug_owner is not None:
        raise RestoreError(
            f"the slug {slug!r} is taken by another tenant: restore under another slug",
            409,
            "conflict",
        )
    leftovers = [
        what
        for what, there in (
            ("a warm-pool entry", pooled),
            (f"the schema {schema_name(tenant_id)}", has_schema),
            (f"the role {role_name(tenant_id)}", has_role),
            ("an audit chain", has_chain),
        )
        if there
    ]
    if leftovers:
        raise RestoreError(
            f"tenant {tenant_id} has no registry row but still has {', '.join(leftovers)} "
            "(an unfinished deletion?): nothing was restored",
            409,
            "conflict",
        )
    try:
        await conn.execute(
            insert(Tenant).values(
                id=tenant_id,
                slug=slug,
                name=name,
                status="suspended",  # active only once everything is loaded and verified
                # This archive is an export of exactly what is being restored.
                last_export_at=verified.manifest.exported_at,
                last_export_sha256=verified.sha256,
            )
        )
    except IntegrityError:  # a concurrent restore or signup took the id or slug meanwhile
        raise RestoreError(
            f"the slug {slug!r} or the tenant id {tenant_id} was taken meanwhile", 409, "conflict"
        ) from None


async def _driver(conn: AsyncConnection) -> asyncpg.Connection:
    raw = cast(asyncpg.Connection, (await conn.get_raw_connection()).driver_connection)
    if not raw.is_in_transaction():  # COPY must be part of the restore's one transaction
        raise RuntimeError("the restore's connection is not in its transaction")
    return raw


_COLUMNS = """
    SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum)
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
      AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
    GROUP BY c.relname
"""
_FOREIGN_KEYS = """
    SELECT child.relname, parent.relname
    FROM pg_constraint k
    JOIN pg_class child ON child.oid = k.conrelid
    JOIN pg_class parent ON parent.oid = k.confrelid
    WHERE k.contype = 'f' AND child.relnamespace = parent.relnamespace
      AND child.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
"""
_TRIGGERED = """
    SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE NOT t.tgisinternal
      AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
    ORDER BY 1
"""
# Identity and serial columns' sequences (owned by their column: deptype 'i' or 'a').
_SEQUENCES = """
    SELECT s.relname, t.relname, a.attname::text
    FROM pg_class s
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
     AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class t ON t.oid = d.refobjid
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
    WHERE s.relkind = 'S' AND s.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
"""


async def _load_tables(
    conn: AsyncConnection, verified: VerifiedArchive, schema: str
) -> dict[str, int]:
    """COPY every archived table into `schema`, parents first, its tables' triggers off."""
    raw = await _driver(conn)
    columns = {
        name: list(cols)
        for name, cols in await raw.fetch(_COLUMNS, schema)
        if name != VERSION_TABLE
    }
    archived = {
        t.table: t for t in verified.manifest.tables if t.table not in (VERSION_TABLE, AUDIT_TABLE)
    }
    revision = verified.manifest.schema.revision
    if extra := sorted(archived.keys() - columns.keys()):
        raise RestoreError(
            f"the archive holds tables that the tenant schema at revision {revision} does not "
            f"have: {', '.join(extra)}"
        )
    if missing := sorted(columns.keys() - archived.keys()):
        raise RestoreError(
            f"the archive lacks tables of the tenant schema at revision {revision}: "
            f"{', '.join(missing)}"
        )
    graph: dict[str, set[str]] = {name: set() for name in archived}
    for child, parent in await raw.fetch(_FOREIGN_KEYS, schema):
        if child != parent:  # a table's references to itself are checked after its COPY
            graph[child].add(parent)
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise RestoreError(f"foreign keys form a cycle ({cycle}): cannot order the load") from None
    triggered = [row[0] for row in await raw.fetch(_TRIGGERED, schema)]
    for table in triggered:
        await raw.execute(f'ALTER TABLE "{schema}"."{table}" DISABLE TRIGGER USER')
    rows: dict[str, int] = {}
    for name in order:
        entry = archived[name]
        path = verified.path(entry)
        header = csv_header(path)
        if sorted(header) != sorted(columns[name]):
            raise RestoreError(
                f"{entry.file}: its columns ({', '.join(header)}) are not those of {name} at "
                f"revision {revision} ({', '.join(columns[name])})"
            )
        try:
            status = await raw.copy_to_table(
                name, schema_name=schema, source=path, columns=header, format="csv", header=True
            )
        except asyncpg.PostgresError as exc:
            raise RestoreError(f"{entry.file} could not be loaded into {name}: {exc}") from None
        loaded = int(status.split()[-1])
        if loaded != entry.rows:
            raise RestoreError(f"{entry.file} holds {loaded} rows; the manifest says {entry.rows}")
        rows[name] = loaded
    for table in triggered:
        await raw.execute(f'ALTER TABLE "{schema}"."{table}" ENABLE TRIGGER USER')
    for sequence, table, column in await raw.fetch(_SEQUENCES, schema):
        await raw.execute(
            f'SELECT setval(\'"{schema}"."{sequence}"\', m) FROM '  # noqa: S608 - catalog names
            f'(SELECT max("{column}") AS m FROM "{schema}"."{table}") AS t WHERE m IS NOT NULL'
        )
    return rows


async def _restore_chain(conn: AsyncConnection, verified: VerifiedArchive) -> int:
    """Put the archived chain back (see the module doc) and have the audit domain's verify
    walk it: every number, previous hash and hash recomputed from the contents, and the
    head. Returns the number of events."""
    tenant_id = verified.manifest.tenant.id
    entry = next(t for t in verified.manifest.tables if t.table == AUDIT_TABLE)
    raw = await _driver(conn)
    await raw.execute(
        "CREATE TEMPORARY TABLE restore_audit (LIKE platform.audit_events) ON COMMIT DROP"
    )
    path = verified.path(entry)
    try:
        status = await raw.copy_to_table(
            "restore_audit", source=path, columns=csv_header(path), format="csv", header=True
        )
    except asyncpg.PostgresError as exc:
        raise RestoreError(f"{entry.file} could not be read as audit events: {exc}") from None
    if (loaded := int(status.split()[-1])) != entry.rows:
        raise RestoreError(f"{entry.file} holds {loaded} rows; the manifest says {entry.rows}")
    unlinked = await raw.fetchval(
        "SELECT count(*) FROM restore_audit WHERE chain_id <> $1 OR seq IS NULL"
        " OR hash IS NULL OR prev_hash IS NULL",
        tenant_id,
    )
    if unlinked:
        raise RestoreError(f"{entry.file} holds {unlinked} events not linked into this chain")
    if loaded and await may_replicate(raw):
        await _insert_verbatim(raw)
    elif loaded:
        await _relink(conn, raw, entry)
    verdict = await audit.verify_in(conn, tenant_id)
    if not verdict.ok or verdict.events_checked != loaded:
        raise RestoreError(
            f"the archive's audit chain is broken at event {verdict.first_broken_seq}: "
            f"{verdict.reason or 'events are missing'} ({entry.file} was changed or damaged)"
        )
    return loaded


async def may_replicate(raw: asyncpg.Connection) -> bool:
    """Whether this login may set `session_replication_role` (a superuser, or on PostgreSQL
    15+ a role granted SET on it)."""
    if int(await raw.fetchval("SHOW server_version_num")) >= 150000:
        sql = "SELECT has_parameter_privilege('session_replication_role', 'SET')"
    else:
        sql = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    return bool(await raw.fetchval(sql))


async def _insert_verbatim(raw: asyncpg.Connection) -> None:
    """The events as archived, and their head. `replica` keeps the commit trigger from
    re-linking them (only for these two statements of this transaction); the walk that
    follows recomputes every hash, so nothing is taken on trust."""
    await raw.execute("SET LOCAL session_replication_role = replica")
    await raw.execute(
        "INSERT INTO platform.audit_events SELECT * FROM restore_audit ORDER BY seq;"
        " INSERT INTO platform.audit_heads (chain_id, seq, hash)"
        " SELECT chain_id, seq, hash FROM restore_audit ORDER BY seq DESC LIMIT 1"
    )
    await raw.execute("SET LOCAL session_replication_role = origin")


async def _relink(conn: AsyncConnection, raw: asyncpg.Connection, entry: ArchivedTable) -> None:
    """Without that right: append the events again, in order, and fire the commit trigger
    now; it recomputes each number and hash by the formula that made them, and each must
    come out as archived. Slower (the head row changes once per event, all in this one
    transaction), and it needs no privilege nor any lock that other tenants would wait on."""
    after = 0
    batch = text(
        "SELECT seq, chain_id, id, at, actor, action, target, before_digest, after_digest,"
        " request_id FROM restore_audit WHERE seq > :after ORDER BY seq LIMIT :n"
    )
    append = text(audit.APPEND_SQL)
    while events := (await conn.execute(batch, {"after": after, "n": _AUDIT_BATCH})).all():
        await conn.execute(append, [audit.append_params(event) for event in events])
        after = events[-1].seq
    await raw.execute("SET CONSTRAINTS platform.link_at_commit IMMEDIATE")
    await raw.execute("SET CONSTRAINTS platform.link_at_commit DEFERRED")
    broken = await raw.fetchval(
        "SELECT s.seq FROM restore_audit s"
        " LEFT JOIN platform.audit_events e ON e.id = s.id AND e.chain_id = s.chain_id"
        " WHERE e.id IS NULL OR (e.seq, e.prev_hash, e.hash)"
        " IS DISTINCT FROM (s.seq, s.prev_hash, s.hash)"
        " ORDER BY s.seq LIMIT 1"
    )
    if broken is not None:
        raise RestoreError(
            f"the archive's audit chain is broken at event {broken}: its number or hashes "
            f"are not what its contents and the events before it give ({entry.file} was "
            "changed or damaged)"
        )
