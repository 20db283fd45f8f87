"""The console's routes under /console: sign-in, the staff pages and the firm's pages.

Console routes are "public" to the API's route guard (they carry no bearer token): each
page opens the session cookie and makes its reads and changes as API calls with the
person's token (console/api.py), so every API guard, scope and tenant check applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.template.config import TemplateConfig

from bpo.console import admin, auth, books, staff
from bpo.console.api import SignInNeeded
from bpo.console.session import PATH, SESSION_COOKIE
from bpo.console.views import FILTERS, cleared, is_secure, provide_api, standalone
from bpo.core.web import compressed, template_config
from bpo.identity.guards import PUBLIC

TEMPLATES = Path(__file__).parent / "templates"
TITLES = {400: "The request is not valid", 401: "Sign in again", 403: "Not allowed",
          404: "Not found", 409: "Conflict", 429: "Too many requests"}  # fmt: skip


def templates() -> TemplateConfig[Any]:
    return template_config([TEMPLATES], **FILTERS)


def _sign_in(request: Request[Any, Any, Any], exc: SignInNeeded) -> Response[Any]:
    """To the sign-in page (and back after it), forgetting a session that no longer works."""
    target = f"{PATH}/login?next={quote(exc.back_to)}" if exc.back_to != PATH else f"{PATH}/login"
    if request.headers.get("hx-request"):  # a live region refreshing: send the whole page
        response = Response("", status_code=204, headers={"HX-Redirect": target})
    else:
        headers = {"Location": target, "Cache-Control": "no-store"}
        response = Response("", status_code=303, headers=headers)
    if request.cookies.get(SESSION_COOKIE):
        response.set_cookie(cleared(SESSION_COOKIE, is_secure(request)))
    return response


def _refused(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code if 400 <= exc.status_code < 600 else 500
    title = TITLES.get(status, "Something went wrong")
    detail = str(exc.detail) if status < 500 else "the server could not answer; try again"
    return standalone("error.html", status, title=title, detail=detail)


def console_router() -> Router:
    """Everything under /console, with the session dependency and HTML error pages."""
    return Router(
        PATH,
        route_handlers=[
            *auth.route_handlers,
            *staff.route_handlers,
            *admin.route_handlers,
            *books.route_handlers,
        ],
        dependencies={"api": Provide(provide_api)},
        exception_handlers={SignInNeeded: _sign_in, HTTPException: _refused},
        include_in_schema=False,
        opt={PUBLIC: True},
        middleware=[compressed()],
    )
