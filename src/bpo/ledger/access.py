"""Who may do what on a firm's books (the guards of the ledger's routes).

API clients need `ledger:read` / `ledger:write`; members post with `ledger:write`; the
chart, accounts and settings are for the firm's admins (and staff admins); closing periods
and moving the lock date, the month-end close, for admins and the staff assigned to the
firm, not for members or machine clients.
"""

from __future__ import annotations

from bpo.identity.guards import TENANT_ADMINS, requires

READ = requires("ledger:read")
WRITE = requires("ledger:write")
CLOSERS = ("tenant_admin", "staff", "staff_admin")  # month-end close: admins and staff
CLOSE = requires("ledger:write", roles=CLOSERS)
ADMIN = requires("ledger:write", roles=TENANT_ADMINS)
