"""OFX 1.x (SGML) and 2.x (XML) bank and credit-card statements, tokenised by `ofxtools`.

Only ofxtools' parser is used (header + element tree), not its model layer: the models refuse
real banks' files over spec niceties (a 10-digit BANKID), while the tree holds everything we
read. ofxtools tokenises with a regex and never expands entities (`&xxe;` stays literal text),
and a DOCTYPE or ENTITY declaration is refused before it sees the file anyway. Only the five
predefined XML entities are decoded. A file without the OFX header (some banks send the bare
<OFX> body) is read as OFX 1.02.
"""

from __future__ import annotations

import io
import re
import warnings
from datetime import date
from typing import Any
from xml.sax.saxutils import unescape

from ofxtools import Types
from ofxtools.header import OFXHeaderError
from ofxtools.Parser import OFXTree, ParseError

from .common import (
    ParsedLine,
    ParsedStatement,
    StatementError,
    clean,
    currency_code,
    iban_or_account,
    is_bic,
    rf_reference,
    to_minor,
)

_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_BARE_HEADER = (
    b"OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\n"
    b"CHARSET:1252\nCOMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n"
)
_ENTITIES = {"&quot;": '"', "&apos;": "'"}
_STATEMENTS = ("STMTRS", "CCSTMTRS")


def _text(elem: Any, path: str) -> str | None:
    raw = elem.findtext(path)
    return clean(unescape(raw, _ENTITIES)) if raw else None


def _date(raw: str | None, where: str) -> date:
    """The bank's own calendar day: the first 8 digits, once ofxtools accepts the whole
    timestamp (converting to UTC could move a late-evening posting to the next day)."""
    if raw is None:
        raise StatementError(where, "missing: a date is mandatory here")
    try:
        Types.DateTime().convert(raw)
    except ValueError:
        raise StatementError(where, f"{raw!r} is not an OFX date (YYYYMMDD...)") from None
    return date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))


def _amount(raw: str | None, ccy: str, where: str) -> int:
    if raw is None:
        raise StatementError(where, "missing: an amount is mandatory here")
    return to_minor(raw, ccy, where)


def _line(tr: Any, ccy: str, where: str) -> ParsedLine:
    memo = _text(tr, "MEMO") or ""
    amount = _amount(_text(tr, "TRNAMT"), ccy, f"{where}/TRNAMT")
    posted = _date(_text(tr, "DTPOSTED"), f"{where}/DTPOSTED")
    avail = _text(tr, "DTAVAIL")
    return ParsedLine(
        booking_date=posted,
        value_date=_date(avail, f"{where}/DTAVAIL") if avail else None,
        amount=amount,
        currency=ccy,
        bank_reference=_text(tr, "FITID"),
        end_to_end_id=None,
        creditor_reference=rf_reference(memo),
        counterparty_name=_text(tr, "NAME") or _text(tr, "PAYEE/NAME"),
        counterparty_account=_text(tr, "BANKACCTTO/ACCTID") or _text(tr, "CCACCTTO/ACCTID"),
        description=memo,
        # A correction that deletes an earlier transaction is the only reversal OFX marks.
        reversal=_text(tr, "CORRECTACTION") == "DELETE",
        return_code=None,
        bank_code=_text(tr, "TRNTYPE"),
        position=where,
    )


def _statement(rs: Any, where: str) -> ParsedStatement:
    ccy = currency_code(_text(rs, "CURDEF"), f"{where}/CURDEF")
    acct = rs.find("BANKACCTFROM")
    if acct is None:
        acct = rs.find("CCACCTFROM")
    if acct is None or _text(acct, "ACCTID") is None:
        raise StatementError(f"{where}/BANKACCTFROM", "missing: the statement names no ACCTID")
    iban, number = iban_or_account(_text(acct, "ACCTID"))
    bankid = _text(acct, "BANKID")
    lines = [
        _line(tr, ccy, f"{where}/STMTTRN {i}")
        for i, tr in enumerate(rs.iterfind("BANKTRANLIST/STMTTRN"), 1)
    ]
    ledger = rs.find("LEDGERBAL")
    closing = None
    if ledger is not None:
        here = f"{where}/LEDGERBAL"
        closing = (
            _amount(_text(ledger, "BALAMT"), ccy, f"{here}/BALAMT"),
            _date(_text(ledger, "DTASOF"), f"{here}/DTASOF"),
        )
    return ParsedStatement(
        format="ofx",
        statement_id=None,
        iban=iban,
        account_number=number,
        bic=bankid if is_bic(bankid) else None,
        currency=ccy,
        opening_balance=None,
        opening_date=None,
        closing_balance=closing[0] if closing else None,
        closing_date=closing[1] if closing else None,
        lines=tuple(lines),
        position=where,
    )


def _refuse_declarations(data: bytes) -> None:
    match = _DECLARATION.search(data)
    if match:
        line = data.count(b"\n", 0, match.start()) + 1
        raise StatementError(
            f"line {line}",
            "the OFX has a DOCTYPE/ENTITY declaration; OFX needs none, and entities could "
            "read files or expand without bound, so the file is refused",
        )


def _tree(data: bytes) -> Any:
    body = data.lstrip()
    if body[:5].upper() == b"<OFX>":
        data = _BARE_HEADER + body
    tree = OFXTree()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # private tags (<INTU.BID>) are skipped
            return tree.parse(io.BytesIO(data))
    except OFXHeaderError:
        raise StatementError("header", "the OFX header is malformed") from None
    except (ParseError, IndexError, ValueError) as exc:
        detail = str(exc.args[0] if exc.args else exc).split(" in ", 1)[0][:200]
        raise StatementError("OFX body", f"malformed OFX markup: {detail}") from None


def parse(data: bytes) -> list[ParsedStatement]:
    _refuse_declarations(data)
    root = _tree(data)
    found = [el for el in root.iter() if el.tag in _STATEMENTS]
    return [_statement(rs, f"{rs.tag} {i}") for i, rs in enumerate(found, 1)]
