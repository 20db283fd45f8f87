"""Restoring a tenant from its export (`bpo tenants restore`): the disaster path (export,
delete, restore) brings back every row and a verifiable audit chain under the tenant's own
id, and every refused archive or request creates nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import tarfile
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.audit import service as audit
from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, role_name, schema_name
from bpo.core.tenant_migrations import tenant_head
from bpo.platform.tenants.archive import RestoreError
from bpo.platform.tenants.restore import restore_tenant
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import admin_of, bearer, staff_admin_token
from tests.support.processes import bpo, bpo_env
from tests.support.records import filed, firm, records_settings
from tests.support.tenants import counts as all_counts
from tests.support.tenants import make_tenant
from tests.support.work import add_service, ask_for

Client = AsyncTestClient[Litestar]
Files = dict[str, bytes]


@pytest.fixture
def rec_settings(settings: Settings, tmp_path: Path) -> Settings:
    return records_settings(settings, tmp_path / "data")


@pytest.fixture
async def api(rec_settings: Settings, db: Database) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=build_app(rec_settings)) as client:
        yield client


@pytest.fixture
async def staff(db: Database, settings: Settings) -> dict[str, str]:
    return bearer(await staff_admin_token(db, settings))


def sale(day: str, amount: int) -> dict[str, Any]:
    return {
        "effective_on": day,
        "description": "sale",
        "lines": [
            {"account": "1200", "debit": amount, "currency": "EUR"},
            {"account": "4000", "credit": amount, "currency": "EUR"},
        ],
    }


async def busy_firm(
    api: Client, db: Database, settings: Settings, slug: str
) -> tuple[TenantContext, dict[str, str], dict[str, Any]]:
    """A firm with rows in many tables and an audit chain: record classes and a document
    with content, the starter chart and two postings, a work request and an API client."""
    tenant, admin = await firm(api, db, settings, slug)
    applied = await api.post(f"/v1/tenants/{slug}/ledger/chart/apply", json={}, headers=admin)
    assert applied.status_code == 200, applied.text
    for day, amount in (("2026-11-03", 12050), ("2026-11-04", 990)):
        posted = await api.post(
            f"/v1/tenants/{slug}/ledger/entries", json=sale(day, amount), headers=admin
        )
        assert posted.status_code == 201, posted.text
    document = await filed(api, slug, admin, b"invoice 1: 120.50 EUR\n")
    await add_service(db, f"bookkeeping-{slug}")
    await ask_for(api, tenant, admin, service=f"bookkeeping-{slug}")
    made = await api.post(
        f"/v1/tenants/{slug}/clients",
        json={"name": "ERP", "scopes": ["ledger:read", "records:read"]},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    return tenant, admin, {"document": document, "client": made.json()}


async def export_and_delete(api: Client, staff: dict[str, str], slug: str, to: Path) -> Path:
    """The normal path: an export (which deletion requires), then the deletion."""
    exported = await api.post(f"/v1/tenants/{slug}/export", headers=staff)
    assert exported.status_code == 200, exported.text
    await asyncio.to_thread(to.write_bytes, exported.content)
    assert (await api.delete(f"/v1/tenants/{slug}", headers=staff)).status_code == 204
    return to


_TABLES = text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY 1")
_PRIMARY_KEY = text(
    "SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY array_position(i.indkey, a.attnum))"
    " FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
    " WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary"
)
_CHAIN = text(
    "SELECT count(*), md5(string_agg(concat_ws('|', seq, id, at, actor, action, target,"
    " before_digest, after_digest, request_id, encode(prev_hash, 'hex'), encode(hash, 'hex')),"
    " E'\\n' ORDER BY seq)) FROM platform.audit_events WHERE chain_id = :c"
)


async def digests(db: Database, tenant_id: uuid.UUID) -> dict[str, tuple[int, str]]:
    """Per table of the tenant's schema (and its audit chain): rows and the MD5 of
    `SELECT * ORDER BY <primary key>`, each row as JSON (column order aside: a schema built
    by replaying migrations may order a table's columns differently)."""
    schema = schema_name(tenant_id)
    found: dict[str, tuple[int, str]] = {}
    async with db.engine.connect() as conn:
        for table in (await conn.execute(_TABLES, {"s": schema})).scalars():
            qualified = f'"{schema}"."{table}"'
            key = await conn.scalar(_PRIMARY_KEY, {"t": qualified}) or "t::text"
            row = (
                await conn.execute(
                    text(
                        f"SELECT count(*), md5(coalesce(string_agg(to_jsonb(t)::text, E'\\n'"
                        f" ORDER BY {key}), '')) FROM {qualified} t"
                    )
                )
            ).one()
            found[table] = (row[0], row[1])
        chain = (await conn.execute(_CHAIN, {"c": tenant_id})).one()
        found["audit_events"] = (chain[0], chain[1])
    return found


async def counts(engine: Any) -> tuple[int, int]:
    """(tenant schemas, registry rows) in this database. Roles are cluster-wide, and other
    test runs on the server make and drop theirs meanwhile: `nothing_of` checks ours."""
    schemas, _, tenants = await all_counts(engine)
    return schemas, tenants


async def nothing_of(db: Database, tenant_id: uuid.UUID) -> None:
    """No registry row, schema, role or audit event of the tenant."""
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM platform.tenants WHERE id = :id),"
                    " (SELECT count(*) FROM pg_namespace WHERE nspname = :s),"
                    " (SELECT count(*) FROM pg_roles WHERE rolname = :r),"
                    " (SELECT count(*) FROM platform.audit_events WHERE chain_id = :id),"
                    " (SELECT count(*) FROM platform.audit_heads WHERE chain_id = :id)"
                ),
                {"id": tenant_id, "s": schema_name(tenant_id), "r": role_name(tenant_id)},
            )
        ).one()
    assert tuple(row) == (0, 0, 0, 0, 0)


