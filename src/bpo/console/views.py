"""What every console page shares: the signed-in person's calls (`Api`), rendering with the
page headers and the resealed cookie, redirects, refusals and the template filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from iso4217 import Currency
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Template

from bpo.console.api import Api, Reply, SignInNeeded, back_to
from bpo.console.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    PATH,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    Sealer,
    Session,
    csrf_matches,
)
from bpo.core.web import HTML, page_headers

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Messages a redirect may ask the next page to show (by key: no text travels in URLs).
NOTICES = {
    "claimed": "You claimed the task.",
    "nothing": "There is nothing for you to claim right now.",
    "released": "The task is back in the queue.",
    "commented": "Your comment is saved.",
    "asked": "The question is sent to the client; the SLA clock is paused.",
    "time": "Your time is logged.",
    "completed": "Sent for review.",
    "done": "The task is complete; the client has the result.",
    "approved": "Approved: the client has the result.",
    "sent-back": "The task is back in the queue with your reason.",
    "invited": "The invite is sent.",
    "created": "Created.",
    "replayed": "The delivery is queued again.",
    "pinged": "A test event is on its way; its delivery is listed below.",
    "saved": "Saved.",
    "plan-changed": "The plan is changed; it is priced from the next whole hour.",
    "uploaded": "The statement is uploaded; it is being read.",
}


class Refused(HTTPException):
    """An API refusal shown as a console page (404 stays 404: no firm is revealed)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(status_code=reply.status if reply.status >= 400 else 502)
        self.detail = reply.detail


def sealer_of(request: Request[Any, Any, Any]) -> Sealer:
    sealer: Sealer | None = request.app.state.get("console_sealer")
    if sealer is None:
        raise HTTPException(status_code=503, detail="the console needs BPO_SECRET_KEY")
    return sealer


async def provide_api(request: Request[Any, Any, Any]) -> Api:
    """The person's API, from the session cookie; unsafe methods must echo the CSRF token."""
    session = sealer_of(request).open_session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInNeeded(back_to(request))
    if request.method in UNSAFE:
        presented = request.headers.get(CSRF_HEADER)
        if presented is None:
            presented = (await request.form()).get(CSRF_FIELD)
        if not csrf_matches(session, presented if isinstance(presented, str) else None):
            raise HTTPException(
                status_code=403, detail="the form is stale or not from this console: reload it"
            )
    return Api(request, session)


def session_cookie(sealer: Sealer, session: Session, secure: bool) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=sealer.seal(session),
        path=PATH,
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        secure=secure,
        samesite="strict",
    )


def cleared(key: str, secure: bool) -> Cookie:
    return Cookie(key=key, value="", path=PATH, max_age=0, httponly=True, secure=secure,
                  samesite="strict")  # fmt: skip


def is_secure(request: Request[Any, Any, Any]) -> bool:
    settings = request.app.state.settings
    return bool(settings.issuer.startswith("https://"))


def _with_session(api: Api, response: Response[Any]) -> Response[Any]:
    """Reseal a refreshed token into the cookie, or drop a session the API no longer takes."""
    secure = is_secure(api.request)
    if api.signed_out:
        response.set_cookie(cleared(SESSION_COOKIE, secure))
    elif api.changed:
        response.set_cookie(session_cookie(sealer_of(api.request), api.session, secure))
    return response


def render(api: Api, name: str, status: int = 200, **context: Any) -> Response[Any]:
    if api.signed_out:
        raise SignInNeeded(PATH)
    context.setdefault("notice", NOTICES.get(api.request.query_params.get("notice", "")))
    context.setdefault("errors", {})
    context.setdefault("values", {})
    context.setdefault("section", "")
    response = Template(
        template_name=f"console/{name}",
        context={"me": api.session, "csrf": api.session.csrf, "csrf_field": CSRF_FIELD,
                 "path": api.request.url.path, **context},
        status_code=status,
        headers=page_headers(),
        media_type=HTML,
    )  # fmt: skip
    return _with_session(api, response)


def standalone(name: str, status: int, **context: Any) -> Response[Any]:
    """A page outside a session: signed out, or an error before or without one."""
    return Template(
        template_name=f"console/{name}",
        context={"me": None, "section": "", "notice": None, **context},
        status_code=status,
        headers=page_headers(),
        media_type=HTML,
    )


def redirect(api: Api, path: str, notice: str | None = None) -> Response[Any]:
    """After a successful form: see-other to the page to show (post/redirect/get)."""
    target = f"{path}?{urlencode({'notice': notice})}" if notice else path
    if api.request.headers.get("hx-request"):  # htmx follows this without a full page swap
        response: Response[Any] = Response("", status_code=204, headers={"HX-Location": target})
    else:
        response = Redirect(path=target, status_code=303)
    return _with_session(api, response)


def checked(reply: Reply) -> Any:
    """The body of a successful read, or the API's refusal as this page's answer."""
    if not reply.ok:
        raise Refused(reply)
    return reply.body


async def form_of(api: Api) -> dict[str, str]:
    form = await api.request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}


# --- template filters -----------------------------------------------------------------------


def money(minor: int | None, currency: str | None) -> str:
    """Minor units as the currency writes them: 123456 EUR -> 'EUR 1,234.56'."""
    if minor is None:
        return ""
    code = (currency or "").upper()
    try:
        exponent = int(Currency(code).exponent or 0)
    except ValueError:
        exponent = 2
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(int(minor)), 10**exponent)
    text = f"{whole:,}" + (f".{part:0{exponent}d}" if exponent else "")
    return f"{code} {sign}{text}".strip()


def when(value: str | None) -> str:
    """An RFC 3339 time as a short UTC one: '2026-12-04 09:30 UTC'."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def sla_state(due_at: str | None, escalated: bool = False, soon_h: float = 4.0) -> str:
    """breached, due-soon or on-track: the badge the inbox shows."""
    if escalated:
        return "breached"
    if not due_at:
        return "on-track"
    due = datetime.fromisoformat(str(due_at).replace("Z", "+00:00"))
    left = (due - datetime.now(UTC)).total_seconds()
    if left < 0:
        return "breached"
    return "due-soon" if left < soon_h * 3600 else "on-track"


def clock(due_at: str | None) -> str:
    """The breach clock: how long is left (or how long ago it passed)."""
    if not due_at:
        return "no deadline running"
    due = datetime.fromisoformat(str(due_at).replace("Z", "+00:00"))
    seconds = int((due - datetime.now(UTC)).total_seconds())
    hours, rest = divmod(abs(seconds), 3600)
    text = f"{hours} h {rest // 60:02d} min"
    return f"{text} left" if seconds >= 0 else f"breached {text} ago"


FILTERS = {"money": money, "when": when, "sla_state": sla_state, "clock": clock}
