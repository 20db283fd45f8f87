"""The provider-admin tenant API (/v1/tenants), the export archive and deletion."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.core.db import Database
from bpo.core.tenant_migrations import tenant_head
from bpo.jobs.worker import start_worker, stop_worker
from bpo.platform.tenants.provisioning import fill_pool, pool_size
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import bearer, client_token, make_user, staff_admin_token, user_token
from tests.support.tenants import counts, make_tenant

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def admin(settings: Settings, db: Database) -> AsyncIterator[Client]:
    """A client holding a staff admin's token (role staff_admin, scope admin)."""
    pooled = dataclasses.replace(settings, tenant_pool_size=1)
    async with AsyncTestClient(app=build_app(pooled)) as client:
        client.headers.update(bearer(await staff_admin_token(db, settings)))
        yield client


def problem(response, status: int, slug: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith(f"/{slug}")
    return body


async def test_the_api_needs_a_staff_admin(
    client: Client, db: Database, settings: Settings
) -> None:
    body = {"slug": "acme", "name": "Acme"}
    refused = await client.post("/v1/tenants", json=body)
    problem(refused, 401, "unauthorized")
    assert refused.headers["www-authenticate"].startswith("Bearer")
    tenant = await make_tenant(db, "firm-one")
    as_client = bearer(await client_token(db, settings, tenant))
    problem(await client.post("/v1/tenants", json=body, headers=as_client), 403, "forbidden")
    member = await make_user(db, "ana@firm.example", tenants={tenant: "tenant_admin"})
    as_member = bearer(await user_token(db, settings, member, tenant=tenant, role="tenant_admin"))
    problem(await client.get("/v1/tenants", headers=as_member), 403, "forbidden")
    staff = await make_user(db, "sam@provider.example", staff_role="staff")
    as_staff = bearer(await user_token(db, settings, staff, staff_role="staff"))
    problem(await client.get("/v1/tenants", headers=as_staff), 403, "forbidden")
    listed = await client.get("/v1/tenants", headers=bearer(await staff_admin_token(db, settings)))
    assert [t["slug"] for t in listed.json()["items"]] == ["firm-one"]


async def test_create_show_list_suspend_resume(admin: Client, db: Database) -> None:
    await fill_pool(db.engine, 1)
    warm = await admin.post("/v1/tenants", json={"slug": "acme", "name": "Acme Ltd"})
    assert warm.status_code == 201, warm.text
    assert warm.json()["provisioned_from"] == "warm-pool"
    cold = await admin.post("/v1/tenants", json={"slug": "bolt", "name": "Bolt"})
    assert cold.json()["provisioned_from"] == "cold"
    body = (await admin.get("/v1/tenants/acme")).json()
    assert (body["slug"], body["name"], body["status"]) == ("acme", "Acme Ltd", "active")
    assert body["schema_name"] == "tenant_" + body["id"].replace("-", "")

    page = (await admin.get("/v1/tenants", params={"limit": 1})).json()
    assert [t["slug"] for t in page["items"]] == ["acme"]
    rest = (await admin.get("/v1/tenants", params={"cursor": page["next_cursor"]})).json()
    assert [t["slug"] for t in rest["items"]] == ["bolt"]
    assert rest["next_cursor"] is None

    assert (await admin.post("/v1/tenants/acme/suspend")).json()["status"] == "suspended"
    assert (await admin.post("/v1/tenants/acme/resume")).json()["status"] == "active"


@pytest.mark.parametrize(
    ("payload", "pointer"),
    [
        ({"slug": "Acme", "name": "x"}, "#/slug"),
        ({"slug": "platform", "name": "x"}, "#/slug"),
        ({"slug": "ab", "name": "x"}, "#/slug"),
        ({"slug": "acme", "name": "   "}, "#/name"),
        ({"slug": "acme", "name": "x", "plan": "gold"}, "#"),
        ({"slug": "acme"}, "#"),
    ],
)
async def test_bad_input_is_a_422_and_makes_nothing(
    admin: Client, db: Database, payload: dict, pointer: str
) -> None:
    before = await counts(db.engine)
    body = problem(await admin.post("/v1/tenants", json=payload), 422, "validation-error")
    assert body["errors"][0]["pointer"] == pointer
    assert await counts(db.engine) == before


async def test_duplicate_unknown_and_bad_cursor(admin: Client, db: Database) -> None:
    await admin.post("/v1/tenants", json={"slug": "acme", "name": "Acme"})
    before = await counts(db.engine)
    problem(
        await admin.post("/v1/tenants", json={"slug": "acme", "name": "Again"}), 409, "conflict"
    )
    assert await counts(db.engine) == before
    problem(await admin.get("/v1/tenants/nobody"), 404, "not-found")
    problem(await admin.post("/v1/tenants/nobody/suspend"), 404, "not-found")
    problem(await admin.get("/v1/tenants", params={"cursor": "!!"}), 400, "malformed-request")


async def test_export_archive_has_every_table_with_checksums(admin: Client, db: Database) -> None:
    tenant = (await admin.post("/v1/tenants", json={"slug": "acme", "name": "Acme"})).json()
    schema = tenant["schema_name"]
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f'CREATE TABLE "{schema}".ledger (id int, memo text)')
        await conn.exec_driver_sql(
            f"""INSERT INTO "{schema}".ledger VALUES (1, 'plain'), (2, 'comma, "quote"')"""
        )
    response = await admin.post("/v1/tenants/acme/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/gzip")
    digest = hashlib.sha256(response.content).hexdigest()
    assert response.headers["x-export-sha256"] == digest
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        files = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert manifest["tenant"]["slug"] == "acme"
    assert manifest["schema"] == {"name": schema, "revision": tenant_head()}
    tables = {t["table"]: t for t in manifest["tables"]}
    assert {"alembic_version", "ledger", "webhook_endpoints", "audit_events"} <= set(tables)
    assert tables["ledger"]["rows"] == 2
    for entry in manifest["tables"]:
        assert hashlib.sha256(files[entry["file"]]).hexdigest() == entry["sha256"]
    assert files["data/ledger.csv"].decode().splitlines()[0] == "id,memo"
    assert b"SHA256SUMS" not in files["SHA256SUMS"]
    shown = (await admin.get("/v1/tenants/acme")).json()
    assert shown["last_export_at"] is not None


