"""The OpenAPI document makes a good generated client: every operation has a readable,
unique operationId; every error response is the one shared `Problem` component (OAuth's
keep RFC 6749's `OAuthError`, also shared); the tenant export is a binary download. Then a
real generator, openapi-python-client, turns the document into a package, and that package
talks to a real `bpo serve`: a token through the generated token call, typed pages back, and
an error parsed as `Problem`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from litestar.testing import AsyncTestClient

from bpo.app import create_app
from bpo.core.db import Database
from bpo.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.support.auth import staff_admin_token
from tests.support.clients import make_client
from tests.support.processes import spawn_serve
from tests.support.tenants import make_tenant

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
OPERATION_ID = re.compile(r"^[a-z][A-Za-z0-9]+$")
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
OAUTH_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# No formatter hook (the generated code is only imported). The generator knows JSON, text
# and octet-stream bodies only: `format: binary` under application/gzip is read as bytes.
CONFIG = {
    "post_hooks": [],
    "content_type_overrides": {"application/gzip": "application/octet-stream"},
}
CONFIG_ARGS = ("--config", "config.json")


async def served_document(settings: Settings) -> dict[str, Any]:
    """The document as `/schema/openapi.json` serves it, of the app without test routes."""
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


async def test_every_operation_has_a_readable_unique_id(settings: Settings, db: object) -> None:
    ids = [op.get("operationId", "") for _, _, op in operations(await served_document(settings))]
    assert len(ids) > 80
    unreadable = [i for i in ids if not OPERATION_ID.fullmatch(i)]
    assert unreadable == [], "give each route operation_id='verbNoun' in its decorator"
    assert len(set(ids)) == len(ids)
    for expected in ("listWorkRequests", "createApiClient", "getTenant", "exportTenant"):
        assert expected in ids


async def test_every_error_response_is_the_shared_problem(settings: Settings, db: object) -> None:
    document = await served_document(settings)
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert responses["default"]["content"] == PROBLEM, (method, path)
        for code, response in responses.items():
            if code[0] not in "45":
                continue
            oauth = "oauth" in operation["tags"] and code in ("400", "401", "429")
            expected = OAUTH_ERROR if oauth else PROBLEM
            assert response["content"] == expected, (method, path, code)
    components = document["components"]["schemas"]
    assert components["Problem"]["required"] == ["type", "title", "status"]
    assert components["OAuthError"]["required"] == ["error"]
    assert not [name for name in components if "Problem" in name and name != "Problem"]


async def test_the_export_is_a_binary_download(settings: Settings, db: object) -> None:
    document = await served_document(settings)
    ok = document["paths"]["/v1/tenants/{slug}/export"]["post"]["responses"]["200"]
    assert ok["content"]["application/gzip"]["schema"] == {
        "type": "string",
        "format": "binary",
        "contentMediaType": "application/gzip",
    }


async def test_a_generated_client_reads_well_and_works(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    package = generate(await served_document(settings), tmp_path)
    api = package / "api"
    assert (api / "work" / "list_work_requests.py").exists()
    assert (api / "api_clients" / "create_api_client.py").exists()
    models = sorted(p.stem for p in (package / "models").glob("*.py"))
    assert "problem" in models
    assert "o_auth_error" in models
    assert [m for m in models if re.search(r"_response_(4\d\d|5\d\d|default)$", m)] == []
    assert [m for m in models if m.startswith("v1_")] == []

    tenant = await make_tenant(db, "generated-firm")
    secret = await make_client(db, tenant, "generated-app", ["work:read"])
    with serving(settings) as base, imported(tmp_path, package.name) as client_module:
        admin = await staff_admin_token(db, dataclasses.replace(settings, public_base_url=base))
        call = GeneratedCalls(client_module, base)
        call.token_then_work_requests(tenant.slug, secret)
        call.tenants_and_a_problem(admin, tenant.slug)
        call.export(admin, tenant.slug)


class GeneratedCalls:
    """Calls through the generated package, each answer checked for its generated type."""

    def __init__(self, package: ModuleType, base: str) -> None:
        self.name = package.__name__
        self.base = base

    def module(self, dotted: str) -> Any:
        return importlib.import_module(f"{self.name}.{dotted}")

    def authenticated(self, token: str) -> Any:
        return self.module("client").AuthenticatedClient(base_url=self.base, token=token)

    def token_then_work_requests(self, slug: str, secret: str) -> None:
        models = self.module("models")
        anonymous = self.module("client").Client(base_url=self.base)
        issue = self.module("api.oauth.issue_token")
        form = models.TokenRequest(
            grant_type=models.TokenRequestGrantType.CLIENT_CREDENTIALS,
            client_id="generated-app",
            client_secret=secret,
            scope="work:read",
        )
        token = issue.sync(client=anonymous, body=form)
        assert isinstance(token, models.TokenResponse), token
        form.client_secret = "wrong"
        refused = issue.sync(client=anonymous, body=form)
        assert isinstance(refused, models.OAuthError)
        assert refused.error == "invalid_client"
        listed = self.module("api.work.list_work_requests").sync(
            slug=slug, client=self.authenticated(token.access_token)
        )
        assert isinstance(listed, models.RequestPage), listed
        assert listed.items == []

    def tenants_and_a_problem(self, token: str, slug: str) -> None:
        models = self.module("models")
        client = self.authenticated(token)
        page = self.module("api.tenants.list_tenants").sync(client=client)
        assert isinstance(page, models.TenantPage), page
        assert slug in [t.slug for t in page.items]
        missing = self.module("api.tenants.get_tenant").sync(slug="no-such-firm", client=client)
        assert isinstance(missing, models.Problem), missing
        assert (missing.status, missing.type_) == (404, "https://bpo.dev/problems/not-found")
        invalid = self.module("api.tenants.list_tenants").sync(client=client, limit=0)
        assert isinstance(invalid, models.Problem), invalid
        assert invalid.status == 422
        assert invalid.errors[0].parameter == "limit"

    def export(self, token: str, slug: str) -> None:
        archive = self.module("api.tenants.export_tenant").sync(
            slug=slug, client=self.authenticated(token)
        )
        assert isinstance(archive, self.module("types").File), archive
        assert archive.payload.read(2) == b"\x1f\x8b"  # gzip


def generate(document: dict[str, Any], folder: Path) -> Path:
    """Run openapi-python-client on `document`; the generated package's folder."""
    (folder / "openapi.json").write_text(json.dumps(document))
    (folder / "config.json").write_text(json.dumps(CONFIG))
    done = subprocess.run(
        [GENERATOR, "generate", "--path", "openapi.json", "--meta", "none", *CONFIG_ARGS],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output and "WARNING" not in output, output
    (package,) = [p for p in folder.iterdir() if (p / "client.py").exists()]
    return package


@contextmanager
def imported(folder: Path, name: str) -> Iterator[ModuleType]:
    """Import the generated package from `folder`; forget it afterwards."""
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))
        for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[loaded]


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """A real `bpo serve` (as in test_oauth_tokens.py), with its own rate-limit namespace."""
    process, base = spawn_serve(
        settings.database_url,
        settings.broker_url,
        BPO_SECRET_KEY=TEST_SECRET_KEY,
        BPO_BROKER_NAMESPACE=f"bpo-test-{uuid.uuid4().hex[:8]}",
        BPO_LOG_LEVEL="WARNING",  # nobody reads the log pipe until the end
    )
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
