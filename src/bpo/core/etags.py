"""ETags of mutable resources (their version) and the If-Match check of RFC 9110."""

from __future__ import annotations

from typing import Any

from litestar import Request

from bpo.core.errors import Problem


def etag(version: int) -> str:
    return f'"v{version}"'


def check_if_match(request: Request[Any, Any, Any], version: int, what: str) -> None:
    """Change only the version the client read (lost-update guard); no header: no check."""
    wanted = request.headers.get("if-match")
    if wanted is None:
        return
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
    if "*" not in tags and etag(version) not in tags:
        raise Problem(
            412,
            "precondition-failed",
            f"If-Match {wanted} does not match the {what}'s current ETag {etag(version)}: "
            "read it again, then retry",
        )
