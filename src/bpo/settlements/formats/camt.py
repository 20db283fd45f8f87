"""ISO 20022 camt.052 / camt.053 / camt.054 (any version) with a hardened lxml parser.

Elements are found by their local names under whatever namespace the document declares, so
001.02 … 001.08 and later read alike. Entries stream through `iterparse` and are dropped once
read: the tree never holds more than one statement's header and one entry, so memory stays
flat and time linear. Measured on the 2-core dev container: a generated 100,000-entry
camt.053 (60 MB) in 17 s, ≈5,800 entries/s (10,000 in 1.4 s); about two thirds is lxml
creating a Python proxy per element while walking each entry (`flatten`).

Any DOCTYPE is refused, before and after parsing: a bank statement never needs one, and it is
the door for billion-laughs and external entities (file://, http://). The parser itself also
never resolves entities, loads a DTD or touches the network.
"""

from __future__ import annotations

import io
import re
from datetime import date
from typing import Any

from lxml import etree

from .common import (
    ParsedLine,
    ParsedStatement,
    StatementError,
    currency_code,
    iban_or_account,
    iso_date,
    join_text,
    to_minor,
)

# The hardening the brief and OWASP ask for; iterparse takes the same switches.
HARDENED: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
}

# The statement element of each message: camt.053 Stmt, camt.052 Rpt, camt.054 Ntfctn.
_KINDS = {"Stmt": "camt.053", "Rpt": "camt.052", "Ntfctn": "camt.054"}
_VERSION = re.compile(r"camt\.05[234]\.\d{3}\.\d{2}")
_DOCTYPE_MARKS = (b"<!DOCTYPE", b"<!ENTITY", "<!DOCTYPE".encode("utf-16-le"))
_SKIPPED_STATUS = {"PDNG", "INFO"}  # not bookings: they are booked (again) later


def hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(**HARDENED)


def _refuse_doctype(where: str) -> StatementError:
    return StatementError(
        where,
        "the XML has a DOCTYPE (a DTD or entity declarations); bank statements need none, "
        "and they could expand entities or read files, so the file is refused",
    )


def _ns(tag: str) -> str:
    return tag[: tag.index("}") + 1] if tag.startswith("{") else ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


Flat = dict[str, list[str]]
_LOCAL: dict[str, str] = {}  # '{ns}Amt' -> 'Amt' (a few dozen names per document version)


def flatten(elem: Any, prefix: str = "", out: Flat | None = None) -> Flat:
    """Every leaf under `elem` by its local-name path ('NtryDtls/TxDtls/Refs/EndToEndId'),
    values in document order, the currency attribute as 'Amt@Ccy'. One walk per entry is
    several times faster than a dozen ElementPath look-ups; repeated TxDtls simply append."""
    out = {} if out is None else out
    for child in elem:
        tag = child.tag
        if not isinstance(tag, str):  # a processing instruction
            continue
        local = _LOCAL.get(tag)
        if local is None:
            local = tag[tag.rfind("}") + 1 :]
            if len(_LOCAL) < 4096:  # bounded: a hostile file may invent names
                _LOCAL[tag] = local
        name = prefix + local
        if len(child):
            flatten(child, name + "/", out)
            continue
        text = child.text
        if text and not text.isspace():
            out.setdefault(name, []).append(text)
        if local == "Amt":
            out.setdefault(name + "@Ccy", []).append(child.get("Ccy") or "")
    return out


def _get(flat: Flat, *paths: str, skip: str | None = None) -> str | None:
    """The first value of the first path that has one (`skip`: a placeholder to ignore)."""
    for path in paths:
        for value in flat.get(path, ()):
            text = " ".join(value.split())
            if text and text != skip:
                return text
    return None


def _sign(indicator: str | None, where: str) -> int:
    if indicator == "CRDT":
        return 1
    if indicator == "DBIT":
        return -1
    raise StatementError(where, f"CdtDbtInd is {indicator!r}; expected CRDT or DBIT")


def _amount(flat: Flat, where: str, fallback_ccy: str | None = None) -> tuple[int, str]:
    """Signed minor units and currency of an Amt + CdtDbtInd pair."""
    raw = _get(flat, "Amt")
    if raw is None:
        raise StatementError(f"{where}/Amt", "missing: an amount is mandatory here")
    ccy = currency_code(_get(flat, "Amt@Ccy") or fallback_ccy, f"{where}/Amt@Ccy")
    minor = to_minor(raw, ccy, f"{where}/Amt")
    if minor < 0:
        raise StatementError(f"{where}/Amt", f"{raw} is negative; camt signs by CdtDbtInd")
    return minor * _sign(_get(flat, "CdtDbtInd"), f"{where}/CdtDbtInd"), ccy