async def platform_events(db: Database) -> int:
    async with db.engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM platform.audit_events WHERE chain_id = :c"),
            {"c": audit.PLATFORM_CHAIN},
        )
    return int(found or 0)


async def refusal(db: Database, role: str, sql: str) -> str | None:
    """The SQLSTATE with which the database refuses `sql` run as `role` (None: allowed)."""
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        try:
            async with raw.transaction():
                await raw.execute(f'SET LOCAL ROLE "{role}"')
                await raw.execute(sql)
        except asyncpg.PostgresError as exc:
            return str(exc.sqlstate)
    return None


async def client_credentials(api: Client, client: dict[str, Any]) -> Any:
    return await api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )


# --- archives, rewritten ---------------------------------------------------------------------


def read_members(path: Path) -> Files:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def write_archive(path: Path, files: Files, *extra: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


def resign(files: Files, change: Callable[[dict[str, Any]], None] = lambda _: None) -> Files:
    """The manifest and SHA256SUMS made to agree with `files` again (a careful forger)."""
    manifest = json.loads(files["manifest.json"])
    change(manifest)
    manifest["tables"] = [t for t in manifest["tables"] if t["file"] in files]
    for table in manifest["tables"]:
        data = files[table["file"]]
        table["sha256"], table["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
        table["rows"] = max(len(data.splitlines()) - 1, 0)
    files["manifest.json"] = json.dumps(manifest).encode()
    files["SHA256SUMS"] = "".join(f"{t['sha256']}  {t['file']}\n" for t in manifest["tables"])
    files["SHA256SUMS"] = files["SHA256SUMS"].encode()  # type: ignore[attr-defined]
    return files


# --- the disaster path -------------------------------------------------------------------


async def test_export_delete_restore_brings_everything_back(
    api: Client, db: Database, rec_settings: Settings, staff: dict[str, str], tmp_path: Path
) -> None:
    tenant, admin, made = await busy_firm(api, db, rec_settings, "restore-firm")
    other, _ = await firm(api, db, rec_settings, "other-firm")
    base = "/v1/tenants/restore-firm"
    entries = (await api.get(f"{base}/ledger/entries", headers=admin)).json()["items"]
    before = await digests(db, tenant.tenant_id)
    assert all(before[t][0] > 0 for t in ("ledger_entries", "ledger_lines", "records_versions",
                                           "work_requests", "tasks", "audit_events"))  # fmt: skip
    archive = await export_and_delete(api, staff, "restore-firm", tmp_path / "firm.tar.gz")
    await nothing_of(db, tenant.tenant_id)

    result = await restore_tenant(db.engine, archive)

    assert (result.tenant_id, result.slug, result.schema) == (
        tenant.tenant_id,
        "restore-firm",
        tenant.schema,
    )
    assert (result.revision, result.upgraded_to) == (tenant_head(), None)
    assert await digests(db, tenant.tenant_id) == before  # every row of every table, the chain
    assert result.audit_events == before["audit_events"][0]
    assert result.rows == {t: rows for t, (rows, _) in before.items() if t != "alembic_version"}
    verdict = await audit.verify(db.engine, tenant.tenant_id)
    assert verdict.ok and verdict.events_checked == result.audit_events, verdict
    shown = (await api.get(base, headers=staff)).json()
    assert (shown["status"], shown["name"]) == ("active", "Restore-Firm")
    restored = (await api.get("/v1/staff/audit/events", headers=staff)).json()["items"][0]
    assert (restored["action"], restored["target"]) == ("tenant.restored", "tenant:restore-firm")

    # The chain checks out over the API too, and the ledger's postings against it.
    chain = (await api.post(f"{base}/audit/verify", headers=staff)).json()
    assert (chain["ok"], chain["events_checked"]) == (True, result.audit_events), chain
    books = (await api.get(f"{base}/ledger/verify", headers=staff)).json()
    assert books["ok"] is True, books

    # API clients are platform rows the deletion removed and the export does not hold: the
    # old one is gone; a new one, issued after the restore, reads the restored data.
    old = await client_credentials(api, made["client"])
    assert (old.status_code, old.json()["error"]) == (401, "invalid_client")
    new = await api.post(
        f"{base}/clients",
        json={"name": "ERP again", "scopes": ["ledger:read", "records:read"]},
        headers=staff,
    )
    assert new.status_code == 201, new.text
    # ... audited on the restored chain, which goes on from its restored head.
    grown = await audit.verify(db.engine, tenant.tenant_id)
    assert grown.ok and grown.events_checked == result.audit_events + 1, grown
    token = await client_credentials(api, new.json())
    assert token.status_code == 200, token.text
    as_client = bearer(token.json()["access_token"])
    again = (await api.get(f"{base}/ledger/entries", headers=as_client)).json()["items"]
    assert again == entries
    content = await api.get(
        f"{base}/records/documents/{made['document']['id']}/content", headers=as_client
    )
    assert (content.status_code, content.content) == (200, b"invoice 1: 120.50 EUR\n")

    # The restored role reaches its own schema only.
    role = role_name(tenant.tenant_id)
    assert await refusal(db, role, f'SELECT * FROM "{tenant.schema}".ledger_lines') is None
    assert await refusal(db, role, f'SELECT * FROM "{other.schema}".ledger_lines') == "42501"
    assert await refusal(db, other.role, f'SELECT * FROM "{tenant.schema}".tasks') == "42501"
    assert await refusal(db, role, f'SELECT * FROM "{tenant.schema}".alembic_version') == "42501"

    # The ledger's rules are back on after the load.
    assert await refusal(db, role, f'DELETE FROM "{tenant.schema}".ledger_lines') == "LD001"

    # Restoring it again while it exists is refused, naming why; nothing changes.
    counted = await counts(db.engine)
    with pytest.raises(RestoreError, match="still exists"):
        await restore_tenant(db.engine, archive)
    assert await counts(db.engine) == counted
    now = await digests(db, tenant.tenant_id)
    assert {t: d for t, d in now.items() if t != "audit_events"} == {
        t: d for t, d in before.items() if t != "audit_events"
    }


async def test_an_archive_behind_head_is_built_at_its_revision_then_upgraded(
    api: Client, db: Database, rec_settings: Settings, staff: dict[str, str], tmp_path: Path
) -> None:
    """An export taken before t0009 (compliance): built at t0008, loaded, upgraded to head,
    and its role granted exactly what a signup's role gets."""
    tenant, _, _ = await busy_firm(api, db, rec_settings, "old-firm")
    before = await digests(db, tenant.tenant_id)
    archive = await export_and_delete(api, staff, "old-firm", tmp_path / "old.tar.gz")
    files = read_members(archive)
    for name in [n for n in files if n.startswith("data/compliance_")]:
        del files[name]
    files["data/alembic_version.csv"] = b"version_num\nt0008\n"
    resign(files, lambda m: m["schema"].update(revision="t0008"))
    older = write_archive(tmp_path / "t0008.tar.gz", files)

    result = await restore_tenant(db.engine, older)

    assert (result.revision, result.upgraded_to) == ("t0008", tenant_head())
    after = await digests(db, tenant.tenant_id)
    assert after == before  # compliance tables are back (empty), the revision is head
    assert (await audit.verify(db.engine, tenant.tenant_id)).ok
    async with db.engine.connect() as conn:
        comment = await conn.scalar(
            text("SELECT obj_description(CAST(:s AS regnamespace), 'pg_namespace')"),
            {"s": tenant.schema},
        )
    assert comment.endswith(f"revision {tenant_head()}")

    # Its role holds what a new signup's role holds, table by table.
    fresh = await make_tenant(db, "fresh-firm")
    assert await privileges(db, tenant.tenant_id) == await privileges(db, fresh.tenant_id)
    role = role_name(tenant.tenant_id)
    assert await refusal(db, role, f'SELECT * FROM "{fresh.schema}".ledger_lines') == "42501"
    lines = (await api.get("/v1/tenants/old-firm/ledger/entries", headers=staff)).json()
    assert len(lines["items"]) == 2


async def privileges(db: Database, tenant_id: uuid.UUID) -> set[tuple[str, str]]:
    """What the tenant's role may do in its schema: per table, the schema itself, and
    whether it may use every sequence (a schema built by replaying migrations has serial
    sequences that one built from the models does not)."""
    schema, role = schema_name(tenant_id), role_name(tenant_id)
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname, p.privilege_type FROM pg_class c"
                " CROSS JOIN (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'),"
                " ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) AS p(privilege_type)"
                " WHERE c.relnamespace = CAST(:s AS regnamespace) AND c.relkind = 'r'"
                " AND has_table_privilege(:r, c.oid, p.privilege_type)"
            ),
            {"s": schema, "r": role},
        )
        found = {(str(row[0]), str(row[1])) for row in rows}
        other = await conn.execute(
            text(
                "SELECT has_schema_privilege(:r, :s, 'USAGE'),"
                " (SELECT count(*) FROM pg_default_acl"
                "  WHERE defaclnamespace = CAST(:s AS regnamespace)),"
                " (SELECT bool_and(has_sequence_privilege(:r, c.oid, 'USAGE, SELECT, UPDATE'))"
                "  FROM pg_class c WHERE c.relnamespace = CAST(:s AS regnamespace)"
                "  AND c.relkind = 'S')"
            ),
            {"r": role, "s": schema},
        )
        usage, defaults, sequences = other.one()
    return found | {("schema", str(usage)), ("defaults", str(defaults)), ("seq", str(sequences))}


