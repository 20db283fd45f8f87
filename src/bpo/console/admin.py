"""A firm's admin pages: overview, users and invites, API clients (a new or rotated secret
is shown once, in the answer to the POST that made it, never in a URL or a later page),
webhook endpoints and deliveries (replay), plan, usage against quota with the last 30
days, and invoices. Each is one or more API calls made as the signed-in person."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery

from bpo.console.api import Api, Reply
from bpo.console.views import checked, form_of, money, redirect, render

CHART_DAYS = 30
ROLES = [("tenant_member", "Member"), ("tenant_admin", "Admin")]
CLIENT_SCOPES = [(s, s) for s in (
    "ledger:read", "ledger:write", "settlements:read", "settlements:write", "records:read",
    "records:write", "compliance:read", "compliance:write", "work:read", "work:write",
    "billing:read")]  # fmt: skip
EVENTS = [("*", "Every event"), ("work.request.completed", "A request is completed"),
          ("work.request.question", "Staff ask a question"),
          ("ledger.entry.posted", "A journal entry is posted")]  # fmt: skip


def base(slug: str) -> str:
    return f"/v1/tenants/{slug}"


def col(label: str, key: str, kind: str = "text", **more: Any) -> dict[str, Any]:
    return {"label": label, "key": key, "kind": kind, **more}


async def list_page(api: Api, path: str, param: str = "cursor", **query: Any) -> dict[str, Any]:
    """One page of an API list, from the cursor this console page was given in `param`."""
    page: dict[str, Any] = checked(
        await api.get(path, cursor=api.request.query_params.get(param), **query)
    )
    return page


def pager(page: dict[str, Any], path: str, param: str = "cursor") -> dict[str, Any]:
    """A panel's link to the page after `page`, carrying its cursor in `param`."""
    return {"rows": page["items"], "next": page["next_cursor"], "next_path": path, "param": param}


def _failure(reply: Reply | None, form_id: str) -> tuple[dict[str, str], int]:
    """A failed form's problems: by field, and the problem's detail above the form."""
    if reply is None:
        return {}, 200
    if reply.status == 404:
        checked(reply)
    return {**reply.field_errors(), form_id: reply.detail}, reply.status


