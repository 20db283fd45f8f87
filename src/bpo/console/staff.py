"""The staff pages: the inbox across their firms (refreshed in place), claim-next, and the
task page with every action on a task: claim, release, comment, ask the client, log time,
complete (to review), approve as the second person, send back."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath

from bpo.console.api import Api, Reply
from bpo.console.views import checked, form_of, redirect, render

INBOX_PAGE = 50
LEASE_MINUTES = 60
SLA_FILTERS = {"breached": "Breached", "due_soon": "Due within 4 h", "on_track": "On track"}


def _staff_only(api: Api) -> None:
    if api.session.kind != "staff":
        raise HTTPException(status_code=404, detail="no such page")


def _inbox_query(api: Api) -> dict[str, str]:
    params = api.request.query_params
    return {k: params.get(k, "") for k in ("firm", "service", "sla", "cursor")}


async def _inbox_rows(api: Api, query: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    reply = await api.get(
        "/v1/staff/inbox",
        tenant=query["firm"] or None,
        service=query["service"] or None,
        sla=query["sla"] or None,
        cursor=query["cursor"] or None,
        limit=INBOX_PAGE,
    )
    if reply.status in (400, 422):
        return {"items": [], "next_cursor": None}, reply.field_errors() or {"form": reply.detail}
    return checked(reply), {}


@get("/inbox", include_in_schema=False)
async def inbox(api: NamedDependency[Api]) -> Response[Any]:
    _staff_only(api)
    query = _inbox_query(api)
    page, errors = await _inbox_rows(api, query)
    firms = checked(await api.get("/v1/staff/tenants"))
    return render(api, "inbox.html", section="inbox", page=page, query=query, errors=errors,
                  firms=firms[:200], sla_filters=SLA_FILTERS)  # fmt: skip


@get("/inbox/rows", include_in_schema=False)
async def inbox_rows(api: NamedDependency[Api]) -> Response[Any]:
    """The inbox's table alone, for htmx's periodic refresh (no full reload)."""
    _staff_only(api)
    query = _inbox_query(api)
    page, errors = await _inbox_rows(api, query)
    return render(api, "inbox_rows.html", page=page, query=query, errors=errors)


@post("/inbox/claim", include_in_schema=False, status_code=303)
async def claim_next(api: NamedDependency[Api]) -> Response[Any]:
    _staff_only(api)
    reply = await api.post("/v1/staff/inbox/claim", {"lease_minutes": LEASE_MINUTES})
    if reply.status == 204:
        return redirect(api, "/console/inbox", "nothing")
    task = checked(reply)
    return redirect(api, f"/console/firms/{task['tenant']}/tasks/{task['id']}", "claimed")


@get("/firms", include_in_schema=False)
async def firms(api: NamedDependency[Api]) -> Response[Any]:
    _staff_only(api)
    rows = checked(await api.get("/v1/staff/tenants"))
    return render(api, "firms.html", section="firms", firms=rows)


def _task_path(slug: str, task_id: uuid.UUID) -> str:
    return f"/v1/tenants/{slug}/work/tasks/{task_id}"


async def _task_page(
    api: Api,
    slug: str,
    task_id: uuid.UUID,
    failed: Reply | None = None,
    action: str = "",
    values: dict[str, str] | None = None,
) -> Response[Any]:
    task = checked(await api.get(_task_path(slug, task_id)))
    request = checked(await api.get(f"/v1/tenants/{slug}/work/requests/{task['request_id']}"))
    service = await api.get(f"/v1/services/{task['service']}")
    form = service.body.get("form", {}) if service.ok and isinstance(service.body, dict) else {}
    errors: dict[str, str] = {}
    if failed is not None:
        errors = {f"{action}.{k}": v for k, v in failed.field_errors().items()}
        errors[action] = failed.detail
    return render(
        api, "task.html", status=failed.status if failed else 200, section="inbox", slug=slug,
        task=task, work=request, form=form, errors=errors, action=action, values=values or {},
        me_id=_me(api),
    )  # fmt: skip


def _me(api: Api) -> str:
    """The signed-in person's user id (the access token's subject)."""
    payload = api.session.access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims.get("sub", ""))


@get("/firms/{slug:str}/tasks/{task_id:uuid}", include_in_schema=False)
async def task_page(
    api: NamedDependency[Api], slug: FromPath[str], task_id: FromPath[uuid.UUID]
) -> Response[Any]:
    return await _task_page(api, slug, task_id)


def _body(action: str, form: dict[str, str]) -> Any:
    """The API body of a task action, from the page's form fields."""
    if action == "claim":
        return {"lease_minutes": LEASE_MINUTES}
    if action in ("comments", "questions"):
        body: dict[str, Any] = {"body": form.get("body", "")}
        if action == "comments":
            body["client_visible"] = form.get("client_visible") == "on"
        return body
    if action == "time":
        return {"minutes": _number(form.get("minutes", "")), "note": form.get("note", "")}
    if action == "complete":
        return {"result": {"summary": form.get("result", "")}}
    if action == "approve":
        return {"note": form.get("note", "")}
    if action == "send-back":
        return {"reason": form.get("reason", "")}
    return {}


def _number(text: str) -> Any:
    """A number as typed; left as text when it is not one, so the API names the field."""
    try:
        return float(text.strip())
    except ValueError:
        return text


ACTIONS = {"claim": "claimed", "release": "released", "comments": "commented",
           "questions": "asked", "time": "time", "complete": None, "approve": "approved",
           "send-back": "sent-back"}  # fmt: skip


@post("/firms/{slug:str}/tasks/{task_id:uuid}/{action:str}", include_in_schema=False,
      status_code=303)  # fmt: skip
async def task_action(
    api: NamedDependency[Api],
    slug: FromPath[str],
    task_id: FromPath[uuid.UUID],
    action: FromPath[str],
) -> Response[Any]:
    if action not in ACTIONS:
        raise HTTPException(status_code=404, detail=f"no task action {action!r}")
    form = await form_of(api)
    reply = await api.post(f"{_task_path(slug, task_id)}/{action}", _body(action, form))
    if not reply.ok:
        if reply.status == 404:
            checked(reply)
        return await _task_page(api, slug, task_id, reply, action, form)
    notice = ACTIONS[action]
    if action == "complete":  # to review, or done when the service needs no second person
        notice = "completed" if reply.body.get("status") == "awaiting_review" else "done"
    return redirect(api, f"/console/firms/{slug}/tasks/{task_id}", notice)


route_handlers = [inbox, inbox_rows, claim_next, firms, task_page, task_action]
