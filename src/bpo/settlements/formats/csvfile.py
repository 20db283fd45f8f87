"""Bank CSV exports, read with the csv module and the bank account's column mapping.

Each bank lays its export out differently, so the caller keeps a `CsvMapping` per account and
names the account and currency, which such files rarely carry. Amounts are either one signed
column or a debit and a credit column; thousands separators (' and the other of , and .) are
stripped, the decimal separator is the mapping's.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from .common import (
    ParsedLine,
    ParsedStatement,
    StatementError,
    clean,
    currency_code,
    iban_or_account,
    rf_reference,
    strp_date,
    to_minor,
)


@dataclass(frozen=True)
class CsvMapping:
    date: str
    amount: str | None = None
    debit: str | None = None
    credit: str | None = None
    currency: str | None = None
    default_currency: str | None = None
    description: str | None = None
    reference: str | None = None
    counterparty: str | None = None
    counterparty_account: str | None = None
    value_date: str | None = None
    date_format: str = "%Y-%m-%d"
    decimal: str = "."
    delimiter: str = ","
    encoding: str = "utf-8"

    def columns(self) -> list[str]:
        named = [
            self.date,
            self.amount,
            self.debit,
            self.credit,
            self.currency,
            self.description,
            self.reference,
            self.counterparty,
            self.counterparty_account,
            self.value_date,
        ]
        return [c for c in named if c]

    def check(self, header: list[str]) -> None:
        """Refuses a mapping whose columns the file does not have, naming the first missing."""
        if not self.amount and not (self.debit or self.credit):
            raise StatementError("mapping", "name an amount column, or debit/credit columns")
        present = {h.strip() for h in header}
        for column in self.columns():
            if column not in present:
                raise StatementError(
                    f"column {column!r}",
                    f"the file has no such column (it has: {', '.join(header)})",
                )

    def number(self, text: str, where: str, currency: str) -> int:
        """'1.234,56' (decimal ',') or "1'234.56" -> minor units."""
        thousands = "." if self.decimal == "," else ","
        raw = text.strip().replace(" ", "").replace("'", "").replace(thousands, "")
        return to_minor(raw.replace(self.decimal, "."), currency, where)


def _amount(row: dict[str, str], m: CsvMapping, where: str, ccy: str) -> int:
    if m.amount:
        return m.number(row.get(m.amount) or "", f"{where}, column {m.amount!r}", ccy)
    credit = (row.get(m.credit) or "").strip() if m.credit else ""
    debit = (row.get(m.debit) or "").strip() if m.debit else ""
    total = 0
    if credit:
        total += abs(m.number(credit, f"{where}, column {m.credit!r}", ccy))
    if debit:  # debit columns hold the amount paid out, with or without a minus
        total -= abs(m.number(debit, f"{where}, column {m.debit!r}", ccy))
    return total


def _cell(row: dict[str, str], column: str | None) -> str | None:
    return clean(row.get(column)) if column else None


def _line(row: dict[str, str], m: CsvMapping, where: str, ccy: str | None) -> ParsedLine:
    line_ccy = currency_code(_cell(row, m.currency) or ccy, f"{where}, currency")
    value = _cell(row, m.value_date)
    description = _cell(row, m.description) or ""
    return ParsedLine(
        booking_date=strp_date(row.get(m.date) or "", m.date_format, f"{where}, column {m.date!r}"),
        value_date=strp_date(value, m.date_format, f"{where}, column {m.value_date!r}")
        if value
        else None,
        amount=_amount(row, m, where, line_ccy),
        currency=line_ccy,
        bank_reference=_cell(row, m.reference),
        end_to_end_id=None,
        creditor_reference=rf_reference(description),
        counterparty_name=_cell(row, m.counterparty),
        counterparty_account=_cell(row, m.counterparty_account),
        description=description,
        reversal=False,
        return_code=None,
        bank_code=None,
        position=where,
    )


def parse(
    data: bytes, mapping: CsvMapping, account: str | None, currency: str | None
) -> list[ParsedStatement]:
    try:
        text = data.decode(mapping.encoding).lstrip("\ufeff")
    except (UnicodeDecodeError, LookupError) as exc:
        raise StatementError("file", f"not readable as {mapping.encoding}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=mapping.delimiter)
    mapping.check(list(reader.fieldnames or []))
    ccy = currency or mapping.default_currency
    lines = []
    try:
        for row in reader:
            if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                lines.append(_line(row, mapping, f"line {reader.line_num}", ccy))
    except csv.Error as exc:
        raise StatementError(f"line {reader.line_num}", f"malformed CSV: {exc}") from None
    iban, number = iban_or_account(account)
    return [
        ParsedStatement(
            format="csv",
            statement_id=None,
            iban=iban,
            account_number=number,
            bic=None,
            currency=currency_code(ccy or (lines[0].currency if lines else None), "file"),
            opening_balance=None,
            opening_date=None,
            closing_balance=None,
            closing_date=None,
            lines=tuple(lines),
            position="line 1",
        )
    ]
