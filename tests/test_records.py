"""Record keeping over the API: documents with versions, content in and out (digests,
ETags, ranges), classes, holds, search, and every refusal (a problem, nothing stored)."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bpo.core.db import Database
from bpo.core.tenancy import tenant_session
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import bearer, client_token, make_user, user_token
from tests.support.isolation import assert_cross_tenant_404
from tests.support.records import filed, firm, records_settings
from tests.support.work import staff_member

Client = AsyncTestClient[Litestar]


@pytest.fixture
def rec_settings(settings: Settings, tmp_path: Path) -> Settings:
    return records_settings(settings, tmp_path / "data")


@pytest.fixture
async def api(rec_settings: Settings, db: Database) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=build_app(rec_settings)) as client:
        yield client


def b64(data: bytes, algo: str = "sha256") -> str:
    return base64.b64encode(hashlib.new(algo, data).digest()).decode()


async def test_versions_round_trip_with_hashes_etag_and_ranges(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await firm(api, db, settings, "rec-one")
    base = "/v1/tenants/rec-one/records/documents"
    first, second = os.urandom(70_000), b"the second version\n"
    doc = await filed(api, "rec-one", admin, first, counterparty="Acme GmbH", tags=["2026"])
    assert doc["status"] == "active" and doc["current_version"]["number"] == 1
    assert doc["current_version"]["sha256"] == hashlib.sha256(first).hexdigest()
    assert doc["retain_until"] == "2033-11-03" and doc["mode"] == "compliance"
    put = await api.put(
        f"{base}/{doc['id']}/content?filename=notes.txt",
        content=second,
        headers={
            **admin,
            "Content-Type": "text/plain",
            "Content-Digest": f"sha-256=:{b64(second)}:",
        },
    )
    assert put.status_code == 201, put.text
    assert put.headers["etag"] == f'"{hashlib.sha256(second).hexdigest()}"'
    latest = await api.get(f"{base}/{doc['id']}/content", headers=admin)
    assert latest.status_code == 200 and latest.content == second
    assert latest.headers["etag"] == put.headers["etag"]
    assert latest.headers["repr-digest"] == f"sha-256=:{b64(second)}:"
    assert "notes.txt" in latest.headers["content-disposition"]
    older = await api.get(f"{base}/{doc['id']}/content?version=1", headers=admin)
    assert older.content == first
    part = await api.get(
        f"{base}/{doc['id']}/content?version=1", headers={**admin, "Range": "bytes=100-199"}
    )
    assert part.status_code == 206 and part.content == first[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(first)}"
    tail = await api.get(f"{base}/{doc['id']}/content", headers={**admin, "Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == second[-5:]
    outside = await api.get(f"{base}/{doc['id']}/content", headers={**admin, "Range": "bytes=999-"})
    assert (
        outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{len(second)}"
    )
    same = await api.get(
        f"{base}/{doc['id']}/content", headers={**admin, "If-None-Match": put.headers["etag"]}
    )
    assert same.status_code == 304
    versions = (await api.get(f"{base}/{doc['id']}/versions", headers=admin)).json()["items"]
    assert [(v["number"], v["size"]) for v in versions] == [(1, len(first)), (2, len(second))]
    assert versions[1]["sniffed_type"] == "text/plain" and versions[1]["filename"] == "notes.txt"


async def test_multipart_upload_files_and_stores_in_one_request(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await firm(api, db, settings, "rec-multi")
    pdf = b"%PDF-1.4\n" + os.urandom(5000)
    unknown = await api.post(
        "/v1/tenants/rec-multi/records/documents",
        files={"file": ("scan.pdf", pdf, "application/pdf")},
        data={"metadata": '{"record_class": "nope", "title": "S", "document_date": "2026-01-02"}'},
        headers=admin,
    )
    assert unknown.status_code == 422 and "/record_class" in unknown.text
    no_file = await api.post(
        "/v1/tenants/rec-multi/records/documents",
        files={"other": ("x", b"x")},
        data={
            "metadata": '{"record_class": "drafts", "title": "S", "document_date": "2026-01-02"}'
        },
        headers=admin,
    )
    assert no_file.status_code == 400, no_file.text
    listed = await api.get("/v1/tenants/rec-multi/records/documents?status=pending", headers=admin)
    assert listed.json()["items"] == []  # a refused upload files nothing
    made = await api.post(
        "/v1/tenants/rec-multi/records/documents",
        files={"file": ("scan.pdf", pdf, "application/pdf")},
        data={
            "metadata": '{"record_class": "drafts", "title": "Scan", "document_date": "2026-01-02"}'
        },
        headers=admin,
    )
    assert made.status_code == 201, made.text
    version = made.json()["current_version"]
    assert version["sha256"] == hashlib.sha256(pdf).hexdigest() and version["size"] == len(pdf)
    assert version["filename"] == "scan.pdf" and version["sniffed_type"] == "application/pdf"


async def test_content_type_lies_are_kept_beside_the_sniffed_type(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await firm(api, db, settings, "rec-sniff")
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(100)
    doc = await filed(api, "rec-sniff", admin)
    put = await api.put(
        f"/v1/tenants/rec-sniff/records/documents/{doc['id']}/content",
        content=png, headers={**admin, "Content-Type": "application/pdf"},
    )  # fmt: skip
    version = put.json()["current_version"]
    assert version["content_type"] == "application/pdf" and version["sniffed_type"] == "image/png"


async def _stored_versions(db: Database, slug: str) -> int:
    async with db.engine.connect() as conn:
        tenant_id = await conn.scalar(
            text("SELECT id FROM platform.tenants WHERE slug = :s"), {"s": slug}
        )
        schema = f"tenant_{tenant_id.hex}"
        return int(
            await conn.scalar(text(f'SELECT count(*) FROM "{schema}".records_versions')) or 0
        )


@pytest.mark.parametrize(
    ("headers", "status", "slug"),
    [
        (
            {"Content-Digest": "sha-256=:" + base64.b64encode(b"x" * 32).decode() + ":"},
            422,
            "digest-mismatch",
        ),
        ({"Digest": "SHA-256=" + base64.b64encode(b"y" * 32).decode()}, 422, "digest-mismatch"),
        (
            {"Repr-Digest": "sha-512=:" + base64.b64encode(b"z" * 64).decode() + ":"},
            422,
            "digest-mismatch",
        ),
        ({"Content-Digest": "sha-256=abc"}, 400, "malformed-request"),
        ({"Content-Digest": "sha-256=:AAAA:"}, 400, "malformed-request"),
    ],
)
async def test_a_digest_mismatch_stores_nothing(
    api: Client, db: Database, settings: Settings, headers: dict[str, str], status: int, slug: str
) -> None:
    name = f"rec-dg-{uuid.uuid4().hex[:6]}"
    _, admin = await firm(api, db, settings, name)
    doc = await filed(api, name, admin)
    put = await api.put(
        f"/v1/tenants/{name}/records/documents/{doc['id']}/content",
        content=b"hello", headers={**admin, **headers},
    )  # fmt: skip
    assert put.status_code == status, put.text
    assert put.json()["type"].endswith(f"/{slug}")
    assert await _stored_versions(db, name) == 0
    shown = (
        await api.get(f"/v1/tenants/{name}/records/documents/{doc['id']}", headers=admin)
    ).json()
    assert shown["status"] == "pending" and shown["current_version"] is None


async def test_bad_metadata_is_a_problem_naming_the_field(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await firm(api, db, settings, "rec-bad")
    base = "/v1/tenants/rec-bad/records/documents"
    good = {"record_class": "invoices", "title": "A", "document_date": "2026-11-03"}
    cases: list[tuple[Any, int, str]] = [
        (good | {"record_class": "nope"}, 422, "/record_class"),
        (good | {"title": "../../etc/passwd"}, 422, "/title"),
        (good | {"title": "a\\b"}, 422, "/title"),
        (good | {"title": ".."}, 422, "/title"),
        (good | {"document_date": "yesterday"}, 422, "/document_date"),
        (good | {"colour": "red"}, 422, "colour"),
        (good | {"tags": "x"}, 422, "/tags"),
    ]
    for body, status, where in cases:
        reply = await api.post(base, json=body, headers=admin)
        assert reply.status_code == status, (body, reply.text)
        assert where in reply.text, reply.text
    empty = await api.post(base, content=b"", headers={**admin, "Content-Type": "application/json"})
    assert empty.status_code == 400 and empty.json()["type"].endswith("/empty-body")
    broken = await api.post(
        base, content=b"{", headers={**admin, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    listed = (await api.get(base, headers=admin)).json()
    assert listed["items"] == []


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    small = records_settings(settings, tmp_path / "d", records_max_bytes=1000)
    async with AsyncTestClient(app=build_app(small)) as api:
        _, admin = await firm(api, db, settings, "rec-big")
        doc = await filed(api, "rec-big", admin)
        url = f"/v1/tenants/rec-big/records/documents/{doc['id']}/content"
        declared = await api.put(url, content=b"x" * 1001, headers=admin)
        assert declared.status_code == 413, declared.text
        assert "1000 bytes" in declared.json()["detail"]
    assert await _stored_versions(db, "rec-big") == 0
    assert not [p for p in (tmp_path / "d" / "records").rglob("*") if p.is_file()]


async def test_tampered_content_is_refused_and_audited(
    api: Client, db: Database, settings: Settings, rec_settings: Settings
) -> None:
    _, admin = await firm(api, db, settings, "rec-tamper")
    content = os.urandom(4096)
    doc = await filed(api, "rec-tamper", admin, content)
    sha = hashlib.sha256(content).hexdigest()
    stored = next((rec_settings.data_dir / "records").rglob(sha))
    stored.chmod(0o600)
    stored.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    url = f"/v1/tenants/rec-tamper/records/documents/{doc['id']}/content"
    reply = await api.get(url, headers=admin)
    assert reply.status_code == 500 and reply.json()["type"].endswith("/record-corrupted")
    assert content[:100] not in reply.content
    ranged = await api.get(url, headers={**admin, "Range": "bytes=0-9"})
    assert ranged.status_code == 500
    events = (await api.get("/v1/tenants/rec-tamper/audit/events", headers=admin)).json()
    assert any(e["action"] == "records.version.corrupted" for e in events["items"]), events


async def test_search_filters_and_full_text(api: Client, db: Database, settings: Settings) -> None:
    _, admin = await firm(api, db, settings, "rec-search")
    base = "/v1/tenants/rec-search/records/documents"
    await filed(api, "rec-search", admin, b"x", title="Lease agreement", counterparty="Acme GmbH",
                tags=["lease"], custom_fields={"contract_no": "C-17"},
                links=[{"kind": "ledger_entry", "id": "42"}])  # fmt: skip
    await filed(api, "rec-search", admin, b"y", title="Invoice 2026-001", counterparty="Globex",
                document_date="2025-02-01", record_class="drafts", type="invoice")  # fmt: skip
    await filed(api, "rec-search", admin, b"z", title="Invoice 2026-002", counterparty="Acme GmbH")

    async def titles(query: str) -> list[str]:
        reply = await api.get(f"{base}?{query}", headers=admin)
        assert reply.status_code == 200, reply.text
        return sorted(d["title"] for d in reply.json()["items"])

    assert await titles("counterparty=acme%20gmbh") == ["Invoice 2026-002", "Lease agreement"]
    assert await titles("record_class=drafts") == ["Invoice 2026-001"]
    assert await titles("type=invoice") == ["Invoice 2026-001"]
    assert await titles("tag=lease") == ["Lease agreement"]
    assert await titles("field=contract_no:C-17") == ["Lease agreement"]
    assert await titles("link=ledger_entry:42") == ["Lease agreement"]
    assert await titles("date_to=2025-12-31") == ["Invoice 2026-001"]
    assert await titles("q=invoices") == ["Invoice 2026-001", "Invoice 2026-002"]
    assert await titles("q=lease") == ["Lease agreement"]
    assert await titles("q=invoice&counterparty=Globex") == ["Invoice 2026-001"]
    page = (await api.get(f"{base}?limit=2", headers=admin)).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = (await api.get(f"{base}?limit=2&cursor={page['next_cursor']}", headers=admin)).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    bad = await api.get(f"{base}?cursor=nope", headers=admin)
    assert bad.status_code == 400


async def test_another_firms_documents_are_404_everywhere(
    api: Client, db: Database, settings: Settings
) -> None:
    tenant_a, admin_a = await firm(api, db, settings, "rec-iso-a")
    tenant_b, admin_b = await firm(api, db, settings, "rec-iso-b")
    doc = await filed(api, "rec-iso-b", admin_b, b"secret of b")
    hold = await api.post(
        "/v1/tenants/rec-iso-b/records/holds",
        json={"name": "H", "reason": "r", "documents": [doc["id"]]}, headers=admin_b,
    )  # fmt: skip
    hold_id = hold.json()["id"]

    async def unchanged() -> Any:
        got = await api.get(f"/v1/tenants/rec-iso-b/records/documents/{doc['id']}", headers=admin_b)
        return got.json()

    paths = [
        ("GET", f"/v1/tenants/rec-iso-a/records/documents/{doc['id']}", {}),
        ("GET", f"/v1/tenants/rec-iso-a/records/documents/{doc['id']}/content", {}),
        ("GET", f"/v1/tenants/rec-iso-a/records/documents/{doc['id']}/versions", {}),
        ("PUT", f"/v1/tenants/rec-iso-a/records/documents/{doc['id']}/content", {"content": b"x"}),
        ("DELETE", f"/v1/tenants/rec-iso-a/records/documents/{doc['id']}", {}),
        ("GET", f"/v1/tenants/rec-iso-a/records/holds/{hold_id}", {}),
        (
            "POST",
            f"/v1/tenants/rec-iso-a/records/holds/{hold_id}/release",
            {"json": {"reason": "x"}},
        ),
        ("GET", f"/v1/tenants/rec-iso-b/records/documents/{doc['id']}", {}),  # B through A's token
        ("GET", "/v1/tenants/rec-iso-b/records/classes", {}),
    ]
    for method, path, extra in paths:
        await assert_cross_tenant_404(
            api, method, path, unchanged=unchanged, headers=admin_a, **extra
        )
    assert (await unchanged())["held"] == ["H"]
    # The database itself: A's role cannot read B's tables.
    tenant_a_doc = await filed(api, "rec-iso-a", admin_a, b"a")
    assert tenant_a_doc["id"] != doc["id"]
    async with db.engine.connect() as conn:
        role_a = tenant_a.role
        await conn.execute(text(f'SET ROLE "{role_a}"'))
        with pytest.raises(Exception, match="permission denied"):
            await conn.execute(text(f'SELECT * FROM "{tenant_b.schema}".records_documents'))
        await conn.rollback()


async def test_scopes_and_roles(api: Client, db: Database, settings: Settings) -> None:
    tenant, admin = await firm(api, db, settings, "rec-scopes")
    reader = bearer(await client_token(db, settings, tenant, ["records:read"]))
    writer = bearer(await client_token(db, settings, tenant, ["records:read", "records:write"]))
    member_id = await make_user(db, "m@rec-scopes.example", tenants={tenant: "tenant_member"})
    member = bearer(await user_token(db, settings, member_id, tenant=tenant))
    base = "/v1/tenants/rec-scopes/records"
    doc = await filed(api, "rec-scopes", writer, b"by a machine")
    assert (await api.get(f"{base}/documents/{doc['id']}", headers=reader)).status_code == 200
    refused = await api.put(f"{base}/documents/{doc['id']}/content", content=b"x", headers=reader)
    assert refused.status_code == 403
    hold = {"name": "H", "reason": "r", "documents": [doc["id"]]}
    assert (await api.post(f"{base}/holds", json=hold, headers=writer)).status_code == 403
    assert (await api.post(f"{base}/holds", json=hold, headers=member)).status_code == 403
    new_class = {"code": "c", "name": "C", "mode": "governance", "retention_years": 1}
    assert (await api.post(f"{base}/classes", json=new_class, headers=member)).status_code == 403
    assert (await api.post(f"{base}/holds", json=hold, headers=admin)).status_code == 201
    _, assigned = await staff_member(db, settings, [tenant])
    _, elsewhere = await staff_member(db, settings, [])
    by_staff = await filed(api, "rec-scopes", assigned, b"filed by the provider's staff")
    assert by_staff["created_by"].startswith("staff")
    listed = await api.get(f"{base}/documents", headers=assigned)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 2
    assert (await api.get(f"{base}/documents", headers=elsewhere)).status_code == 404


REFUSALS = "never|retained|compliance|permission denied|must be owner|disposed|only ever|shortened"


async def test_raw_sql_as_the_tenant_role_cannot_rewrite_versions(
    api: Client, db: Database, settings: Settings
) -> None:
    tenant, admin = await firm(api, db, settings, "rec-sql")
    await filed(api, "rec-sql", admin, b"kept")
    statements = [
        "UPDATE records_versions SET sha256 = repeat('0', 64)",
        "UPDATE records_versions SET content_removed_at = now()",
        "DELETE FROM records_versions",
        "DELETE FROM records_documents",
        "UPDATE records_documents SET retain_until = retain_until - 1",
        "UPDATE records_documents SET status = 'disposed'",
        "UPDATE records_documents SET title = 'changed'",
        "UPDATE records_classes SET mode = 'governance' WHERE code = 'invoices'",
        "UPDATE records_classes SET retention_years = 1 WHERE code = 'invoices'",
        "TRUNCATE records_versions",
        "ALTER TABLE records_documents DISABLE TRIGGER guard",
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match=REFUSALS):
            async with tenant_session(db.engine, tenant) as session:
                await session.execute(text(statement))
    async with tenant_session(db.engine, tenant) as session:
        row = (await session.execute(text("SELECT title, status FROM records_documents"))).one()
    assert tuple(row) == ("Invoice 1", "active")