def _date(flat: Flat, name: str, where: str) -> date | None:
    raw = _get(flat, f"{name}/Dt", f"{name}/DtTm")
    return None if raw is None else iso_date(raw, f"{where}/{name}")


def _bank_code(flat: Flat) -> str | None:
    domain = _get(flat, "BkTxCd/Domn/Cd")
    if domain:
        family = _get(flat, "BkTxCd/Domn/Fmly/Cd")
        sub = _get(flat, "BkTxCd/Domn/Fmly/SubFmlyCd")
        return "/".join(x for x in (domain, family, sub) if x)
    return _get(flat, "BkTxCd/Prtry/Cd")


_TX = "NtryDtls/TxDtls/"


def _counterparty(flat: Flat, credit: bool) -> tuple[str | None, str | None]:
    """For money in the other party is the debtor, for money out the creditor (v2 puts Nm
    directly under the role, v8 under Pty); a bank that fills only the other role still
    gives us a name rather than none."""
    for role in ("Dbtr", "Cdtr") if credit else ("Cdtr", "Dbtr"):
        party = f"{_TX}RltdPties/{role}"
        name = _get(flat, f"{party}/Nm", f"{party}/Pty/Nm")
        account = _get(flat, f"{party}Acct/Id/IBAN", f"{party}Acct/Id/Othr/Id")
        if name or account:
            return name, account
    return None, None


def _description(flat: Flat) -> str:
    ustrd: list[str | None] = list(flat.get(f"{_TX}RmtInf/Ustrd", ()))
    return join_text(ustrd) or join_text([_get(flat, f"{_TX}AddtlTxInf", "AddtlNtryInf")])


def parse_entry(entry: Any, where: str) -> ParsedLine | None:
    """One Ntry; None for a pending or information-only entry."""
    flat = flatten(entry)
    if (_get(flat, "Sts", "Sts/Cd") or "BOOK") in _SKIPPED_STATUS:
        return None
    amount, ccy = _amount(flat, where)
    booked = _date(flat, "BookgDt", where)
    valued = _date(flat, "ValDt", where)
    if booked is None:  # BookgDt is optional in the schema; the value date stands in
        if valued is None:
            raise StatementError(f"{where}/BookgDt", "missing: an entry needs a booking date")
        booked = valued
    name, account = _counterparty(flat, amount >= 0)
    return ParsedLine(
        booking_date=booked,
        value_date=valued,
        amount=amount,
        currency=ccy,
        bank_reference=_get(flat, "AcctSvcrRef", "NtryRef", f"{_TX}Refs/AcctSvcrRef"),
        end_to_end_id=_get(flat, f"{_TX}Refs/EndToEndId", skip="NOTPROVIDED"),
        creditor_reference=_get(flat, f"{_TX}RmtInf/Strd/CdtrRefInf/Ref"),
        counterparty_name=name,
        counterparty_account=account,
        description=_description(flat),
        reversal=(_get(flat, "RvslInd") or "").lower() in ("true", "1"),
        return_code=_get(flat, f"{_TX}RtrInf/Rsn/Cd", f"{_TX}RtrInf/Rsn/Prtry"),
        bank_code=_bank_code(flat),
        position=where,
    )


def _balances(stmt: Any, ns: str, where: str, ccy: str) -> dict[str, tuple[int, date | None]]:
    found: dict[str, tuple[int, date | None]] = {}
    for i, bal in enumerate(stmt.iterfind(f"{ns}Bal"), 1):
        flat = flatten(bal)
        kind = _get(flat, "Tp/CdOrPrtry/Cd", "Tp/CdOrPrtry/Prtry")
        if kind in ("OPBD", "PRCD", "CLBD") and kind not in found:
            here = f"{where}/Bal[{i}]"
            found[kind] = (_amount(flat, here, ccy)[0], _date(flat, "Dt", here))
    return found


def _currency(head: Flat, stmt: Any, ns: str, where: str, lines: list[ParsedLine]) -> str:
    """Acct/Ccy; an account without one (the schema allows it) takes its amounts' currency."""
    code = _get(head, "Acct/Ccy")
    if code is None:
        amt = stmt.find(f"{ns}Bal/{ns}Amt")
        code = amt.get("Ccy") if amt is not None else (lines[0].currency if lines else None)
    if code is None:
        raise StatementError(f"{where}/Acct/Ccy", "missing, and no amount names a currency")
    return currency_code(code, f"{where}/Acct/Ccy")