@get("/firms/{slug:str}", include_in_schema=False)
async def overview(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    """The firm's front page: its plan, and where to go. The tenant-bound read decides
    whether the person may see this firm at all (404 otherwise, as for every firm page)."""
    usage = await api.get(f"{base(slug)}/billing/usage")
    if usage.status == 404 or usage.status >= 500:
        checked(usage)
    facts = [("Firm", slug), ("You are", (api.session.role or api.session.kind).replace("_", " "))]
    if usage.ok:
        facts.append(("Plan", usage.body.get("plan") or "none yet"))
    panels = [{"title": "Firm", "facts": facts,
               "note": "Use the sections above: users, API clients, webhooks, plan and usage, "
                       "the books, statements, records and compliance."}]  # fmt: skip
    return render(api, "section.html", slug=slug, section="overview", title=f"Firm {slug}",
                  panels=panels, secret=None)  # fmt: skip


# --- users and invites ----------------------------------------------------------------------


async def _users(
    api: Api,
    slug: str,
    failed: Reply | None = None,
    values: dict[str, str] | None = None,
    form_id: str = "invite",
) -> Response[Any]:
    users = await list_page(api, f"{base(slug)}/users")
    for user in users["items"]:  # which of the row's buttons apply
        user["member"], user["admin"] = (
            user["role"] == "tenant_member",
            user["role"] == "tenant_admin",
        )
        user["active"], user["inactive"] = user["status"] == "active", user["status"] != "active"
    invites = await list_page(api, f"{base(slug)}/users/invites", "invites_cursor")
    for pending in invites["items"]:
        pending["pending"] = pending["status"] == "pending"
    errors, status = _failure(failed, form_id)
    form = {"id": "invite", "title": "Invite someone", "action": f"/console/firms/{slug}/users",
            "submit": "Send invite", "fields": [
                {"name": "email", "label": "Email", "type": "email", "required": True},
                {"name": "role", "label": "Role", "type": "select", "options": ROLES}]}  # fmt: skip
    here = f"/console/firms/{slug}/users"
    change = f"{here}/{{user_id}}/"
    actions = [
        {"name": "make-admin", "label": "Make admin", "key": "user_id", "when": "member",
         "action": change + "make-admin"},
        {"name": "make-member", "label": "Make member", "key": "user_id", "when": "admin",
         "action": change + "make-member"},
        {"name": "deactivate", "label": "Deactivate", "key": "user_id", "when": "active",
         "action": change + "deactivate"},
        {"name": "reactivate", "label": "Reactivate", "key": "user_id", "when": "inactive",
         "action": change + "reactivate"},
    ]  # fmt: skip
    revoke = {"name": "revoke", "label": "Revoke", "when": "pending",
              "action": f"/console/firms/{slug}/users/invites/{{id}}/revoke"}  # fmt: skip
    panels = [
        {"title": "Users", **pager(users, here), "actions": actions,
         "error": errors.get("members"),
         "note": "A deactivated person's tokens stop at once; a firm keeps one admin at least.",
         "columns": [col("Email", "email"), col("Name", "name"), col("Role", "role", "badge"),
                     col("Status", "status", "badge"), col("Joined", "joined_at", "when")]},
        {"title": "Invites", **pager(invites, here, "invites_cursor"), "form": form,
         "actions": [revoke], "columns": [
            col("Email", "email"), col("Role", "role", "badge"), col("Status", "status", "badge"),
            col("Expires", "expires_at", "when")]},
    ]  # fmt: skip
    return render(api, "section.html", status=status, slug=slug, section="users", title="Users",
                  panels=panels, errors=errors, values=values or {}, secret=None)  # fmt: skip


@get("/firms/{slug:str}/users", include_in_schema=False)
async def users(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    return await _users(api, slug)


@post("/firms/{slug:str}/users", include_in_schema=False, status_code=303)
async def invite(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    form = await form_of(api)
    body = {"email": form.get("email", ""), "role": form.get("role", "tenant_member")}
    reply = await api.post(f"{base(slug)}/users/invites", body)
    if not reply.ok:
        return await _users(api, slug, reply, form)
    return redirect(api, f"/console/firms/{slug}/users", "invited")


CHANGES = {"make-admin": {"role": "tenant_admin"}, "make-member": {"role": "tenant_member"},
           "deactivate": {"status": "deactivated"}, "reactivate": {"status": "active"}}  # fmt: skip


@post("/firms/{slug:str}/users/{user_id:uuid}/{change:str}", include_in_schema=False,
      status_code=303)  # fmt: skip
async def change_member(
    api: NamedDependency[Api],
    slug: FromPath[str],
    user_id: FromPath[uuid.UUID],
    change: FromPath[str],
) -> Response[Any]:
    if change not in CHANGES:
        raise HTTPException(status_code=404, detail=f"no change {change!r}")
    reply = await api.call("PATCH", f"{base(slug)}/users/{user_id}", json=CHANGES[change])
    if not reply.ok:
        return await _users(api, slug, reply, form_id="members")
    return redirect(api, f"/console/firms/{slug}/users", "saved")


@post("/firms/{slug:str}/users/invites/{invite_id:uuid}/revoke", include_in_schema=False,
      status_code=303)  # fmt: skip
async def revoke_invite(
    api: NamedDependency[Api], slug: FromPath[str], invite_id: FromPath[uuid.UUID]
) -> Response[Any]:
    reply = await api.call("DELETE", f"{base(slug)}/users/invites/{invite_id}")
    if not reply.ok:
        return await _users(api, slug, reply, form_id="members")
    return redirect(api, f"/console/firms/{slug}/users", "saved")


# --- API clients ------------------------------------------------------------------------------


async def _clients(
    api: Api,
    slug: str,
    failed: Reply | None = None,
    values: dict[str, str] | None = None,
    secret: dict[str, str] | None = None,
) -> Response[Any]:
    rows = await list_page(api, f"{base(slug)}/clients")
    errors, status = _failure(failed, "new-client")
    form = {"id": "new-client", "title": "New API client", "submit": "Create client",
            "action": f"/console/firms/{slug}/clients", "fields": [
                {"name": "name", "label": "Name", "required": True},
                {"name": "scopes", "label": "Scopes", "type": "checkboxes",
                 "options": CLIENT_SCOPES, "checked": ["work:read", "work:write"]}]}  # fmt: skip
    rotate = {"name": "rotate", "label": "Rotate secret", "key": "client_id",
              "action": f"/console/firms/{slug}/clients/{{client_id}}/rotate"}  # fmt: skip
    panels = [{"title": "API clients", **pager(rows, f"/console/firms/{slug}/clients"),
               "form": form, "actions": [rotate],
               "note": "After a rotation the old secret keeps working for a short overlap.",
               "columns": [col("Client id", "client_id"), col("Name", "name"),
                           col("Scopes", "scopes", "list"), col("Status", "status", "badge"),
                           col("Old secret valid until", "previous_secret_expires_at", "when"),
                           col("Created", "created_at", "when")]}]  # fmt: skip
    return render(api, "section.html", status=status, slug=slug, section="clients",
                  title="API clients", panels=panels, errors=errors, values=values or {},
                  secret=secret)  # fmt: skip


@get("/firms/{slug:str}/clients", include_in_schema=False)
async def clients(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    return await _clients(api, slug)


@post("/firms/{slug:str}/clients", include_in_schema=False, status_code=200)
async def create_client(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    form = await api.request.form()
    scopes = [s for s in form.getall("scopes", []) if isinstance(s, str)]
    name = str(form.get("name", ""))
    reply = await api.post(f"{base(slug)}/clients", {"name": name, "scopes": scopes})
    if not reply.ok:
        return await _clients(api, slug, reply, {"name": name})
    made = reply.body
    secret = {"title": f"Secret of {made['client_id']}", "value": made["client_secret"]}
    return await _clients(api, slug, secret=secret)


@post("/firms/{slug:str}/clients/{client_id:str}/rotate", include_in_schema=False,
      status_code=200)  # fmt: skip
async def rotate_client(
    api: NamedDependency[Api], slug: FromPath[str], client_id: FromPath[str]
) -> Response[Any]:
    reply = await api.post(f"{base(slug)}/clients/{client_id}/rotate")
    if not reply.ok:
        return await _clients(api, slug, reply)
    secret = {"title": f"New secret of {client_id}", "value": reply.body["client_secret"]}
    return await _clients(api, slug, secret=secret)


# --- webhooks ---------------------------------------------------------------------------------


async def _webhooks(
    api: Api,
    slug: str,
    failed: Reply | None = None,
    values: dict[str, str] | None = None,
    secret: dict[str, str] | None = None,
) -> Response[Any]:
    here = f"/console/firms/{slug}/webhooks"
    endpoints = await list_page(api, f"{base(slug)}/webhooks/endpoints", "endpoints_cursor")
    deliveries = await list_page(api, f"{base(slug)}/webhooks/deliveries", limit=25)
    errors, status = _failure(failed, "new-endpoint")
    form = {"id": "new-endpoint", "title": "New endpoint", "submit": "Add endpoint",
            "action": f"/console/firms/{slug}/webhooks", "fields": [
                {"name": "url", "label": "URL (https)", "type": "url", "required": True},
                {"name": "event_types", "label": "Events", "type": "checkboxes",
                 "options": EVENTS}]}  # fmt: skip
    for endpoint in endpoints["items"]:
        endpoint["disabled"] = not endpoint["enabled"]
    act = f"/console/firms/{slug}/webhooks/endpoints/{{id}}/"
    remove = [
        {"name": "ping", "label": "Send a test event", "when": "enabled", "action": act + "ping"},
        {"name": "disable", "label": "Disable", "when": "enabled", "action": act + "disable"},
        {"name": "enable", "label": "Enable", "when": "disabled", "action": act + "enable"},
        {"name": "delete", "label": "Delete", "action": act + "delete"},
    ]  # fmt: skip
    replay = {"name": "replay", "label": "Replay",
              "action": f"/console/firms/{slug}/webhooks/deliveries/{{id}}/replay"}  # fmt: skip
    panels = [
        {"title": "Endpoints", **pager(endpoints, here, "endpoints_cursor"), "form": form,
         "actions": remove, "columns": [
            col("URL", "url"), col("Events", "event_types", "list"),
            col("Enabled", "enabled", "bool"), col("Disabled because", "disabled_reason"),
            col("Failing since", "failing_since", "when")]},
        {"title": "Deliveries", **pager(deliveries, here), "actions": [replay], "columns": [
            col("Event", "event_id"), col("Status", "status", "badge"),
            col("Attempts", "attempts", num=True), col("Next try", "next_attempt_at", "when"),
            col("Created", "created_at", "when")]},
    ]  # fmt: skip
    return render(api, "section.html", status=status, slug=slug, section="webhooks",
                  title="Webhooks", panels=panels, errors=errors, values=values or {},
                  secret=secret)  # fmt: skip


@get("/firms/{slug:str}/webhooks", include_in_schema=False)
async def webhooks(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    return await _webhooks(api, slug)


@post("/firms/{slug:str}/webhooks", include_in_schema=False, status_code=200)
async def add_endpoint(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    form = await api.request.form()
    url = str(form.get("url", ""))
    events = [e for e in form.getall("event_types", []) if isinstance(e, str)]
    reply = await api.post(f"{base(slug)}/webhooks/endpoints",
                           {"url": url, "event_types": events or ["*"]})  # fmt: skip
    if not reply.ok:
        return await _webhooks(api, slug, reply, {"url": url})
    secret = {"title": "Signing secret of the new endpoint", "value": reply.body.get("secret", "")}
    return await _webhooks(api, slug, secret=secret)


ENDPOINT_CHANGES = {"enable": {"enabled": True}, "disable": {"enabled": False}}


@post("/firms/{slug:str}/webhooks/endpoints/{endpoint_id:uuid}/{change:str}",
      include_in_schema=False, status_code=303)  # fmt: skip
async def change_endpoint(
    api: NamedDependency[Api],
    slug: FromPath[str],
    endpoint_id: FromPath[uuid.UUID],
    change: FromPath[str],
) -> Response[Any]:
    """Send a test event, disable, enable (after fixing a receiver the API disabled), or
    delete the endpoint."""
    path = f"{base(slug)}/webhooks/endpoints/{endpoint_id}"
    if change == "ping":
        reply, notice = await api.post(f"{path}/ping"), "pinged"
    elif change == "delete":
        reply, notice = await api.call("DELETE", path), "saved"
    elif change in ENDPOINT_CHANGES:
        reply, notice = await api.call("PATCH", path, json=ENDPOINT_CHANGES[change]), "saved"
    else:
        raise HTTPException(status_code=404, detail=f"no change {change!r}")
    if not reply.ok:
        return await _webhooks(api, slug, reply)
    return redirect(api, f"/console/firms/{slug}/webhooks", notice)


@post("/firms/{slug:str}/webhooks/deliveries/{delivery_id:str}/replay", include_in_schema=False,
      status_code=303)  # fmt: skip
async def replay(
    api: NamedDependency[Api], slug: FromPath[str], delivery_id: FromPath[str]
) -> Response[Any]:
    reply = await api.post(f"{base(slug)}/webhooks/deliveries/{delivery_id}/replay")
    if not reply.ok:
        return await _webhooks(api, slug, reply)
    return redirect(api, f"/console/firms/{slug}/webhooks", "replayed")


# --- plan, usage and invoices -----------------------------------------------------------------


async def _daily(api: Api, slug: str, meter: str) -> list[tuple[str, float]]:
    """The meter's usage per UTC day over the last CHART_DAYS days (one API read)."""
    reply = await api.get(f"{base(slug)}/billing/usage/daily", meter=meter, days=CHART_DAYS)
    return [(d["day"], float(Decimal(str(d["quantity"])))) for d in checked(reply)["days"]]


def _plan_form(slug: str, plans: list[dict[str, Any]], stripe: bool) -> dict[str, Any]:
    """Choose a plan: the API subscribes or switches (from the next hour); a subscription
    run by Stripe changes in Stripe's portal, which the API's 409 says next to the form."""
    options = [(p["key"], f"{p['name']}: {money(p['base_fee'], p['currency'])} a month")
               for p in plans]  # fmt: skip
    return {"id": "change-plan", "title": "Change plan", "submit": "Switch to this plan",
            "action": f"/console/firms/{slug}/billing/plan",
            "fields": [{"name": "plan", "label": "Plan", "type": "select", "options": options}],
            "note": "Managed in Stripe: use the customer portal." if stripe else None}  # fmt: skip


@get("/firms/{slug:str}/billing", include_in_schema=False)
async def billing(
    api: NamedDependency[Api], slug: FromPath[str], meter: FromQuery[str | None] = None
) -> Response[Any]:
    return await _billing(api, slug, meter)


@post("/firms/{slug:str}/billing/plan", include_in_schema=False, status_code=303)
async def change_plan(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    form = await form_of(api)
    reply = await api.post(f"{base(slug)}/billing/subscription", {"plan": form.get("plan", "")})
    if not reply.ok:
        return await _billing(api, slug, None, reply, form)
    return redirect(api, f"/console/firms/{slug}/billing", "plan-changed")


async def _billing(
    api: Api,
    slug: str,
    meter: str | None,
    failed: Reply | None = None,
    values: dict[str, str] | None = None,
) -> Response[Any]:
    usage = checked(await api.get(f"{base(slug)}/billing/usage"))
    subscription = await api.get(f"{base(slug)}/billing/subscription")
    invoices = await list_page(api, f"{base(slug)}/billing/invoices", limit=24)
    meters = usage["meters"]
    chosen = meter if meter in {m["meter"] for m in meters} else (
        meters[0]["meter"] if meters else None)  # fmt: skip
    plan = subscription.body if subscription.ok else None
    facts = ([("Plan", plan["plan"]["name"]), ("Status", plan["status"]),
              ("Period", f"{plan['period_start'][:10]} to {plan['period_end'][:10]}")]
             if plan else [("Plan", "none yet")])  # fmt: skip
    plans = checked(await api.get(f"{base(slug)}/billing/plans"))
    errors, status = _failure(failed, "change-plan")
    chosen_plan = {"plan": plan["plan"]["key"]} if plan else {}
    panels: list[dict[str, Any]] = [
        {"title": "Plan", "facts": facts,
         "form": _plan_form(slug, plans, bool(plan and plan["stripe_connected"]))},
        {"title": "Usage this period against the plan", "rows": meters, "columns": [
            col("Meter", "name"), col("Used", "quantity", num=True),
            col("Included", "included", num=True), col("Limit", "limit", num=True),
            col("Unit", "unit")]},
    ]  # fmt: skip
    if chosen:
        bars = await _daily(api, slug, chosen)
        chosen_row = next(m for m in meters if m["meter"] == chosen)
        panels.append({"title": f"{chosen_row['name']}: the last {CHART_DAYS} days", "chart": {
            "title": f"{chosen_row['name']} per day, last {CHART_DAYS} days", "bars": bars,
            "max": max(v for _, v in bars), "unit": chosen_row["unit"], "line": None,
            "caption": f"Per UTC day; this period so far {chosen_row['quantity']} of "
                       f"{chosen_row.get('included') or 'no'} included."}})  # fmt: skip
    here = f"/console/firms/{slug}/billing" + (f"?meter={chosen}" if chosen else "")
    panels.append({"title": "Invoices", **pager(invoices, here), "columns": [
        col("Period", "period_start", "when"), col("Plan", "plan"),
        col("Status", "status", "badge"), col("Total", "total", "money", currency="currency"),
        col("Due", "amount_due", "money", currency="currency"),
        col("Paid", "amount_paid", "money", currency="currency")]})  # fmt: skip
    return render(api, "section.html", status=status, slug=slug, section="billing",
                  title="Plan and usage", panels=panels, errors=errors,
                  values=values or chosen_plan, secret=None)  # fmt: skip


route_handlers = [
    overview, users, invite, change_member, revoke_invite, clients, create_client, rotate_client,
    webhooks, add_endpoint, change_endpoint,
    replay, billing, change_plan,
]  # fmt: skip
