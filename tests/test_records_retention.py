"""Retention, legal holds, disposal and erasure: no path (API, job, raw SQL as the tenant's
role) deletes a compliance-mode record before it expires or a held one, and every
disposal leaves a certificate and a verifiable audit chain."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext, tenant_session
from bpo.records.jobs import dispose_all, snapshot_all
from bpo.records.retention import today
from bpo.records.storage import store_for
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import bearer, staff_admin_token
from tests.support.jobs import running_worker, wait_for
from tests.support.records import filed, firm, records_settings

Client = AsyncTestClient[Litestar]
EXPIRED = {"record_class": "drafts", "received_on": "2020-01-02", "document_date": "2020-01-02"}


@pytest.fixture
def rec_settings(settings: Settings, tmp_path: Path) -> Settings:
    return records_settings(settings, tmp_path / "data")


@pytest.fixture
async def api(rec_settings: Settings, db: Database) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=build_app(rec_settings)) as client:
        yield client


def stored_files(settings: Settings) -> set[str]:
    root = settings.data_dir / "records"
    return {p.name for p in root.rglob("*") if p.is_file() and ".spool" not in p.parts}


async def audit_ok(api: Client, slug: str, admin: dict[str, str]) -> None:
    verdict = await api.post(f"/v1/tenants/{slug}/audit/verify", headers=admin)
    assert verdict.status_code == 200 and verdict.json()["ok"] is True, verdict.text


async def test_delete_disposes_once_retention_ended_and_issues_a_certificate(
    api: Client, db: Database, settings: Settings, rec_settings: Settings
) -> None:
    _, admin = await firm(api, db, settings, "ret-del")
    base = "/v1/tenants/ret-del/records/documents"
    doc = await filed(api, "ret-del", admin, b"old draft", title="Old", **EXPIRED)
    sha = doc["current_version"]["sha256"]
    assert sha in stored_files(rec_settings)
    gone = await api.delete(f"{base}/{doc['id']}", headers=admin)
    assert gone.status_code == 200, gone.text
    assert gone.json()["status"] == "disposed" and gone.json()["certificate_id"]
    assert (await api.get(f"{base}/{doc['id']}", headers=admin)).status_code == 404
    assert (await api.get(f"{base}/{doc['id']}/content", headers=admin)).status_code == 404
    again = await api.put(f"{base}/{doc['id']}/content", content=b"x", headers=admin)
    assert again.status_code == 404
    assert (await api.delete(f"{base}/{doc['id']}", headers=admin)).status_code == 404
    kept = (await api.get(f"{base}/{doc['id']}?include_disposed=true", headers=admin)).json()
    assert kept["status"] == "disposed" and kept["current_version"]["sha256"] == sha
    assert kept["current_version"]["content_removed_at"] is not None
    assert sha not in stored_files(rec_settings)
    certificate = await api.get(f"{base}/{gone.json()['certificate_id']}/content", headers=admin)
    assert certificate.status_code == 200
    listed = json.loads(certificate.content)["documents"]
    assert listed[0]["id"] == doc["id"] and listed[0]["versions"][0]["sha256"] == sha
    certificate_doc = (
        await api.get(f"{base}/{gone.json()['certificate_id']}", headers=admin)
    ).json()
    assert certificate_doc["mode"] == "compliance" and certificate_doc["retain_until"] is None
    await audit_ok(api, "ret-del", admin)


async def test_compliance_mode_yields_to_nobody_governance_to_a_provider_admin(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await firm(api, db, settings, "ret-modes")
    base = "/v1/tenants/ret-modes/records/documents"
    provider = bearer(await staff_admin_token(db, settings))
    kept = await filed(api, "ret-modes", admin, b"invoice")  # compliance, until 2033-11-03
    refused = await api.delete(f"{base}/{kept['id']}", headers=admin)
    assert refused.status_code == 409 and refused.json()["type"].endswith("/retention-active")
    assert (
        "2033-11-03" in refused.json()["detail"] and refused.json()["retain_until"] == "2033-11-03"
    )
    forced = await api.delete(f"{base}/{kept['id']}?reason=auditor%20agreed", headers=provider)
    assert forced.status_code == 409, forced.text
    draft = await filed(api, "ret-modes", admin, b"draft", record_class="drafts")
    assert (await api.delete(f"{base}/{draft['id']}", headers=admin)).status_code == 409
    no_reason = await api.delete(f"{base}/{draft['id']}", headers=provider)
    assert no_reason.status_code == 409
    early = await api.delete(f"{base}/{draft['id']}?reason=duplicate%20upload", headers=provider)
    assert early.status_code == 200 and early.json()["status"] == "disposed", early.text
    events = (await api.get("/v1/tenants/ret-modes/audit/events", headers=admin)).json()["items"]
    disposed = [e for e in events if e["action"] == "records.document.disposed"]
    assert len(disposed) == 1 and disposed[0]["after_digest"], events
    assert disposed[0]["actor"].startswith("staff"), disposed  # the provider admin, by name
    assert (await api.get(f"{base}/{kept['id']}", headers=admin)).json()["status"] == "active"
    await audit_ok(api, "ret-modes", admin)


async def test_a_legal_hold_blocks_deletion_until_released(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await firm(api, db, settings, "ret-hold")
    base = "/v1/tenants/ret-hold/records"
    doc = await filed(api, "ret-hold", admin, b"x", counterparty="Initech", **EXPIRED)
    other = await filed(api, "ret-hold", admin, b"y", counterparty="Globex", **EXPIRED)
    hold = await api.post(
        f"{base}/holds",
        json={
            "name": "Initech litigation",
            "reason": "subpoena 2026-17",
            "counterparty": "initech",
        },
        headers=admin,
    )
    assert hold.status_code == 201, hold.text
    shown = (await api.get(f"{base}/documents/{doc['id']}", headers=admin)).json()
    assert shown["held"] == ["Initech litigation"]
    held_only = (await api.get(f"{base}/documents?held=true", headers=admin)).json()["items"]
    assert [d["id"] for d in held_only] == [doc["id"]]
    refused = await api.delete(f"{base}/documents/{doc['id']}", headers=admin)
    assert refused.status_code == 409 and refused.json()["type"].endswith("/legal-hold")
    assert refused.json()["hold"] == "Initech litigation"
    provider = bearer(await staff_admin_token(db, settings))
    forced = await api.delete(f"{base}/documents/{doc['id']}?reason=please", headers=provider)
    assert forced.status_code == 409
    assert (await api.delete(f"{base}/documents/{other['id']}", headers=admin)).status_code == 200
    hold_id = hold.json()["id"]
    bad_release = await api.post(f"{base}/holds/{hold_id}/release", json={}, headers=admin)
    assert bad_release.status_code in (400, 422)
    released = await api.post(
        f"{base}/holds/{hold_id}/release", json={"reason": "settled"}, headers=admin
    )
    assert released.status_code == 200 and released.json()["released_at"]
    twice = await api.post(f"{base}/holds/{hold_id}/release", json={"reason": "x"}, headers=admin)
    assert twice.status_code == 409
    assert (await api.delete(f"{base}/documents/{doc['id']}", headers=admin)).status_code == 200
    empty = await api.post(f"{base}/holds", json={"name": "x", "reason": "y"}, headers=admin)
    assert empty.status_code == 422
    unknown = await api.post(
        f"{base}/holds",
        json={"name": "x", "reason": "y", "documents": ["01a2460d-78a2-73a6-9b2b-3282a21b4dae"]},
        headers=admin,
    )
    assert unknown.status_code == 404
    await audit_ok(api, "ret-hold", admin)


async def test_class_retention_extends_in_compliance_and_shortens_only_for_a_provider(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await firm(api, db, settings, "ret-class")
    base = "/v1/tenants/ret-class/records"
    doc = await filed(api, "ret-class", admin, b"x")
    shorter = {"retention_years": 5, "reason": "new rule"}
    refused = await api.post(f"{base}/classes/invoices/retention", json=shorter, headers=admin)
    assert refused.status_code == 409 and refused.json()["type"].endswith("/retention-active")
    weaker = {"retention_years": 7, "reason": "x", "mode": "governance"}
    assert (await api.post(f"{base}/classes/invoices/retention", json=weaker,
                           headers=admin)).status_code == 409  # fmt: skip
    longer = {"retention_years": 10, "reason": "tax law changed"}
    extended = await api.post(f"{base}/classes/invoices/retention", json=longer, headers=admin)
    assert (
        extended.status_code == 200
        and extended.json()["rule"] == "10 years after the document date"
    )
    shown = (await api.get(f"{base}/documents/{doc['id']}", headers=admin)).json()
    assert shown["retain_until"] == "2036-11-03"
    forever = {"retention_years": None, "reason": "keep"}
    assert (await api.post(f"{base}/classes/invoices/retention", json=forever,
                           headers=admin)).status_code == 200  # fmt: skip
    draft = await filed(api, "ret-class", admin, b"d", record_class="drafts")
    cut = {"retention_years": 0, "reason": "cleanup"}
    assert (await api.post(f"{base}/classes/drafts/retention", json=cut,
                           headers=admin)).status_code == 403  # fmt: skip
    provider = bearer(await staff_admin_token(db, settings))
    done = await api.post(f"{base}/classes/drafts/retention", json=cut, headers=provider)
    assert done.status_code == 200, done.text
    shown = (await api.get(f"{base}/documents/{draft['id']}", headers=admin)).json()
    assert shown["retain_until"] == draft["received_on"]
    fiscal = {"code": "ledgers", "name": "Books", "mode": "compliance", "retention_years": 10,
              "retention_after": "fiscal_year_end", "fiscal_year_end": "03-31"}  # fmt: skip
    assert (await api.post(f"{base}/classes", json=fiscal, headers=admin)).status_code == 201
    book = await filed(api, "ret-class", admin, None, record_class="ledgers",
                       document_date="2026-05-10")  # fmt: skip
    assert book["retain_until"] == "2037-03-31"
    duplicate = await api.post(f"{base}/classes", json=fiscal, headers=admin)
    assert duplicate.status_code == 409
    bad = fiscal | {"code": "x", "fiscal_year_end": "13-01"}
    bad_day = await api.post(f"{base}/classes", json=bad, headers=admin)
    assert bad_day.status_code == 422


async def test_the_daily_disposal_spares_held_and_retained_documents(
    api: Client, db: Database, settings: Settings, rec_settings: Settings
) -> None:
    tenant, admin = await firm(api, db, settings, "ret-job")
    base = "/v1/tenants/ret-job/records"
    expired = await filed(api, "ret-job", admin, b"expired", **EXPIRED)
    held = await filed(api, "ret-job", admin, b"held", **EXPIRED)
    retained = await filed(api, "ret-job", admin, b"retained")
    await api.post(f"{base}/holds", json={"name": "H", "reason": "r", "documents": [held["id"]]},
                   headers=admin)  # fmt: skip
    store = store_for(rec_settings)
    assert await dispose_all(db, store) >= 1
    status = {
        d["id"]: d["status"]
        for d in (await api.get(f"{base}/documents?limit=200", headers=admin)).json()["items"]
    }
    assert expired["id"] not in status and status[held["id"]] == "active"
    assert status[retained["id"]] == "active"
    disposed = (await api.get(f"{base}/documents?status=disposed", headers=admin)).json()["items"]
    assert [d["id"] for d in disposed] == [expired["id"]]
    assert expired["current_version"]["sha256"] not in stored_files(rec_settings)
    assert held["current_version"]["sha256"] in stored_files(rec_settings)
    assert await dispose_all(db, store) == 0  # nothing more is due
    await _raw_sql_cannot_dispose(db, tenant, held["id"])
    await audit_ok(api, "ret-job", admin)


async def _raw_sql_cannot_dispose(db: Database, tenant: TenantContext, held_id: str) -> None:
    for statement in (
        f"UPDATE records_documents SET status = 'disposed' WHERE id = '{held_id}'",
        "SET LOCAL bpo.records_override = 'governance';"
        f" UPDATE records_documents SET status = 'disposed' WHERE id = '{held_id}'",
    ):
        with pytest.raises(Exception, match="legal hold"):
            await _run_as_tenant(db, tenant, statement.split(";"))


async def _run_as_tenant(db: Database, tenant: TenantContext, statements: list[str]) -> None:
    async with tenant_session(db.engine, tenant) as session:
        for part in statements:
            await session.execute(text(part))


async def test_erasure_redacts_what_it_may_and_names_what_keeps_the_rest(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await firm(api, db, settings, "ret-gdpr")
    base = "/v1/tenants/ret-gdpr/records"
    old = await filed(api, "ret-gdpr", admin, b"cv", title="CV of Jane Roe",
                      counterparty="Jane Roe", **EXPIRED)  # fmt: skip
    invoice = await filed(api, "ret-gdpr", admin, b"inv", title="Invoice to Jane Roe",
                          counterparty="Jane Roe")  # fmt: skip
    done = await api.post(f"{base}/erasures", json={"counterparty": "jane roe"}, headers=admin)
    assert done.status_code == 201, done.text
    body = done.json()
    assert body["status"] == "partial" and body["erased"] == [old["id"]]
    assert body["blocked"] == [
        {"document_id": invoice["id"], "reason": "retention-active", "hold": None,
         "retain_until": "2033-11-03"}
    ]  # fmt: skip
    erased = (await api.get(f"{base}/documents/{old['id']}?include_disposed=true",
                            headers=admin)).json()  # fmt: skip
    assert erased["title"] == "[erased]" and erased["counterparty"] is None
    assert (await api.get(f"{base}/documents?q=jane", headers=admin)).json()["items"][0]["id"] == (
        invoice["id"]
    )
    refused = await api.post(f"{base}/erasures", json={"counterparty": "Jane Roe"}, headers=admin)
    assert refused.status_code == 409 and refused.json()["type"].endswith("/retention-active")
    assert refused.json()["blocked"][0]["document_id"] == invoice["id"]
    kept = (await api.get(f"{base}/erasures/{refused.json()['erasure_id']}", headers=admin)).json()
    assert kept["status"] == "refused"
    nobody = await api.post(f"{base}/erasures", json={"counterparty": "Nobody"}, headers=admin)
    assert nobody.json()["status"] == "nothing"
    assert (await api.post(f"{base}/erasures", json={}, headers=admin)).status_code == 422
    events = (await api.get("/v1/tenants/ret-gdpr/audit/events", headers=admin)).json()["items"]
    assert "Jane" not in json.dumps(events)  # the chain never held the person's name
    await audit_ok(api, "ret-gdpr", admin)


NOTE = b"minutes: the quokka budget was approved"
BULK = b"\x00" * (3 << 20)
PDF = (Path(__file__).parent / "data" / "records" / "zebrafinch.pdf").read_bytes()


async def test_jobs_extract_text_and_pack_exports(
    api: Client, db: Database, settings: Settings, rec_settings: Settings
) -> None:
    tenant, admin = await firm(api, db, settings, "ret-export")
    base = "/v1/tenants/ret-export/records"
    async with running_worker(rec_settings):
        note = await filed(api, "ret-export", admin, NOTE)
        await filed(api, "ret-export", admin, BULK, record_class="drafts")
        await filed(api, "ret-export", admin, BULK, record_class="drafts")  # stored once
        scan = await filed(api, "ret-export", admin, PDF, title="Scan")

        async def found(word: str) -> list[str]:
            page = (await api.get(f"{base}/documents?q={word}", headers=admin)).json()
            return [d["id"] for d in page["items"]]

        await wait_for(lambda: _truthy(found("quokka")), timeout=30)
        assert await found("quokka") == [note["id"]]
        await wait_for(lambda: _truthy(found("zebrafinch")), timeout=30)
        assert await found("zebrafinch") == [scan["id"]]
        started = await api.post(
            f"{base}/exports", json={"record_class": "invoices"}, headers=admin
        )
        assert started.status_code == 202, started.text
        result: dict[str, Any] = {}

        async def ready() -> bool:
            result.update((await api.get(started.headers["location"], headers=admin)).json())
            return result["status"] in ("ready", "failed")

        await wait_for(ready, timeout=60)
    assert result["status"] == "ready" and result["documents"] == 2, result
    archive = await api.get(result["download"], headers=admin)
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        manifest = json.loads(z.read("manifest.json"))["documents"]
        import hashlib

        for item in manifest:
            assert hashlib.sha256(z.read(item["path"])).hexdigest() == item["sha256"]
    assert {m["id"] for m in manifest} == {note["id"], scan["id"]}
    bad = await api.post(f"{base}/exports", json={"record_class": "nope"}, headers=admin)
    assert bad.status_code == 422
    async with db.engine.connect() as conn:
        stored = await conn.scalar(
            text("SELECT sum(quantity) FROM platform.usage_events WHERE tenant_id = :t"
                 " AND meter = 'records_stored'"), {"t": tenant.tenant_id},
        )  # fmt: skip
    assert stored == 4  # versions stored
    assert await snapshot_all(db, today()) >= 1
    async with db.engine.connect() as conn:
        gb = await conn.scalar(
            text("SELECT quantity FROM platform.usage_events WHERE tenant_id = :t"
                 " AND meter = 'storage_gb_month'"), {"t": tenant.tenant_id},
        )  # fmt: skip
    stored_bytes = sum(len(b) for b in (NOTE, PDF, BULK))  # every distinct content once
    expected = (Decimal(stored_bytes) / (1 << 30)).quantize(Decimal("1e-6"))
    assert gb == expected and gb > 0


async def _truthy(result: Any) -> bool:
    return bool(await result)