def parse_statement(stmt: Any, where: str, fmt: str, lines: list[ParsedLine]) -> ParsedStatement:
    """The statement header (its entries were read, and removed, as they streamed by)."""
    ns = _ns(stmt.tag)
    head = flatten(stmt)  # small: the entries are gone
    if stmt.find(f"{ns}Acct") is None:
        raise StatementError(f"{where}/Acct", "missing: a statement must name its account")
    iban, other = iban_or_account(_get(head, "Acct/Id/IBAN"))
    if iban is None:
        iban, other = iban_or_account(_get(head, "Acct/Id/Othr/Id") or other)
    if iban is None and other is None:
        raise StatementError(f"{where}/Acct/Id", "missing: neither IBAN nor Othr/Id")
    ccy = _currency(head, stmt, ns, where, lines)
    bal = _balances(stmt, ns, where, ccy)
    opening = bal.get("OPBD") or bal.get("PRCD")
    closing = bal.get("CLBD")
    return ParsedStatement(
        format=fmt,
        statement_id=_get(head, "Id", "ElctrncSeqNb"),
        iban=iban,
        account_number=other,
        bic=_get(head, "Acct/Svcr/FinInstnId/BIC", "Acct/Svcr/FinInstnId/BICFI"),
        currency=ccy,
        opening_balance=opening[0] if opening else None,
        opening_date=opening[1] if opening else None,
        closing_balance=closing[0] if closing else None,
        closing_date=closing[1] if closing else None,
        lines=tuple(lines),
        position=where,
    )


def _has_doctype(data: bytes) -> bool:
    head = data[:65536]
    return any(mark in head for mark in _DOCTYPE_MARKS)


def _check_root(root: Any) -> str:
    """The message format ('camt.053.001.02'), refusing documents that are not camt."""
    if root.getroottree().docinfo.doctype or root.getroottree().docinfo.internalDTD is not None:
        raise _refuse_doctype("DOCTYPE")
    message = root[0] if len(root) else None
    if _local(root.tag) != "Document" or message is None:
        raise StatementError(_local(root.tag), "not an ISO 20022 camt message (no Document)")
    version = _VERSION.search(_ns(root.tag))
    return version.group(0) if version else "camt"


def parse(data: bytes) -> list[ParsedStatement]:
    if _has_doctype(data):
        raise _refuse_doctype("DOCTYPE")
    return _Reader(data).read()


class _Reader:
    """Streams Stmt/Rpt/Ntfctn and their Ntry elements, dropping each once read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.fmt: str | None = None
        self.statements: list[ParsedStatement] = []
        self.lines: list[ParsedLine] = []
        self.index = dict.fromkeys(_KINDS, 0)
        self.entries = 0

    def read(self) -> list[ParsedStatement]:
        tags = ["{*}Ntry", *(f"{{*}}{kind}" for kind in _KINDS)]
        events = etree.iterparse(io.BytesIO(self.data), events=("end",), tag=tags, **HARDENED)
        try:
            for _, elem in events:
                self._element(elem)
            root = events.root
        except etree.XMLSyntaxError as exc:
            raise StatementError(f"line {exc.lineno}", f"not well-formed XML: {exc.msg}") from None
        fmt = self.fmt or _check_root(root)
        if not self.statements:
            where = _local(root[0].tag)
            raise StatementError(where, f"no statement in this {fmt} message (Stmt/Rpt/Ntfctn)")
        return self.statements

    def _element(self, elem: Any) -> None:
        if self.fmt is None:
            self.fmt = _check_root(elem.getroottree().getroot())
        kind = _local(elem.tag)
        if kind == "Ntry":
            self.entries += 1
            where = f"{self._current()}/Ntry[{self.entries}]"
            line = parse_entry(elem, where)
            if line is not None:
                self.lines.append(line)
        elif kind in _KINDS and elem.getparent() is not None:
            self.index[kind] += 1
            fmt = self.fmt if self.fmt != "camt" else _KINDS[kind]
            where = f"{kind}[{self.index[kind]}]"
            self.statements.append(parse_statement(elem, where, fmt, self.lines))
            self.lines, self.entries = [], 0
        else:
            return
        parent = elem.getparent()
        if parent is not None:  # read: free it (linear memory for 100,000 entries)
            parent.remove(elem)

    def _current(self) -> str:
        """The statement being read, for positions: its element follows once it ends."""
        kind = next((k for k in _KINDS if self.fmt and _KINDS[k] in self.fmt), "Stmt")
        return f"{kind}[{self.index[kind] + 1}]"
