"""What every statement format parses into, and the checks they share.

Amounts are integers of the currency's minor units (ISO 4217 exponent from the ledger), signed
from the account holder's view: money in > 0, money out < 0. Text amounts go through
`decimal.Decimal` only, so no float ever rounds a cent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from bpo.ledger.money import UnknownCurrency, exponent


class StatementError(ValueError):
    """A file that cannot be imported. `where` names the element, line or field; `detail` says
    what is wrong."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


@dataclass(frozen=True)
class ParsedLine:
    booking_date: date
    value_date: date | None
    amount: int
    currency: str
    bank_reference: str | None
    end_to_end_id: str | None
    creditor_reference: str | None
    counterparty_name: str | None
    counterparty_account: str | None
    description: str
    reversal: bool
    return_code: str | None
    bank_code: str | None
    position: str


@dataclass(frozen=True)
class ParsedStatement:
    format: str
    statement_id: str | None
    iban: str | None
    account_number: str | None
    bic: str | None
    currency: str
    opening_balance: int | None
    opening_date: date | None
    closing_balance: int | None
    closing_date: date | None
    lines: tuple[ParsedLine, ...]
    position: str


def balance_gap(s: ParsedStatement) -> int | None:
    """closing - (opening + Σ lines) in minor units; None unless both balances are known.
    The parsers never refuse a gap: the caller decides, and needs the numbers to say so."""
    if s.opening_balance is None or s.closing_balance is None:
        return None
    return s.closing_balance - (s.opening_balance + sum(line.amount for line in s.lines))


def currency_code(code: str | None, where: str) -> str:
    """An ISO 4217 code the books know (its exponent is needed for every amount)."""
    text = (code or "").strip().upper()
    if not text:
        raise StatementError(where, "no currency given")
    try:
        exponent(text)
    except UnknownCurrency as exc:
        raise StatementError(where, str(exc)) from None
    return text


def to_minor(value: str | Decimal, currency: str, where: str) -> int:
    """Decimal text (or a Decimal) in `currency` units -> integer minor units, refusing more
    decimals than the currency has (a statement never rounds)."""
    if isinstance(value, Decimal):
        number = value
    else:
        text = value.strip()
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise StatementError(where, f"{text!r} is not a number") from None
    if not number.is_finite():
        raise StatementError(where, f"{value!r} is not a finite amount")
    digits = exponent(currency_code(currency, where))
    scaled = number.scaleb(digits)
    if scaled != scaled.to_integral_value():
        places = -int(number.normalize().as_tuple().exponent)
        raise StatementError(where, f"{value} has {places} decimals; {currency} has {digits}")
    return int(scaled)


def iso_date(text: str | None, where: str) -> date:
    """`YYYY-MM-DD`, or the date part of an ISO date-time (the bank's own calendar day)."""
    raw = (text or "").strip()
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise StatementError(where, f"{raw!r} is not a date (YYYY-MM-DD)") from None


def strp_date(text: str, fmt: str, where: str) -> date:
    try:
        return datetime.strptime(text.strip(), fmt).date()
    except ValueError:
        raise StatementError(where, f"{text.strip()!r} is not a date in the form {fmt}") from None


_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")


def is_iban(text: str | None) -> bool:
    """Shape and ISO 13616 mod-97 check digits, so a plain account number is never an IBAN."""
    if not text:
        return False
    compact = text.replace(" ", "").upper()
    if not _IBAN.fullmatch(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def iban_or_account(text: str | None) -> tuple[str | None, str | None]:
    """(iban, account_number) for an account id of unknown kind."""
    if not text or not text.strip():
        return None, None
    if is_iban(text):
        return text.replace(" ", "").upper(), None
    return None, text.strip()


_RF = re.compile(r"\bRF\d{2}[0-9A-Z]{1,21}\b")


def rf_reference(text: str | None) -> str | None:
    """An ISO 11649 creditor reference (RF + check digits) found in free text, if it checks."""
    for match in _RF.finditer((text or "").upper()):
        ref = match.group(0)
        moved = ref[4:] + ref[:4]
        if int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1:
            return ref
    return None


def clean(text: str | None) -> str | None:
    """Whitespace runs collapsed; '' and whitespace-only -> None."""
    if text is None:
        return None
    joined = " ".join(text.split())
    return joined or None


def join_text(parts: list[str | None]) -> str:
    return " ".join(p for p in (clean(x) for x in parts) if p)


_BIC = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")


def is_bic(text: str | None) -> bool:
    return bool(text) and _BIC.fullmatch((text or "").strip()) is not None
