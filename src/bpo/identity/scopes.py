"""Scopes: what a token may do, per area (DESIGN §3). Roles come with users (issue 4)."""

from __future__ import annotations

CLIENT_SCOPES: dict[str, str] = {
    "ledger:read": "Read accounts, entries and balances",
    "ledger:write": "Post entries",
    "settlements:read": "Read statements and reconciliations",
    "settlements:write": "Import statements, match and clear",
    "records:read": "Read records and documents",
    "records:write": "Store records and documents",
    "compliance:read": "Read screenings and filings",
    "compliance:write": "Request screenings and filings",
    "work:read": "Read work requests and their status",
    "work:write": "Create, answer and cancel work requests",
    "billing:read": "Read plan, usage and invoices",
}
