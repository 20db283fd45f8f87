"""The server-rendered sign-in pages: login form, tenant picker, errors. Plain HTML, no
scripts, every value escaped; the caller adds no-store and a strict CSP."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;margin:0;color:#1c2330}
main{max-width:24rem;margin:8vh auto;background:#fff;padding:2rem;border-radius:8px;
box-shadow:0 1px 3px #0002}
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem}
input,select{width:100%;padding:.5rem;box-sizing:border-box;font:inherit}
button{margin-top:1.2rem;width:100%;padding:.6rem;font:inherit;background:#1f4fd1;color:#fff;
border:0;border-radius:4px}p.error{color:#a3161a;background:#fdecec;padding:.5rem}
small{color:#5a6270}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · bpo</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _hidden(fields: Iterable[tuple[str, str]]) -> str:
    return "".join(
        f'<input type=hidden name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields
    )


def login_page(
    *, app_name: str, hidden: list[tuple[str, str]], email: str = "", error: str | None = None
) -> str:
    problem = f"<p class=error role=alert id=error>{escape(error)}</p>" if error else ""
    return _page(
        "Sign in",
        f"<h1>Sign in to {escape(app_name)}</h1>{problem}"
        '<form method=post action="/oauth/authorize" id=login>'
        f"{_hidden(hidden)}"
        "<label for=email>Email</label>"
        "<input id=email name=email type=email autocomplete=username required"
        f' value="{escape(email)}">'
        "<label for=password>Password</label>"
        "<input id=password name=password type=password autocomplete=current-password required>"
        "<label for=totp>Authenticator code <small>(if you enrolled one)</small></label>"
        '<input id=totp name=totp inputmode=numeric autocomplete=one-time-code pattern="[0-9]{6}">'
        "<button type=submit>Sign in</button></form>",
    )


def tenant_picker(*, hidden: list[tuple[str, str]], tenants: list[tuple[str, str]]) -> str:
    options = "".join(
        f'<option value="{escape(slug)}">{escape(name)} ({escape(slug)})</option>'
        for slug, name in tenants
    )
    return _page(
        "Choose a firm",
        "<h1>Which firm do you want to work in?</h1>"
        '<form method=post action="/oauth/authorize" id=pick>'
        f"{_hidden(hidden)}"
        f"<label for=tenant>Firm</label><select id=tenant name=tenant>{options}</select>"
        "<button type=submit>Continue</button></form>",
    )


def error_page(title: str, detail: str) -> str:
    return _page(title, f"<h1>{escape(title)}</h1><p class=error id=error>{escape(detail)}</p>")
