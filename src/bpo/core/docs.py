"""The interactive API docs, served entirely by bpo: it must work with no internet.

Swagger UI's files come from the pinned `swagger-ui-bundle-v2` package (byte-identical to
Swagger UI's own `swagger-ui-dist` release of the same version) and are served under
`/schema/assets/swagger-ui-<version>/`, so a long cache is safe: a new pin is a new URL. The
page and its start-up script are ours; no script is inline, so the CSP allows only this
origin's scripts.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from litestar import Request, get
from litestar.datastructures import CacheControlHeader, ResponseHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath
from litestar.response import File
from litestar.router import Router
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

VENDOR = Path(str(swagger_ui_path))  # the package ships no type hints
# The pinned release's folder, e.g. "swagger-ui-5.31.0": its version is part of each URL.
VENDOR_DIR = VENDOR.name
JS = "text/javascript"  # Litestar adds the charset to text/* types
# The vendor files the pages use; nothing else in the package folder is served.
_VENDOR_FILES = {
    "swagger-ui-bundle.js": JS,
    "swagger-ui.css": "text/css",
    "index.css": "text/css",
    "favicon-32x32.png": "image/png",
    "oauth2-redirect.js": JS,
}
# Swagger UI's SVG icons are data: URIs; React sets styles through the CSSOM, which CSP
# does not govern, so no 'unsafe-inline' is needed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CSP),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="no-referrer"),
]

# Reads the spec and redirect URLs from the page's data attributes (no inline script).
# queryConfigEnabled stays off: a `?url=` must not point the page at another document.
_START_JS = b"""\
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
    oauth2RedirectUrl: new URL(root.dataset.oauth2Redirect, window.location.href).href
  });
})();
"""


def docs_router(path: str) -> Router:
    """The router Litestar mounts the docs on (`OpenAPIConfig.openapi_router`): the
    security headers apply to every docs route, the OpenAPI document included."""
    return Router(
        path, route_handlers=[], include_in_schema=False, response_headers=SECURITY_HEADERS
    )


class SwaggerPage(OpenAPIRenderPlugin):
    """Swagger UI at the docs root and at `/swagger`, from this origin's files only."""

    def __init__(self, base: str, title: str) -> None:
        super().__init__(path=["/", "/swagger"])
        self._page = _page(base, title)
        self._redirect = _redirect_page(base)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self._page

    def receive_router(self, router: Router) -> None:
        redirect = self._redirect

        @get("/oauth2-redirect.html", media_type="text/html", sync_to_thread=False)
        def oauth2_redirect() -> bytes:
            return redirect

        router.register(oauth2_redirect)
        router.register(start_script)
        router.register(vendor_file)


@get(
    "/assets/docs.js",
    media_type=JS,
    sync_to_thread=False,
    cache_control=CacheControlHeader(no_cache=True),
)
def start_script() -> bytes:
    return _START_JS


@get(
    f"/assets/{VENDOR_DIR}/{{name:str}}",
    sync_to_thread=False,
    cache_control=CacheControlHeader(public=True, max_age=365 * 24 * 3600, immutable=True),
)
def vendor_file(name: FromPath[str]) -> File:
    media_type = _VENDOR_FILES.get(name)
    if media_type is None:
        raise NotFoundException(f"No docs asset {name!r}.")
    return File(VENDOR / name, media_type=media_type, content_disposition_type="inline")


def _page(base: str, title: str) -> bytes:
    vendor = f"{base}/assets/{VENDOR_DIR}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{vendor}/swagger-ui.css">
<link rel="stylesheet" href="{vendor}/index.css">
<link rel="icon" type="image/png" href="{vendor}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-spec-url="{base}/openapi.json"
 data-oauth2-redirect="{base}/oauth2-redirect.html"></div>
<script src="{vendor}/swagger-ui-bundle.js"></script>
<script src="{base}/assets/docs.js"></script>
</body>
</html>
""".encode()


def _redirect_page(base: str) -> bytes:
    """Swagger UI's OAuth 2 redirect page at a URL that does not change with the pin."""
    script = f"{base}/assets/{VENDOR_DIR}/oauth2-redirect.js"
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Signing in</title></head>
<body><script src="{script}"></script></body>
</html>
""".encode()