def test_the_cli_restores_under_another_slug(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    env = bpo_env(BPO_DATABASE_URL=settings.database_url or "")
    assert bpo("tenants", "create", "cli-firm", "--name", "CLI Firm", env=env).returncode == 0
    archive = tmp_path / "cli.tar.gz"
    exported = bpo("tenants", "export", "cli-firm", "--out", str(archive), env=env)
    assert exported.returncode == 0, exported.stderr
    assert bpo("tenants", "delete", "cli-firm", env=env).returncode == 0

    restored = bpo(
        "tenants", "restore", str(archive), "--slug", "cli-firm-2", "--name", "CLI Two", env=env
    )
    assert restored.returncode == 0, restored.stderr
    lines = restored.stdout.splitlines()
    assert lines[0].startswith("restored cli-firm-2\tCLI Two\t")
    assert lines[1] == f"revision {tenant_head()}"
    assert lines[2].endswith(" rows") and lines[3] == "audit chain verified (0 entries)"
    assert lines[4].startswith("archive sha256 ") and "grant them again" in lines[5]
    shown = bpo("tenants", "show", "cli-firm-2", env=env).stdout
    assert "status: active" in shown

    again = bpo("tenants", "restore", str(archive), "--slug", "cli-firm-3", env=env)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.startswith("bpo: tenant ") and "still exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1  # one line, no traceback
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[:-100])
    truncated = bpo("tenants", "restore", str(cut), env=env)
    assert truncated.returncode == 1 and len(truncated.stderr.strip().splitlines()) == 1
    assert truncated.stderr.startswith("bpo: cut.tar.gz is not a readable .tar.gz archive")


