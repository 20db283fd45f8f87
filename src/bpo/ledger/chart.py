"""Starter charts of accounts a tenant admin can apply (codes in the common 1-8 scheme)."""

from __future__ import annotations

# (code, name, type, parent code or None)
SMALL_BUSINESS: list[tuple[str, str, str, str | None]] = [
    ("1000", "Assets", "asset", None),
    ("1100", "Cash and bank", "asset", "1000"),
    ("1110", "Bank current account", "asset", "1100"),
    ("1120", "Petty cash", "asset", "1100"),
    ("1190", "Bank suspense", "asset", "1100"),
    ("1200", "Accounts receivable", "asset", "1000"),
    ("1300", "Prepaid expenses", "asset", "1000"),
    ("1400", "VAT receivable", "asset", "1000"),
    ("1500", "Fixed assets", "asset", "1000"),
    ("1590", "Accumulated depreciation", "asset", "1500"),
    ("2000", "Liabilities", "liability", None),
    ("2100", "Accounts payable", "liability", "2000"),
    ("2200", "VAT payable", "liability", "2000"),
    ("2300", "Payroll liabilities", "liability", "2000"),
    ("2400", "Accrued expenses", "liability", "2000"),
    ("2500", "Loans", "liability", "2000"),
    ("3000", "Equity", "equity", None),
    ("3100", "Share capital", "equity", "3000"),
    ("3200", "Retained earnings", "equity", "3000"),
    ("4000", "Income", "income", None),
    ("4100", "Sales", "income", "4000"),
    ("4200", "Services", "income", "4000"),
    ("4900", "Other income", "income", "4000"),
    ("4910", "Unrealised FX gains", "income", "4900"),
    ("5000", "Cost of sales", "expense", None),
    ("5100", "Purchases", "expense", "5000"),
    ("6000", "Operating expenses", "expense", None),
    ("6100", "Salaries and wages", "expense", "6000"),
    ("6200", "Rent", "expense", "6000"),
    ("6300", "Utilities", "expense", "6000"),
    ("6400", "Software and subscriptions", "expense", "6000"),
    ("6500", "Professional fees", "expense", "6000"),
    ("6600", "Bank charges", "expense", "6000"),
    ("6700", "Depreciation", "expense", "6000"),
    ("6900", "Other expenses", "expense", "6000"),
    ("6910", "Unrealised FX losses", "expense", "6900"),
]
CHARTS = {"small-business": SMALL_BUSINESS}
# Where a chart's revaluation posts, set on the firm's settings when applied (if unset).
FX_ACCOUNTS = {"small-business": ("4910", "6910")}
