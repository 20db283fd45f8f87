"""Record keeping in tests: a firm with record classes, and a real S3 server on loopback
(moto's server mode, in its own process) for the S3 store."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from litestar import Litestar
from litestar.testing import AsyncTestClient

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext
from bpo.settings import Settings
from tests.support.auth import admin_of
from tests.support.processes import free_port, wait_http
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]
S3_KEY, S3_SECRET = "testing", "testing-secret"


def records_settings(settings: Settings, data_dir: Path, **changes: Any) -> Settings:
    return dataclasses.replace(settings, data_dir=data_dir, **changes)


async def firm(
    api: Client, db: Database, settings: Settings, slug: str
) -> tuple[TenantContext, dict[str, str]]:
    """A firm with two classes: `invoices` (compliance, 7 years after the document date)
    and `drafts` (governance, 1 year after receipt)."""
    tenant = await make_tenant(db, slug)
    admin = await admin_of(db, settings, tenant)
    for body in (
        {"code": "invoices", "name": "Invoices", "mode": "compliance", "retention_years": 7},
        {"code": "drafts", "name": "Drafts", "mode": "governance", "retention_years": 1,
         "retention_after": "received"},
    ):  # fmt: skip
        made = await api.post(f"/v1/tenants/{slug}/records/classes", json=body, headers=admin)
        assert made.status_code == 201, made.text
    return tenant, admin


async def filed(
    api: Client, slug: str, headers: dict[str, str], content: bytes | None = None, **meta: Any
) -> dict[str, Any]:
    """A document filed (and given `content` as its first version, if any)."""
    body = {"record_class": "invoices", "title": "Invoice 1", "document_date": "2026-11-03"}
    body |= meta
    made = await api.post(f"/v1/tenants/{slug}/records/documents", json=body, headers=headers)
    assert made.status_code == 201, made.text
    doc: dict[str, Any] = made.json()
    if content is not None:
        put = await api.put(
            f"/v1/tenants/{slug}/records/documents/{doc['id']}/content",
            content=content,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert put.status_code == 201, put.text
        doc = put.json()
    return doc


@dataclasses.dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
        )  # fmt: skip

    def bucket(self, *, locked: bool) -> str:
        name = f"records-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked)
        return name

    def settings(self, settings: Settings, data_dir: Path, bucket: str) -> Settings:
        return records_settings(
            settings, data_dir, records_url=f"s3://{bucket}/firm-records",
            records_s3_endpoint=self.endpoint, records_s3_access_key=S3_KEY,
            records_s3_secret_key=S3_SECRET,
        )  # fmt: skip


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, in its own process."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/", 30)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(10)