# --- refusals: each creates nothing ----------------------------------------------------------


@dataclasses.dataclass
class Exported:
    tenant: TenantContext
    archive: Path
    files: Files


@pytest.fixture
async def exported(
    api: Client, db: Database, settings: Settings, staff: dict[str, str], tmp_path: Path
) -> Exported:
    """A small firm with an audit chain (its chart and two API clients), exported and
    deleted."""
    tenant = await make_tenant(db, "small-firm")
    admin = await admin_of(db, settings, tenant)
    await api.post("/v1/tenants/small-firm/ledger/chart/apply", json={}, headers=admin)
    for name in ("ERP", "BI"):
        await api.post(
            "/v1/tenants/small-firm/clients",
            json={"name": name, "scopes": ["ledger:read"]},
            headers=admin,
        )
    archive = await export_and_delete(api, staff, "small-firm", tmp_path / "small.tar.gz")
    return Exported(tenant, archive, read_members(archive))


def tampered_csv(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    data = files["data/ledger_accounts.csv"]
    files["data/ledger_accounts.csv"] = data.replace(b"Cash", b"Cask", 1)
    assert files["data/ledger_accounts.csv"] != data
    return files, []


def climbing_member(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    evil = tarfile.TarInfo("../evil")
    evil.size = 4
    return files, [evil]


def absolute_member(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    evil = tarfile.TarInfo("/tmp/evil")
    evil.size = 4
    return files, [evil]


def link_member(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    link = tarfile.TarInfo("data/link.csv")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return files, [link]


def device_member(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    device = tarfile.TarInfo("data/null.csv")
    device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
    return files, [device]


def unlisted_member(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    return {**files, "data/extra.csv": b"id\n1\n"}, []


def future_revision(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    files["data/alembic_version.csv"] = b"version_num\nt9999\n"
    return resign(files, lambda m: m["schema"].update(revision="t9999")), []


def other_format(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    return resign(files, lambda m: m.update(format="bpo-tenant-export/2")), []


def sums_disagree(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    files["SHA256SUMS"] = files["SHA256SUMS"].replace(b"0", b"1", 1)
    return files, []


def forged_chain(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    """An event's actor changed, and the manifest and sums made to agree: only the chain
    itself can tell, late in the restore (after the schema was built and loaded)."""
    lines = files["data/audit_events.csv"].decode().splitlines(keepends=True)
    assert len(lines) >= 3, lines
    lines[2] = lines[2].replace("user:", "user:0", 1)
    files["data/audit_events.csv"] = "".join(lines).encode()
    return resign(files), []


def garbled_csv(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    """Not CSV at all, with the manifest and sums agreeing: refused once the schema is built."""
    files["data/ledger_accounts.csv"] = b"\xff\xfe\x00 not csv"
    return resign(files), []


def duplicated_row(files: Files) -> tuple[Files, list[tarfile.TarInfo]]:
    """A row twice, the manifest and sums agreeing: the database refuses it mid-load."""
    lines = files["data/ledger_accounts.csv"].splitlines(keepends=True)
    files["data/ledger_accounts.csv"] = b"".join([*lines, lines[1]])
    return resign(files), []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (tampered_csv, r"data/ledger_accounts\.csv does not match the manifest"),
        (climbing_member, r"'\.\./evil' has an unsafe path"),
        (absolute_member, r"'/tmp/evil' has an unsafe path"),
        (link_member, r"'data/link\.csv' is a link"),
        (device_member, r"'data/null\.csv' is a directory or device"),
        (unlisted_member, r"'data/extra\.csv' is not in the manifest"),
        (future_revision, r"revision 't9999', which this bpo does not know"),
        (other_format, r"format 'bpo-tenant-export/2'"),
        (sums_disagree, r"SHA256SUMS and manifest\.json disagree|SHA256SUMS names"),
        (forged_chain, r"audit chain is broken at event 2"),
        (garbled_csv, r"data/ledger_accounts\.csv is not a readable CSV file"),
        (duplicated_row, r"data/ledger_accounts\.csv could not be loaded into ledger_accounts"),
    ],
)
async def test_a_bad_archive_is_refused_and_creates_nothing(
    db: Database,
    exported: Exported,
    tmp_path: Path,
    change: Callable[[Files], tuple[Files, list[tarfile.TarInfo]]],
    message: str,
) -> None:
    files, extra = change(dict(exported.files))
    bad = write_archive(tmp_path / "bad.tar.gz", files, *extra)
    before, platform_chain = await counts(db.engine), await platform_events(db)
    with pytest.raises(RestoreError, match=message):
        await restore_tenant(db.engine, bad)
    assert await counts(db.engine) == before
    assert await platform_events(db) == platform_chain
    await nothing_of(db, exported.tenant.tenant_id)
    # The untouched archive still restores.
    assert (await restore_tenant(db.engine, exported.archive)).audit_events >= 3


@pytest.mark.parametrize("keep", [0.5, 0.98, 0.0])
async def test_a_truncated_or_garbled_archive_is_a_clear_refusal(
    db: Database, exported: Exported, tmp_path: Path, keep: float
) -> None:
    data = exported.archive.read_bytes()
    bad = tmp_path / "cut.tar.gz"
    bad.write_bytes(data[: int(len(data) * keep)] if keep else b"not an archive at all\n" * 9)
    before = await counts(db.engine)
    with pytest.raises(RestoreError, match=r"cut\.tar\.gz is not a readable \.tar\.gz"):
        await restore_tenant(db.engine, bad)
    assert await counts(db.engine) == before
    await nothing_of(db, exported.tenant.tenant_id)
    with pytest.raises(RestoreError, match="no archive at"):
        await restore_tenant(db.engine, tmp_path / "missing.tar.gz")


async def test_a_taken_or_bad_slug_is_refused_and_creates_nothing(
    db: Database, exported: Exported
) -> None:
    await make_tenant(db, "taken-firm")
    before = await counts(db.engine)
    with pytest.raises(RestoreError, match="the slug 'taken-firm' is taken") as taken:
        await restore_tenant(db.engine, exported.archive, slug="taken-firm")
    assert taken.value.status == 409
    with pytest.raises(RestoreError, match="the slug 'Bad Slug' must be lowercase"):
        await restore_tenant(db.engine, exported.archive, slug="Bad Slug")
    with pytest.raises(RestoreError, match="name must be"):
        await restore_tenant(db.engine, exported.archive, name="  ")
    assert await counts(db.engine) == before
    await nothing_of(db, exported.tenant.tenant_id)
    restored = await restore_tenant(db.engine, exported.archive, slug="small-firm-2", name="Two")
    assert (restored.slug, restored.name) == ("small-firm-2", "Two")
    assert (await audit.verify(db.engine, exported.tenant.tenant_id)).ok


async def test_without_the_right_to_hold_triggers_the_chain_is_relinked_by_its_trigger(
    db: Database, exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login that may not set session_replication_role: the events are appended again and
    the platform's commit trigger recomputes every number and hash, which must match."""
    from bpo.platform.tenants import restore

    async def may_not(_: Any) -> bool:
        return False

    monkeypatch.setattr(restore, "may_replicate", may_not)
    files, _ = forged_chain(dict(exported.files))
    forged = write_archive(tmp_path / "forged.tar.gz", files)
    before = await counts(db.engine)
    with pytest.raises(RestoreError, match="audit chain is broken at event 2: its number or"):
        await restore_tenant(db.engine, forged)
    assert await counts(db.engine) == before
    await nothing_of(db, exported.tenant.tenant_id)

    result = await restore_tenant(db.engine, exported.archive)
    verdict = await audit.verify(db.engine, exported.tenant.tenant_id)
    assert verdict.ok and verdict.events_checked == result.audit_events >= 3, verdict
    async with db.engine.connect() as conn:
        linked = await conn.scalar(
            text(
                "SELECT count(*) FROM platform.audit_events"
                " WHERE chain_id = :c AND link_before IS NULL AND hash IS NOT NULL"
            ),
            {"c": exported.tenant.tenant_id},
        )
    assert linked == result.audit_events
