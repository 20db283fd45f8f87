"""Scopes (what a token may do, per area) and which roles may hold which (DESIGN §3)."""

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
# People may also hold `admin`: managing users, API clients, staff and tenants. Machine
# clients never do: a leaked client secret must not be able to mint more clients.
USER_SCOPES: dict[str, str] = CLIENT_SCOPES | {
    "admin": "Manage users, API clients, staff assignments and tenants (admins only)",
}
ADMIN_ROLES = ("tenant_admin", "staff_admin")


def scopes_for_role(role: str) -> set[str]:
    """The scopes a person with `role` may be granted."""
    allowed = set(CLIENT_SCOPES)
    if role in ADMIN_ROLES:
        allowed.add("admin")
    return allowed
