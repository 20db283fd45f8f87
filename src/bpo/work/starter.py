"""The starter catalog `bpo demo` seeds: one service per back-office function, with forms,
checklists, skills and SLA goals a provider would start from."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.work.catalog import create_service
from bpo.work.models import Service
from bpo.work.schemas import Goal, ServiceIn


def _sla(urgent: tuple[float, float], normal: tuple[float, float]) -> dict[Any, Goal]:
    """Goals in business hours (response, resolution); high and low sit between/after."""
    return {
        "urgent": Goal(*urgent),
        "high": Goal(urgent[0] * 2, urgent[1] * 2),
        "normal": Goal(*normal),
        "low": Goal(normal[0] * 2, normal[1] * 2),
    }


def _form(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


PERIOD = {"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$", "description": "YYYY-MM"}

STARTER: list[ServiceIn] = [
    ServiceIn(
        key="month-end-close",
        name="Month-end close",
        function="accounting",
        description="Close the books for a month: accruals, reconciliations, trial balance.",
        form=_form(
            ["period"],
            {
                "period": PERIOD,
                "entity": {"type": "string", "maxLength": 100},
                "notes": {"type": "string", "maxLength": 2000},
            },
        ),
        checklist=["Post accruals", "Reconcile bank accounts", "Review trial balance"],
        skills=["accounting"],
        sla=_sla((2, 16), (8, 40)),
        review_required=True,
        bill_per_task=True,
        bill_per_minute=True,
    ),
    ServiceIn(
        key="bank-reconciliation",
        name="Bank reconciliation",
        function="settlements",
        form=_form(["account", "period"], {"account": {"type": "string"}, "period": PERIOD}),
        checklist=["Import statement", "Match lines", "Clear differences"],
        skills=["settlements"],
        sla=_sla((1, 8), (4, 24)),
        bill_per_minute=True,
    ),
    ServiceIn(
        key="vat-return",
        name="VAT return",
        function="compliance",
        form=_form(
            ["period", "country"],
            {"period": PERIOD, "country": {"type": "string", "pattern": "^[A-Z]{2}$"}},
        ),
        checklist=["Collect invoices", "Compute VAT", "File the return"],
        skills=["compliance"],
        sla=_sla((2, 16), (8, 40)),
        review_required=True,
    ),
    ServiceIn(
        key="sanctions-review",
        name="Sanctions screening review",
        function="compliance",
        description="Decide whether a screening hit is the listed party (true match) or not.",
        form=_form(
            ["counterparty", "listed_name", "score"],
            {
                "counterparty": {"type": "string", "maxLength": 300},
                "listed_name": {"type": "string", "maxLength": 500},
                "list_entry": {"type": "string", "maxLength": 100},
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "hit": {"type": "string", "maxLength": 36},
            },
        ),
        checklist=["Compare names, dates and identifiers", "Decide and give the reason"],
        skills=["compliance"],
        sla=_sla((1, 4), (4, 16)),
    ),
    ServiceIn(
        key="regulatory-filing",
        name="Regulatory filing",
        function="compliance",
        description="Prepare a filing that falls due (opened at the obligation's lead time).",
        form=_form(
            ["regulator", "form", "due"],
            {
                "regulator": {"type": "string", "maxLength": 200},
                "form": {"type": "string", "maxLength": 200},
                "due": {"type": "string", "format": "date"},
                "deadline": {"type": "string", "maxLength": 36},
            },
        ),
        checklist=["Collect the data", "Draft the filing", "Submit for approval"],
        skills=["compliance"],
        sla=_sla((2, 16), (8, 40)),
        review_required=True,
    ),
    ServiceIn(
        key="payroll-run",
        name="Payroll run",
        function="payroll",
        form=_form(
            ["period", "employees"],
            {"period": PERIOD, "employees": {"type": "integer", "minimum": 1}},
        ),
        skills=["payroll"],
        sla=_sla((1, 8), (4, 16)),
        review_required=True,
    ),
    ServiceIn(
        key="it-access",
        name="IT access for an employee",
        function="it",
        form=_form(
            ["employee", "systems"],
            {
                "employee": {"type": "string", "minLength": 1},
                "systems": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            },
        ),
        sla=_sla((0.5, 4), (2, 8)),
    ),
]


async def seed_catalog(session: AsyncSession) -> int:
    """Add the starter services the catalog lacks (by key); returns how many were added."""
    known = set((await session.scalars(select(Service.key))).all())
    added = 0
    for service in STARTER:
        if service.key not in known:
            await create_service(session, service)
            added += 1
    return added
