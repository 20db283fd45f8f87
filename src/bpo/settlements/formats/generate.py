"""Big, valid statement files for tests and benchmarks (opening + Σ lines = closing).

Each line has a unique bank reference, a booking date spread over one month, a counterparty
with a valid IBAN, and remittance text with an invoice number. Built as joined strings: 100,000
lines take about a second or two.

Parse speed measured on the 2-core dev container (`python -m bpo.settlements.formats.generate`,
parse_statements on 100,000 lines): camt.053 (60 MB) 17 s ≈ 5,800 lines/s; MT940 (19 MB)
26 s ≈ 3,800 lines/s, three quarters of it inside the mt-940 package. Both linear (10,000 lines:
1.4 s and 2.2 s). Below the 20,000 lines/s aimed for; see camt.py for where the time goes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape

from bpo.ledger.money import exponent

_NAMES = (
    "Acme GmbH",
    "Globex SA",
    "Initech Ltd",
    "Umbrella BV",
    "Stark & Co",
    "Wayne plc",
    "Hooli Inc",
    "Vandelay Imports",
    "Soylent AG",
    "Tyrell Corp",
)
_START = date(2025, 3, 1)


@dataclass(frozen=True)
class _Line:
    minor: int  # signed
    booked: date
    ref: str
    name: str
    iban: str
    invoice: str


def _iban(rng: random.Random) -> str:
    """A German IBAN with correct check digits (ISO 13616 mod 97)."""
    bban = f"{rng.randrange(10**17, 10**18)}"
    check = 98 - int(bban + "131400") % 97  # 'DE' = 13 14, then '00'
    return f"DE{check:02d}{bban}"


def _lines(count: int, seed: int) -> Iterator[_Line]:
    rng = random.Random(seed)
    for i in range(count):
        minor = rng.randrange(100, 500_000) * (1 if rng.random() < 0.55 else -1)
        yield _Line(
            minor=minor,
            booked=_START + timedelta(days=i * 30 // max(count, 1)),
            ref=f"BR{seed:04d}{i:09d}",
            name=rng.choice(_NAMES),
            iban=_iban(rng),
            invoice=f"INV-2025-{rng.randrange(1, 10**6):06d}",
        )


def _decimal(minor: int, digits: int, sep: str) -> str:
    """Unsigned minor units as decimal text ('1234' -> '12.34')."""
    value = abs(minor)
    if digits == 0:
        return str(value)
    whole, part = divmod(value, 10**digits)
    return f"{whole}{sep}{part:0{digits}d}"


def _camt_entry(line: _Line, ccy: str, digits: int) -> str:
    credit = line.minor > 0
    party = "Dbtr" if credit else "Cdtr"
    return (
        f'<Ntry><Amt Ccy="{ccy}">{_decimal(line.minor, digits, ".")}</Amt>'
        f"<CdtDbtInd>{'CRDT' if credit else 'DBIT'}</CdtDbtInd><RvslInd>false</RvslInd>"
        f"<Sts>BOOK</Sts><BookgDt><Dt>{line.booked}</Dt></BookgDt>"
        f"<ValDt><Dt>{line.booked}</Dt></ValDt><AcctSvcrRef>{line.ref}</AcctSvcrRef>"
        "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly>"
        "</Domn></BkTxCd><NtryDtls><TxDtls>"
        f"<Refs><EndToEndId>E2E-{line.ref}</EndToEndId></Refs>"
        f"<RltdPties><{party}><Nm>{escape(line.name)}</Nm></{party}>"
        f"<{party}Acct><Id><IBAN>{line.iban}</IBAN></Id></{party}Acct></RltdPties>"
        f"<RmtInf><Ustrd>Payment {line.invoice} {escape(line.name)}</Ustrd></RmtInf>"
        "</TxDtls></NtryDtls></Ntry>\n"
    )


def _camt_balance(code: str, minor: int, ccy: str, digits: int, day: date) -> str:
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="{ccy}">{_decimal(minor, digits, ".")}</Amt>'
        f"<CdtDbtInd>{'CRDT' if minor >= 0 else 'DBIT'}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>\n"
    )


def camt053(
    lines: int, *, iban: str = "DE89370400440532013000", currency: str = "EUR", seed: int = 0
) -> bytes:
    """A camt.053.001.02 message with one statement of `lines` entries."""
    digits = exponent(currency)
    opening = 1_000_000 * 10**digits
    items = list(_lines(lines, seed))
    closing = opening + sum(x.minor for x in items)
    last = items[-1].booked if items else _START
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">'
        f"<BkToCstmrStmt><GrpHdr><MsgId>GEN{seed}</MsgId><CreDtTm>{last}T23:00:00</CreDtTm>"
        f"</GrpHdr><Stmt><Id>STMT-{seed}-{lines}</Id><ElctrncSeqNb>{seed + 1}</ElctrncSeqNb>"
        f"<CreDtTm>{last}T23:00:00</CreDtTm><Acct><Id><IBAN>{iban}</IBAN></Id>"
        f"<Ccy>{currency}</Ccy></Acct>\n",
        _camt_balance("OPBD", opening, currency, digits, _START - timedelta(days=1)),
        _camt_balance("CLBD", closing, currency, digits, last),
        *(_camt_entry(x, currency, digits) for x in items),
        "</Stmt></BkToCstmrStmt></Document>\n",
    ]
    return "".join(parts).encode()


def _mt_balance(tag: str, minor: int, ccy: str, digits: int, day: date) -> str:
    mark = "C" if minor >= 0 else "D"
    return f":{tag}:{mark}{day:%y%m%d}{ccy}{_decimal(minor, digits, ',')}\n"


def _mt_entry(line: _Line, digits: int) -> str:
    mark = "C" if line.minor > 0 else "D"
    gvc = "166" if mark == "C" else "177"
    return (
        f":61:{line.booked:%y%m%d%m%d}{mark}{_decimal(line.minor, digits, ',')}"
        f"NTRFNONREF//{line.ref}\n"
        f":86:{gvc}?00SEPA-UEBERWEISUNG?20EREF+E2E-{line.ref}?21SVWZ+Payment {line.invoice}"
        f"?30COBADEFFXXX?31{line.iban}?32{line.name[:27]}\n"
    )


def mt940(
    lines: int, *, account: str = "DE89370400440532013000", currency: str = "EUR", seed: int = 0
) -> bytes:
    """An MT940 file with one statement of `lines` entries."""
    digits = exponent(currency)
    opening = 1_000_000 * 10**digits
    items = list(_lines(lines, seed))
    closing = opening + sum(x.minor for x in items)
    last = items[-1].booked if items else _START
    parts = [
        f":20:GEN{seed}\n:25:{account}\n:28C:{seed + 1}/1\n",
        _mt_balance("60F", opening, currency, digits, _START - timedelta(days=1)),
        *(_mt_entry(x, digits) for x in items),
        _mt_balance("62F", closing, currency, digits, last),
        "-\n",
    ]
    return "".join(parts).encode("latin-1")


def _measure() -> None:
    import time

    from . import parse_statements

    for name, make in (("camt053", camt053), ("mt940", mt940)):
        data = make(100_000)
        start = time.perf_counter()
        parsed = parse_statements(data)
        seconds = time.perf_counter() - start
        count = sum(len(s.lines) for s in parsed)
        print(
            f"{name}: {count} lines, {len(data) / 1e6:.1f} MB in {seconds:.2f} s "
            f"= {count / seconds:,.0f} lines/s"
        )


if __name__ == "__main__":
    _measure()
