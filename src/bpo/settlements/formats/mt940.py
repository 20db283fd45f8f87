"""SWIFT MT940 (statements) and MT942 (interim reports), read by the `mt-940` package.

The package is lenient: it reads past a mistyped tag or a half-matching amount. So before it
sees a statement, each block's tag sequence and balance fields are checked here, line by line,
so a broken file is refused with its line number instead of importing a wrong balance.
A file with several statements (several :20: blocks) yields one ParsedStatement each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import mt940

from .common import (
    ParsedLine,
    ParsedStatement,
    StatementError,
    clean,
    currency_code,
    iban_or_account,
    join_text,
    rf_reference,
    to_minor,
)

_TAG = re.compile(r"^:(\d{2}[A-Z]?):")
_BALANCE = re.compile(r"[CD]\d{6}[A-Z]{3}\d{1,15},\d*")
# :61: up to the transaction type: value date, entry date (Citi leaves 4 blanks), mark, funds
# code, amount, N/F/S + 3-character type. A looser start is the library's, not ours to accept.
_ENTRY = re.compile(r"\d{6}(\d{4}| {4})?(RC|RD|EC|ED|C|D)[A-Z]?\d{1,15},\d*[NFS][A-Z0-9]{3}")
_RETURN_GVC = {"109", "159", "160", "179", "181", "184"}  # German GVC codes of returns (?34)
_SWIFT_SUB = re.compile(r"/(EREF|RTRN|NAME|IBAN)/([^/]*)")
_OPTIONS = mt940.Options.all()


@dataclass
class _Block:
    """One :20: statement: its text and where its tags start in the file."""

    first_line: int
    lines: list[tuple[int, str]]

    def tags(self) -> list[tuple[int, str, str]]:
        found = []
        for number, text in self.lines:
            match = _TAG.match(text)
            if match:
                found.append((number, match.group(1), text[match.end() :]))
        return found

    def text(self) -> str:
        return "\n".join(text for _, text in self.lines) + "\n"


def _blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if line.startswith(":20:"):
            blocks.append(_Block(number, []))
        if blocks and line and line != "-" and not line.startswith(("{", "}")):
            blocks[-1].lines.append((number, line))
    if not blocks:
        raise StatementError("line 1", "no :20: field: not an MT940/MT942 statement")
    return blocks


def _check_order(block: _Block, kind: str) -> None:
    """The MT940/942 field sequence: one :25: and :28C: before any :61:, one opening balance
    before the entries, the closing balance after them; :86: only after a :61: or closing."""
    seen: dict[str, int] = {}
    after_entries = False
    for number, tag, value in block.tags():
        where = f"line {number}"
        if tag in ("25", "28C", "28", "60F", "60M", "62F", "62M") and tag[:2] in seen:
            raise StatementError(
                where,
                f"a second :{tag}: in the statement of line {block.first_line} (a mistyped tag?)",
            )
        if tag in ("25", "28C", "28", "60F", "60M") and after_entries:
            raise StatementError(where, f":{tag}: after a :61: entry; it belongs before them")
        if tag in ("60F", "60M", "62F", "62M", "64", "65") and not _BALANCE.fullmatch(value):
            raise StatementError(
                where,
                f":{tag}: {value!r} is not a balance (C/D, YYMMDD, "
                "currency, amount with a decimal comma)",
            )
        if tag == "61" and not _ENTRY.match(value):
            raise StatementError(
                where,
                f":61: {value!r} is not an entry (date, C/D mark, "
                "amount with a decimal comma, transaction type)",
            )
        if tag in ("61", "62F", "62M"):
            after_entries = True
        seen[tag[:2]] = number
    _check_required(block, kind, seen)


def _check_required(block: _Block, kind: str, seen: dict[str, int]) -> None:
    needed = ["25"] + (["60", "62"] if kind == "mt940" else [])
    for tag in needed:
        if tag not in seen:
            name = {
                "25": ":25: (account)",
                "60": ":60F: (opening balance)",
                "62": ":62F: (closing balance)",
            }[tag]
            raise StatementError(f"line {block.first_line}", f"the statement has no {name}")


def _kind(block: _Block) -> str:
    tags = {tag for _, tag, _ in block.tags()}
    return "mt942" if ("34F" in tags or "13D" in tags) and not tags & {"60F", "60M"} else "mt940"


def _balance(data: dict[str, Any], keys: tuple[str, ...], where: str) -> tuple[int, date] | None:
    for key in keys:
        bal = data.get(key)
        if bal is not None:
            amount = bal.amount
            ccy = currency_code(amount.currency, where)
            return to_minor(amount.amount, ccy, where), date(
                bal.date.year, bal.date.month, bal.date.day
            )
    return None


def _swift_sub(details: str, key: str) -> str | None:
    for found_key, value in _SWIFT_SUB.findall(details):
        if found_key == key:
            return clean(value)
    return None


def _line(data: dict[str, Any], where: str) -> ParsedLine:
    amount = data["amount"]
    ccy = currency_code(amount.currency, where)
    raw = " ".join((data.get("transaction_details") or "").split())
    description = join_text([data.get("purpose") or raw, data.get("additional_purpose")])
    booked = data.get("entry_date") or data.get("guessed_entry_date") or data["date"]
    is_return = data.get("transaction_code") in _RETURN_GVC
    name = clean(data.get("applicant_name")) or _swift_sub(raw, "NAME")
    return ParsedLine(
        booking_date=date(booked.year, booked.month, booked.day),
        value_date=date(data["date"].year, data["date"].month, data["date"].day),
        amount=to_minor(amount.amount, ccy, where),
        currency=ccy,
        bank_reference=clean(data.get("bank_reference")),
        end_to_end_id=clean(data.get("end_to_end_reference")) or _swift_sub(raw, "EREF"),
        creditor_reference=rf_reference(description) or rf_reference(raw),
        counterparty_name=name,
        counterparty_account=clean(data.get("applicant_iban") or data.get("gvc_applicant_iban"))
        or _swift_sub(raw, "IBAN"),
        description=description,
        reversal=data.get("status") in ("RC", "RD"),
        return_code=(clean(data.get("return_debit_notes")) if is_return else None)
        or _swift_sub(raw, "RTRN"),
        bank_code=clean(data.get("id")),
        position=where,
    )


def _statement(block: _Block) -> ParsedStatement:
    kind = _kind(block)
    _check_order(block, kind)
    try:
        parsed = mt940.parse(block.text(), options=_OPTIONS)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise StatementError(f"line {block.first_line}", f"unreadable statement: {exc}") from None
    data = parsed.data
    tags = {tag: n for n, tag, _ in block.tags()}
    opening = _balance(
        data,
        ("final_opening_balance", "intermediate_opening_balance"),
        f"line {tags.get('60F') or tags.get('60M')}",
    )
    closing = _balance(
        data,
        ("final_closing_balance", "intermediate_closing_balance"),
        f"line {tags.get('62F') or tags.get('62M')}",
    )
    entry_lines = [number for number, tag, _ in block.tags() if tag == "61"]
    lines = [_line(t.data, f"line {n}") for t, n in zip(parsed, entry_lines, strict=True)]
    return _assemble(block, kind, data, lines, opening, closing)


def _assemble(
    block: _Block,
    kind: str,
    data: dict[str, Any],
    lines: list[ParsedLine],
    opening: tuple[int, date] | None,
    closing: tuple[int, date] | None,
) -> ParsedStatement:
    iban, account = iban_or_account(data.get("account_identification"))
    currency = data.get("currency") or (lines[0].currency if lines else None)
    number = "/".join(x for x in (data.get("statement_number"), data.get("sequence_number")) if x)
    return ParsedStatement(
        format=kind,
        statement_id="/".join(x for x in (clean(data.get("transaction_reference")), number) if x)
        or None,
        iban=iban,
        account_number=account,
        bic=None,
        currency=currency_code(currency, f"line {block.first_line}"),
        opening_balance=opening[0] if opening else None,
        opening_date=opening[1] if opening else None,
        closing_balance=closing[0] if closing else None,
        closing_date=closing[1] if closing else None,
        lines=tuple(lines),
        position=f"line {block.first_line}",
    )


def decode(data: bytes) -> str:
    """UTF-8 when it is; else ISO 8859-1, which SWIFT's character set fits in."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse(data: bytes) -> list[ParsedStatement]:
    return [_statement(block) for block in _blocks(decode(data))]
