"""The firm's books and records as they arrive: the trial balance, bank statements (an
upload, its import's progress bar and its exceptions), documents with their legal holds,
upcoming filing deadlines and open screening hits. Reads and uploads are API calls as the
signed-in person, with the API's cursors for every long list."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from bpo.console.admin import base, col, list_page, pager
from bpo.console.api import Api
from bpo.console.views import checked, redirect, render
from bpo.settlements.imports import MAX_BYTES as STATEMENT_MAX_BYTES

DEADLINE_DAYS = 90


@get("/firms/{slug:str}/books", include_in_schema=False)
async def books(
    api: NamedDependency[Api], slug: FromPath[str], as_of: FromQuery[date | None] = None
) -> Response[Any]:
    query = {"as_of": as_of.isoformat()} if as_of else {}
    trial = checked(await api.get(f"{base(slug)}/ledger/trial-balance", **query))
    totals = trial.get("totals") or []
    panels = [
        {"title": f"Trial balance as of {trial.get('as_of')}", "rows": trial.get("rows", []),
         "empty": "No account has a balance yet.", "columns": [
            col("Code", "code"), col("Account", "name"), col("Type", "type"),
            col("Debit", "debit", "money", currency="currency"),
            col("Credit", "credit", "money", currency="currency")]},
        {"title": "Totals (debits equal credits per currency)", "rows": totals, "columns": [
            col("Currency", "currency"), col("Debit", "debit", "money", currency="currency"),
            col("Credit", "credit", "money", currency="currency")]},
    ]  # fmt: skip
    return render(api, "section.html", slug=slug, section="books", title="Books",
                  panels=panels, secret=None)  # fmt: skip


def _upload_form(slug: str) -> dict[str, Any]:
    return {"id": "upload", "title": "Upload a bank statement", "multipart": True,
            "action": f"/console/firms/{slug}/statements", "submit": "Upload",
            "fields": [{"name": "file", "label": "Statement file (camt.053, MT940, OFX, BAI2)",
                        "type": "file", "required": True}]}  # fmt: skip


@get("/firms/{slug:str}/statements", include_in_schema=False)
async def statements(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    accounts = await list_page(api, f"{base(slug)}/settlements/bank-accounts", limit=25)
    panels = [{"title": "Bank accounts", **pager(accounts, f"/console/firms/{slug}/statements"),
               "form": _upload_form(slug), "columns": [
                   col("Name", "name"), col("IBAN", "iban"), col("Currency", "currency"),
                   col("Status", "status", "badge")]}]  # fmt: skip
    return render(api, "section.html", slug=slug, section="statements", title="Statements",
                  panels=panels, secret=None)  # fmt: skip


@post("/firms/{slug:str}/statements", include_in_schema=False, status_code=303,
      request_max_body_size=STATEMENT_MAX_BYTES)  # fmt: skip
async def upload(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    form = await api.request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        return _upload_failed(api, slug, 422, {"file": "choose a statement file"})
    content = await upload.read()
    reply = await api.call("POST", f"{base(slug)}/settlements/statements",
                           content=(content, "application/octet-stream"),
                           query={"filename": (upload.filename or "")[:200]})  # fmt: skip
    if reply.status == 404:
        checked(reply)
    if not reply.ok:
        errors = {**reply.field_errors(), "upload": reply.detail}
        return _upload_failed(api, slug, reply.status, errors)
    target = f"/console/firms/{slug}/statements/imports/{reply.body['id']}"
    return redirect(api, target, "uploaded")


def _upload_failed(api: Api, slug: str, status: int, errors: dict[str, str]) -> Response[Any]:
    panels = [{"title": "Upload a bank statement", "form": _upload_form(slug)}]
    return render(api, "section.html", status=status, slug=slug, section="statements",
                  title="Statements", panels=panels, errors=errors, secret=None)  # fmt: skip


@get("/firms/{slug:str}/statements/imports/{import_id:uuid}", include_in_schema=False)
async def statement_import(
    api: NamedDependency[Api], slug: FromPath[str], import_id: FromPath[uuid.UUID]
) -> Response[Any]:
    """The import's progress (refreshed every 2 s until it finishes) and its exceptions:
    the file's errors and warnings, then the lines no rule could match."""
    got = checked(await api.get(f"{base(slug)}/settlements/imports/{import_id}"))
    finished = got["status"] not in ("pending", "running", "queued")
    if finished and api.request.headers.get("hx-request"):
        # The panel was being refreshed: now that the import is over, show the whole page
        # (with its exceptions) once.
        return Response("", status_code=200, headers={"HX-Refresh": "true"})
    here = f"/console/firms/{slug}/statements/imports/{import_id}"
    problems = [{"kind": "error", "text": str(e)} for e in got.get("errors") or []] + [
        {"kind": "warning", "text": str(w)} for w in got.get("warnings") or []
    ]
    panels: list[dict[str, Any]] = [{
        "id": "import", "title": f"Import of {got.get('filename') or 'the statement'}",
        "live": None if finished else here,
        "progress": {"label": f"{got['lines_done']} of {got['lines_total']} lines read "
                              f"({got['status']})",
                     "value": got["lines_done"], "max": got["lines_total"]},
        "facts": [("Format", got.get("format")), ("Status", got["status"]),
                  ("Lines imported", got["lines_imported"]),
                  ("Lines skipped (seen before)", got["lines_skipped"])],
        "rows": problems, "empty": "No errors or warnings in the file.",
        "columns": [col("Kind", "kind", "badge"), col("Problem", "text")]}]  # fmt: skip
    if finished:
        for statement_id in [s if isinstance(s, str) else s.get("id") for s in
                             got.get("statements") or []][:5]:  # fmt: skip
            lines = checked(
                await api.get(
                    f"{base(slug)}/settlements/statements/{statement_id}/lines", limit=100
                )
            )
            open_lines = [ln for ln in lines["items"] if ln["status"] not in ("matched", "cleared")]
            panels.append({"title": "Exceptions: lines not matched yet", "rows": open_lines,
                           "empty": "Every line is matched.", "columns": [
                               col("Booked", "booking_date"), col("Counterparty",
                                                                  "counterparty_name"),
                               col("Amount", "amount", "money", currency="currency"),
                               col("Open", "open_amount", "money", currency="currency"),
                               col("Reference", "bank_reference"),
                               col("Status", "status", "badge")]})  # fmt: skip
    return render(api, "section.html", slug=slug, section="statements", title="Statement import",
                  panels=panels, secret=None)  # fmt: skip


