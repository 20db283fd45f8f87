"""Bank statement files -> normalised statements: ISO 20022 camt.052/053/054, SWIFT MT940/942,
OFX 1.x/2.x, BAI2 and mapped CSV. Pure: no database, no network, no file access.

The format is told by the content, never the file name. Every malformed file raises
`StatementError` naming the element, line or field; a file imports whole or not at all.
Whether opening + Σ lines = closing is the caller's check (`balance_gap` gives the numbers).
"""

from __future__ import annotations

import re

from . import bai2, camt, mt940, ofx
from . import csvfile as _csv
from .common import ParsedLine, ParsedStatement, StatementError, balance_gap
from .csvfile import CsvMapping

__all__ = [
    "CsvMapping",
    "ParsedLine",
    "ParsedStatement",
    "StatementError",
    "balance_gap",
    "detect_format",
    "parse_statements",
]

_HEAD = 65536
_MT940 = re.compile(r"^(\{1:F01|\{4:|:20:)", re.MULTILINE)
_BAI2 = re.compile(r"01,[^,\n]*,[^,\n]*,\d{6},")
_CSV_DELIMITERS = (",", ";", "\t", "|")


def _head(data: bytes) -> str:
    """The start of the file as text: UTF-16 by its BOM, else Latin-1 (never fails)."""
    head = data[:_HEAD]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    return head.decode("latin-1").lstrip("\ufeff\xef\xbb\xbf")


def _looks_csv(head: str) -> bool:
    lines = [line for line in head.splitlines() if line.strip()]
    if len(lines) < 2 or "\x00" in head:
        return False
    return any(lines[0].count(d) >= 1 and lines[1].count(d) >= 1 for d in _CSV_DELIMITERS)


def detect_format(data: bytes) -> str:
    """'camt' | 'mt940' | 'ofx' | 'bai2' | 'csv' from the content."""
    head = _head(data)
    text = head.lstrip()
    if "OFXHEADER" in text[:512] or re.match(r"(<\?xml[^>]*>\s*)?<\?OFX|<OFX>", text, re.I):
        return "ofx"
    if text.startswith("<"):
        return "camt"  # any XML goes to the hardened parser, which names what it is not
    if _BAI2.match(text):
        return "bai2"
    if _MT940.search(head) and ":25:" in head:
        return "mt940"
    if _looks_csv(head):
        return "csv"
    raise StatementError("file", "unknown content: not camt, MT940/MT942, OFX, BAI2 or CSV")


def parse_statements(
    data: bytes,
    *,
    mapping: CsvMapping | None = None,
    account: str | None = None,
    currency: str | None = None,
) -> list[ParsedStatement]:
    """Every statement (account) in the file, in file order."""
    kind = detect_format(data)
    if kind == "camt":
        return camt.parse(data)
    if kind == "mt940":
        return mt940.parse(data)
    if kind == "ofx":
        return ofx.parse(data)
    if kind == "bai2":
        return bai2.parse(data)
    if mapping is None:
        raise StatementError("file", "a CSV file needs the bank account's column mapping")
    return _csv.parse(data, mapping, account, currency)
