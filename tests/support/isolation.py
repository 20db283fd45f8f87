"""The check every tenant route gets: another tenant's id (or token) is a 404 that changes
nothing, so tenants cannot be enumerated and nothing leaks across them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient


async def assert_cross_tenant_404(
    client: AsyncTestClient[Litestar],
    method: str,
    path: str,
    *,
    unchanged: Callable[[], Awaitable[Any]] | None = None,
    **request: Any,
) -> None:
    """`method path` (a resource of tenant B addressed through tenant A, or an unknown
    tenant) must answer a 404 problem and leave `unchanged()` as it was."""
    before = await unchanged() if unchanged else None
    response = await client.request(method, path, **request)
    assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/not-found")
    if unchanged:
        assert await unchanged() == before, f"{method} {path} changed state"