@get("/firms/{slug:str}/records", include_in_schema=False)
async def records(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    here = f"/console/firms/{slug}/records"
    documents = await list_page(api, f"{base(slug)}/records/documents", limit=25)
    holds = await list_page(api, f"{base(slug)}/records/holds", "holds_cursor", open_only=True,
                            limit=25)  # fmt: skip
    for doc in documents["items"]:
        doc["on_hold"] = bool(doc.get("held"))
    panels = [
        {"title": "Documents", **pager(documents, here), "columns": [
            col("Title", "title"), col("Class", "record_class"), col("Type", "type"),
            col("Counterparty", "counterparty"), col("Dated", "document_date"),
            col("Keep until", "retain_until"), col("On legal hold", "on_hold", "bool"),
            col("Status", "status", "badge")]},
        {"title": "Legal holds in force", **pager(holds, here, "holds_cursor"), "columns": [
            col("Name", "name"), col("Reason", "reason"), col("Placed", "placed_at", "when")]},
    ]  # fmt: skip
    return render(api, "section.html", slug=slug, section="records", title="Records",
                  panels=panels, secret=None)  # fmt: skip


@get("/firms/{slug:str}/compliance", include_in_schema=False)
async def compliance(api: NamedDependency[Api], slug: FromPath[str]) -> Response[Any]:
    today = datetime.now(UTC).date()
    window = {"from": today.isoformat(), "to": (today + timedelta(days=DEADLINE_DAYS)).isoformat()}
    here = f"/console/firms/{slug}/compliance"
    deadlines = await list_page(api, f"{base(slug)}/compliance/deadlines", "deadlines_cursor",
                                limit=25, **window)  # fmt: skip
    hits = await list_page(api, f"{base(slug)}/compliance/hits", status="open", limit=25)
    panels = [
        {"title": f"Deadlines in the next {DEADLINE_DAYS} days",
         **pager(deadlines, here, "deadlines_cursor"), "columns": [
            col("Due", "due"), col("Obligation", "obligation"), col("Regulator", "regulator"),
            col("Form", "form"), col("Period", "period"), col("Status", "status", "badge")]},
        {"title": "Open screening hits", **pager(hits, here), "columns": [
            col("Counterparty", "counterparty_name"), col("Listed as", "listed_name"),
            col("List", "source"), col("Score", "score", num=True),
            col("Found", "created_at", "when")]},
    ]  # fmt: skip
    return render(api, "section.html", slug=slug, section="compliance", title="Compliance",
                  panels=panels, secret=None)  # fmt: skip


route_handlers = [books, statements, upload, statement_import, records, compliance]
