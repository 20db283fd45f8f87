"""BAI2 cash-management files, parsed by the `bai2` package; one statement per 03 account.

Amounts in BAI2 are already integers of minor units (the decimal point is implied by the
currency), and unsigned: the type code says credit (1xx-3xx) or debit (4xx-6xx), as the
package's type-code table knows. Balances: 010 opening ledger, 015 closing ledger.

The package loops forever on a truncated file and says nothing about lines, so the record
sequence (01 02 03 16… 49 98 99, 88 continuing any record) is checked here first, naming the
line of the first record out of place.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from bai2 import bai2 as bai2_lib
from bai2.constants import TypeCodeTransaction
from bai2.exceptions import IntegrityException, NotSupportedYetException, ParsingException

from .common import (
    ParsedLine,
    ParsedStatement,
    StatementError,
    clean,
    currency_code,
    iban_or_account,
    rf_reference,
)

# What may follow each record (None: the start of the file).
_NEXT = {
    None: {"01"},
    "01": {"02"},
    "02": {"03"},
    "03": {"16", "49"},
    "16": {"16", "49"},
    "49": {"03", "98"},
    "98": {"02", "99"},
    "99": set(),
}
_AMOUNT_FIELD = re.compile(r"\d*")
_TRAILERS = {
    "Account": "49 (account trailer)",
    "Group": "98 (group trailer)",
    "Bai2File": "99 (file trailer)",
}


def _records(text: str) -> list[tuple[int, str, str]]:
    """(line number, record code, text) of each non-empty line."""
    rows = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line:
            rows.append((number, line[:2], line))
    return rows


def _check_sequence(rows: list[tuple[int, str, str]]) -> list[int]:
    """Refuses records out of order or a truncated file; returns the line of each 16 record."""
    previous: str | None = None
    details = []
    for number, code, line in rows:
        if code == "88" and previous is not None:
            continue
        if code not in _NEXT.get(previous, set()):
            after = f"after record {previous}" if previous else "at the start"
            raise StatementError(f"record {number}", f"record {code!r} cannot come {after}")
        if code == "16":
            amount = line.split(",")[2] if line.count(",") >= 2 else ""
            if not _AMOUNT_FIELD.fullmatch(amount):
                raise StatementError(f"record {number}", f"amount {amount!r} is not a number")
            details.append(number)
        previous = code
    if previous != "99":
        raise StatementError(
            f"record {rows[-1][0] if rows else 1}",
            "the file ends without its 99 file trailer (truncated?)",
        )
    return details


def _sign(type_code: Any, where: str) -> int | None:
    transaction = getattr(type_code, "transaction", None)
    if transaction is TypeCodeTransaction.credit:
        return 1
    if transaction is TypeCodeTransaction.debit:
        return -1
    return None  # informational (8xx/9xx): no money moves


def _line(detail: Any, ccy: str, booked: date, where: str) -> ParsedLine | None:
    sign = _sign(detail.type_code, where)
    if sign is None:
        return None
    text = clean(detail.text) or ""
    code = getattr(detail.type_code, "code", None)
    description = str(getattr(detail.type_code, "description", "")).lower()
    return ParsedLine(
        booking_date=booked,
        value_date=None,
        amount=sign * int(detail.amount or 0),
        currency=ccy,
        bank_reference=clean(detail.bank_reference),
        end_to_end_id=None,
        creditor_reference=rf_reference(text),
        counterparty_name=None,
        counterparty_account=None,
        description=text,
        reversal="reversal" in description or "reversing" in description,
        return_code=None,
        bank_code=code,
        position=where,
    )


def _balances(account: Any) -> dict[str, int]:
    return {
        item.type_code.code: int(item.amount)
        for item in account.header.summary_items
        if getattr(item.type_code, "code", None) in ("010", "015") and item.amount is not None
    }


def _statement(account: Any, group: Any, where: str, lines: list[ParsedLine]) -> ParsedStatement:
    ccy = currency_code(account.header.currency or group.header.currency or "USD", where)
    iban, number = iban_or_account(account.header.customer_account_number)
    balances = _balances(account)
    as_of = group.header.as_of_date
    return ParsedStatement(
        format="bai2",
        statement_id=None,
        iban=iban,
        account_number=number,
        bic=None,
        currency=ccy,
        opening_balance=balances.get("010"),
        opening_date=as_of if "010" in balances else None,
        closing_balance=balances.get("015"),
        closing_date=as_of if "015" in balances else None,
        lines=tuple(lines),
        position=where,
    )


def _parse_file(text: str) -> Any:
    try:
        return bai2_lib.parse_from_string(text, check_integrity=True)
    except IntegrityException as exc:
        kind = next((k for k in _TRAILERS if f"for {k}." in str(exc)), "Bai2File")
        raise StatementError(_TRAILERS[kind], str(exc)) from None
    except (ParsingException, NotSupportedYetException, ValueError) as exc:
        raise StatementError("BAI2 records", str(exc)) from None


def parse(data: bytes) -> list[ParsedStatement]:
    text = data.decode("latin-1")
    rows = _records(text)
    detail_lines = iter(_check_sequence(rows))
    account_lines = iter(number for number, code, _ in rows if code == "03")
    statements = []
    for group in _parse_file(text).children:
        for account in group.children:
            where = f"record {next(account_lines)}"
            ccy = currency_code(account.header.currency or group.header.currency or "USD", where)
            lines = [
                _line(detail, ccy, group.header.as_of_date, f"record {next(detail_lines)}")
                for detail in account.children
            ]
            statements.append(_statement(account, group, where, [x for x in lines if x]))
    return statements
