"""Settlements: bank statements reconciled against open invoices, bills and expected payments."""