async def test_delete_needs_a_fresh_export_then_removes_everything(
    admin: Client, db: Database
) -> None:
    tenant = (await admin.post("/v1/tenants", json={"slug": "acme", "name": "Acme"})).json()
    before = await counts(db.engine)
    body = problem(await admin.delete("/v1/tenants/acme"), 409, "export-required")
    assert "export" in body["detail"]
    assert await counts(db.engine) == before
    assert (await admin.post("/v1/tenants/acme/export")).status_code == 200
    assert (await admin.delete("/v1/tenants/acme")).status_code == 204
    schemas, roles, tenants = await counts(db.engine)
    assert (schemas, roles, tenants) == (before[0] - 1, before[1] - 1, before[2] - 1)
    async with db.engine.connect() as conn:
        assert not await conn.scalar(
            text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"),
            {"s": tenant["schema_name"]},
        )
    problem(await admin.delete("/v1/tenants/acme"), 404, "not-found")  # nothing left to delete


async def test_force_delete_and_a_resumed_half_deleted_tenant(admin: Client, db: Database) -> None:
    await admin.post("/v1/tenants", json={"slug": "acme", "name": "Acme"})
    async with db.engine.begin() as conn:  # as if a previous deletion died half-way
        await conn.execute(text("UPDATE platform.tenants SET status = 'deleting'"))
    problem(await admin.get("/v1/tenants/acme/_probe/notes/1"), 404, "not-found")
    problem(await admin.post("/v1/tenants/acme/suspend"), 409, "conflict")
    assert (await admin.delete("/v1/tenants/acme")).status_code == 204  # resumes, no export
    await admin.post("/v1/tenants", json={"slug": "bolt", "name": "Bolt"})
    assert (await admin.delete("/v1/tenants/bolt", params={"force": "true"})).status_code == 204
    assert (await counts(db.engine))[2] == 0


async def test_options_and_405_list_every_method_of_a_path(admin: Client) -> None:
    # Litestar builds OPTIONS when a path's first method registers; ours lists them all.
    options = await admin.options("/v1/tenants/acme")
    assert options.status_code == 204
    assert set(options.headers["allow"].replace(" ", "").split(",")) == {
        "DELETE",
        "GET",
        "HEAD",
        "OPTIONS",
    }
    refused = await admin.put("/v1/tenants/acme", json={})
    body = problem(refused, 405, "method-not-allowed")
    assert {"GET", "DELETE", "HEAD"} <= set(refused.headers["allow"].replace(" ", "").split(","))
    assert body["status"] == 405


async def test_a_signup_has_a_worker_refill_the_pool(settings: Settings, db: Database) -> None:
    enabled = dataclasses.replace(settings, tenant_pool_size=2)
    as_admin = bearer(await staff_admin_token(db, settings))
    worker = await asyncio.to_thread(start_worker, enabled)

    async def refilled() -> None:
        deadline = asyncio.get_running_loop().time() + 20
        while await pool_size(db.engine) < 2:
            assert asyncio.get_running_loop().time() < deadline, "the pool was not refilled"
            await asyncio.sleep(0.1)

    try:
        async with AsyncTestClient(app=build_app(enabled)) as client:
            await refilled()  # the worker fills the pool when it starts
            created = await client.post(
                "/v1/tenants", json={"slug": "acme", "name": "Acme"}, headers=as_admin
            )
            assert created.json()["provisioned_from"] == "warm-pool"
            await refilled()  # and again after the signup took a schema
    finally:
        await asyncio.to_thread(stop_worker, worker, 10_000)
    assert await pool_size(db.engine) == 2  # filled to the target, not past it


async def test_concurrent_fillers_do_not_overfill(db: Database) -> None:
    added = await asyncio.gather(*(fill_pool(db.engine, 3) for _ in range(4)))
    assert await pool_size(db.engine) == 3
    assert sum(added) == 3
