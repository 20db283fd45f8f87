"""Who may use the settlement APIs, and the parameters every list shares."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

from bpo.identity.guards import TENANT_ADMINS, requires

READ = requires("settlements:read")
WRITE = requires("settlements:write")
ADMIN = requires("settlements:write", roles=TENANT_ADMINS)
BASE = "/v1/tenants/{slug:str}/settlements"
Page = Annotated[int, Parameter(ge=1, le=500)]
Cursor = Annotated[str | None, Parameter(max_length=100)]
