"""The server-rendered sign-in pages: login form, tenant picker, errors. Jinja2 templates
(identity/templates/signin/) on the shared layout and stylesheet (core/web.py): no script,
no inline style, every value escaped; the caller adds no-store and the CSP."""

from __future__ import annotations

from pathlib import Path

from bpo.core.web import environment

_PAGES = environment([Path(__file__).parent / "templates"])


def login_page(
    *, app_name: str, hidden: list[tuple[str, str]], email: str = "", error: str | None = None
) -> str:
    template = _PAGES.get_template("signin/login.html")
    return template.render(app_name=app_name, hidden=hidden, email=email, error=error)


def tenant_picker(*, hidden: list[tuple[str, str]], tenants: list[tuple[str, str]]) -> str:
    return _PAGES.get_template("signin/pick.html").render(hidden=hidden, tenants=tenants)


def error_page(title: str, detail: str) -> str:
    return _PAGES.get_template("signin/error.html").render(title=title, detail=detail)
