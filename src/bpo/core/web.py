"""Server-rendered pages: the Jinja2 engine, the shared static files and the headers every
page carries. The sign-in pages and the console use them; neither has inline script or
style, so the Content-Security-Policy allows only this origin's files.

Static files are served under `/static/`, each URL carrying the file's content hash
(`?v=`), so a browser may keep them a year: a changed file is a new URL. htmx is the npm
package `htmx.org` 2.0.11, its `dist/htmx.min.js` copied unchanged beside its LICENSE
(0BSD); its sha256 is checked by tests/test_console.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar.config.compression import CompressionConfig
from litestar.datastructures import CacheControlHeader
from litestar.middleware import DefineMiddleware
from litestar.middleware.compression import CompressionMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"
HTMX = "vendor/htmx-2.0.11/htmx.min.js"
HTML = "text/html; charset=utf-8"
# No inline script or style anywhere; forms post to this origin only (the sign-in page
# adds the client's origin: Chrome applies form-action to the redirect after a post).
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'"
)


def page_headers(form_action_extra: str = "") -> dict[str, str]:
    """What every server-rendered page carries: no caching of its (personal) content, the
    CSP, no framing, no referrer leaking ids in URLs, no content sniffing."""
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": PAGE_CSP.format(extra=form_action_extra),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


@cache
def asset_url(name: str) -> str:
    """The URL of a static file, versioned by its content (a new file is a new URL)."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


def environment(directories: Sequence[Path]) -> Environment:
    env = Environment(
        loader=FileSystemLoader([TEMPLATES, *directories]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a misspelt name fails the render, not shows blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["asset"] = asset_url
    env.globals["htmx"] = HTMX
    return env


def template_config(directories: Sequence[Path], **filters: Any) -> TemplateConfig[Any]:
    env = environment(directories)
    env.filters.update(filters)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


def compressed() -> DefineMiddleware:
    """gzip for pages and static files when the browser asks (a router's middleware: the
    API's JSON answers are left to clients and proxies)."""
    config = CompressionConfig(backend="gzip", gzip_compress_level=6)
    return DefineMiddleware(CompressionMiddleware, config=config)


def static_router() -> ControllerRouterHandler:
    return create_static_files_router(
        middleware=[compressed()],
        path="/static",
        directories=[STATIC],
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=365 * 86400, public=True),
        opt={"public": True},
        name="static",
    )
