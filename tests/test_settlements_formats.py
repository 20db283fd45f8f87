"""Bank statement parsers (bpo.settlements.formats): pure, no database.

Reads only tests/data/statements (real samples with their licences, see its README).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from bpo.settlements.formats import (
    CsvMapping,
    ParsedStatement,
    StatementError,
    balance_gap,
    detect_format,
    generate,
    parse_statements,
)

DATA = Path(__file__).parent / "data" / "statements"
BROKEN = {"camt053.v2.wrong.xml", "sepa_snippet_broken.sta", "decimal_error.ofx"}
# Refused on purpose: its first statement is in DEM (withdrawn from ISO 4217), see README.
REFUSED = {"cmxl-mt940.sta"}
SAMPLES = sorted(p for p in DATA.glob("*/*") if p.name not in {"LICENSE"} and p.suffix != ".md")
CSV_MAPPING = CsvMapping(
    date="Buchungstag",
    value_date="Valuta",
    amount="Betrag",
    currency="Waehrung",
    description="Verwendungszweck",
    reference="Referenz",
    counterparty="Auftraggeber",
    counterparty_account="IBAN",
    date_format="%d.%m.%Y",
    decimal=",",
    delimiter=";",
)
FORMAT_OF_FOLDER = {"camt": "camt", "mt940": "mt940", "ofx": "ofx", "bai2": "bai2", "csv": "csv"}
# Real samples whose balances do not add up, with the gap the file really has.
KNOWN_GAPS = {
    # genkgo/camt's minimal sample: the CLBD balance is "27.00 SEK DBIT" against an EUR
    # opening of 18.15 and an 8.85 credit (the sample exercises parsing, not arithmetic).
    ("camt053.v2.minimal.xml", 0): -2700 - (1815 + 885),
    ("camt053.v4.xml", 0): -2700 - (1815 + 885),
    ("camt053.v8.xml", 0): -2700 - (1815 + 885),
    # wolph/mt940's SEPA snippet: the second statement's entries miss 300.08 EUR.
    ("sepa_snippet.sta", 1): 30008,
}


def parse(path: Path) -> list[ParsedStatement]:
    mapping = CSV_MAPPING if path.parent.name == "csv" else None
    return parse_statements(path.read_bytes(), mapping=mapping, account="DE89370400440532013000")


def test_every_sample_folder_has_its_licence_and_the_readme_names_the_broken_ones() -> None:
    readme = (DATA / "README.md").read_text()
    for folder in ("camt", "mt940", "ofx"):
        assert (DATA / folder / "LICENSE").is_file()
    for name in BROKEN:
        assert name in readme
    assert len(SAMPLES) == 17  # 7 camt, 4 mt940, 4 ofx, 1 bai2, 1 csv


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_detect_format_of_every_sample(path: Path) -> None:
    assert detect_format(path.read_bytes()) == FORMAT_OF_FOLDER[path.parent.name]


@pytest.mark.parametrize(
    "path", [p for p in SAMPLES if p.name not in BROKEN | REFUSED], ids=lambda p: p.name
)
def test_every_good_sample_imports(path: Path) -> None:
    statements = parse(path)
    for index, s in enumerate(statements):
        assert s.currency and s.position
        assert s.iban or s.account_number
        for line in s.lines:
            assert line.position and isinstance(line.amount, int)
        gap = balance_gap(s)
        if gap is not None:
            assert gap == KNOWN_GAPS.get((path.name, index), 0), (path.name, index, gap)


@pytest.mark.parametrize(
    ("name", "where", "words"),
    [
        ("camt053.v2.wrong.xml", "BkToCstmrStmt", "no statement"),
        ("sepa_snippet_broken.sta", "line 6", "second :25:"),
        ("decimal_error.ofx", "STMTRS 1/STMTTRN 1/TRNAMT", "'$120' is not a number"),
        ("cmxl-mt940.sta", "line 4", "'DEM' is not an ISO 4217 currency"),
    ],
)
def test_broken_samples_are_refused_naming_the_place(name: str, where: str, words: str) -> None:
    path = next(p for p in SAMPLES if p.name == name)
    with pytest.raises(StatementError) as caught:
        parse(path)
    assert caught.value.where == where
    assert words in caught.value.detail


def test_camt053_multi_statement_facts() -> None:
    statements = parse(DATA / "camt" / "camt053.v2.multi.statement.xml")
    assert [s.statement_id for s in statements] == [
        "253EURNL26VAYB8060476890",
        "254EURNL26VAYB8060476890",
    ]
    first, second = statements
    assert first.format == "camt.053.001.02"
    assert first.iban == "NL26VAYB8060476890" and first.currency == "EUR"
    assert (first.opening_balance, first.closing_balance) == (1815, 2700)
    assert (first.opening_date, first.closing_date) == (date(2014, 12, 30), date(2014, 12, 31))
    assert second.lines[0].amount == -700 and second.position == "Stmt[2]"
    line = first.lines[0]
    assert line.amount == 885 and line.end_to_end_id == "000000001"
    assert line.booking_date == date(2014, 12, 31) and line.value_date == date(2015, 1, 2)
    assert line.description == "Transaction Description 1"
    assert line.counterparty_account == "NL56AGDH9619008421"
    assert line.bank_code == "544" and line.position == "Stmt[1]/Ntry[1]"


def test_camt_versions_052_054_and_v8() -> None:
    (report,) = parse(DATA / "camt" / "camt052.v2.xml")
    assert report.format == "camt.052.001.02" and report.currency == "SEK"
    assert report.lines[0].amount == -20_000_000  # 200000 SEK debit
    assert report.lines[0].bank_code == "PAYM/0001/0003"
    assert report.opening_balance is None and balance_gap(report) is None
    (note,) = parse(DATA / "camt" / "camt054.v2.xml")
    assert note.format == "camt.054.001.02" and note.position == "Ntfctn[1]"
    assert note.lines[0].creditor_reference == "ISR ref number V1"
    assert note.lines[0].end_to_end_id == "MUELL/FINP/RA12345"
    (v8,) = parse(DATA / "camt" / "camt053.v8.xml")
    assert v8.format == "camt.053.001.08"
    assert v8.lines[0].counterparty_name == "NAME NAME"  # under Pty since v3+
    assert v8.lines[0].bank_code == "PMNT/RCDT/BOOK"
    assert v8.lines[0].bank_reference == "AAAASESS-FP-CN_98765/01"


def test_mt940_sepa_facts() -> None:
    statements = parse(DATA / "mt940" / "sepa_snippet.sta")
    assert len(statements) == 2
    first = statements[0]
    assert first.format == "mt940" and first.account_number == "50880050/0194787400888"
    assert (first.opening_balance, first.closing_balance) == (76665649, 112525040)
    line = first.lines[0]
    assert line.amount == 5099005 and line.bank_reference == "0724710333343453"
    assert line.booking_date == date(2007, 9, 4) and line.value_date == date(2007, 9, 7)
    assert line.end_to_end_id == "EndToEndId TFNR 22 004 00001"
    assert line.counterparty_account == "DE14508800500194785000"
    assert line.bank_code == "NTRF" and line.position == "line 5"
    returned = statements[1].lines[0]
    assert returned.amount == -8 and returned.return_code == "914"


def test_ofx_facts() -> None:
    (s,) = parse(DATA / "ofx" / "bank_medium.ofx")
    assert s.format == "ofx" and s.currency == "CAD"
    assert s.account_number == "12300 000012345678" and s.closing_balance == 38234
    assert [line.amount for line in s.lines] == [-660, -31667, -2200]
    assert s.lines[1].bank_code == "CHECK" and s.lines[1].position == "STMTRS 1/STMTTRN 2"
    assert s.lines[0].bank_reference == "0000123456782009040100001"
    assert parse(DATA / "ofx" / "bank_small.ofx") == []  # <OFX></OFX>: nothing to import


def test_bai2_and_csv_facts() -> None:
    (bai,) = parse(DATA / "bai2" / "sample.bai2")
    assert bai.account_number == "1234567890" and bai.currency == "EUR"
    assert (bai.opening_balance, bai.closing_balance) == (1_000_000, 1_080_500)
    assert [x.amount for x in bai.lines] == [100_000, -25_000, 5_500]
    assert bai.lines[2].creditor_reference == "RF18539007547034"
    assert balance_gap(bai) == 0
    (csv,) = parse(DATA / "csv" / "sample.csv")
    assert csv.iban == "DE89370400440532013000" and csv.currency == "EUR"
    assert [x.amount for x in csv.lines] == [123456, -8990, 50000]
    assert csv.lines[2].counterparty_name == "Globex; SA" and csv.lines[2].position == "line 4"
    assert csv.lines[0].creditor_reference == "RF18539007547034"


CAMT_HEAD = (
    b'<?xml version="1.0"?>\n'
    b"%s\n"
    b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
    b"<Stmt><Id>&x;</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy>"
    b"</Acct></Stmt></BkToCstmrStmt></Document>\n"
)
LAUGHS = (
    b'<!DOCTYPE Document [<!ENTITY l0 "LOLSECRET">'
    + b"".join(
        b'<!ENTITY l%d "&l%d;&l%d;&l%d;&l%d;&l%d;">' % (i, i - 1, i - 1, i - 1, i - 1, i - 1)
        for i in range(1, 10)
    )
    + b'<!ENTITY x "&l9;">]>'
)


@pytest.mark.parametrize(
    "doctype",
    [
        LAUGHS,
        b'<!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        b'<!DOCTYPE Document [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>',
        b'<!DOCTYPE Document SYSTEM "http://127.0.0.1:9/x.dtd" [<!ENTITY x "y">]>',
    ],
    ids=["billion-laughs", "file", "http", "external-dtd"],
)
def test_xml_entities_are_refused(doctype: bytes) -> None:
    with pytest.raises(StatementError) as caught:
        parse_statements(CAMT_HEAD % doctype)
    assert "DOCTYPE" in caught.value.detail
    for secret in ("LOLSECRET", "root:", "127.0.0.1"):
        assert secret not in str(caught.value)


def test_doctype_in_utf16_is_refused_too() -> None:
    data = (CAMT_HEAD % LAUGHS).decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
    with pytest.raises(StatementError) as caught:
        parse_statements(data.encode("utf-16"))
    assert "DOCTYPE" in caught.value.detail and "LOLSECRET" not in str(caught.value)


def test_ofx2_xxe_is_refused() -> None:
    ofx = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        b'<!DOCTYPE OFX [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b'<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" '
        b'NEWFILEUID="NONE"?>\n<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>USD</CURDEF>'
        b"<BANKACCTFROM><BANKID>1</BANKID><ACCTID>2</ACCTID><ACCTTYPE>CHECKING</ACCTTYPE>"
        b"</BANKACCTFROM><BANKTRANLIST><STMTTRN><TRNTYPE>CREDIT</TRNTYPE>"
        b"<DTPOSTED>20250301</DTPOSTED><TRNAMT>1.00</TRNAMT><FITID>1</FITID>"
        b"<MEMO>&xxe;</MEMO></STMTTRN></BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>"
    )
    assert detect_format(ofx) == "ofx"
    with pytest.raises(StatementError) as caught:
        parse_statements(ofx)
    assert caught.value.where == "line 2" and "root:" not in str(caught.value)
    # Without the declaration ofxtools keeps an entity reference as literal text.
    (s,) = parse_statements(ofx.replace(ofx.splitlines()[1] + b"\n", b""))
    assert s.lines[0].description == "&xxe;" and s.lines[0].amount == 100


def test_truncated_camt_names_a_line() -> None:
    data = (DATA / "camt" / "camt053.v2.multi.statement.xml").read_bytes()
    with pytest.raises(StatementError) as caught:
        parse_statements(data[: len(data) // 2])
    assert caught.value.where.startswith("line ")
    assert int(caught.value.where.split()[1]) > 1
    assert "not well-formed XML" in caught.value.detail


def test_too_many_decimals_are_refused_naming_the_place() -> None:
    data = (DATA / "camt" / "camt053.v2.multi.statement.xml").read_bytes()
    bad = data.replace(b">7.00</Amt>", b">7.005</Amt>")
    with pytest.raises(StatementError) as caught:
        parse_statements(bad)
    assert caught.value.where == "Stmt[2]/Ntry[1]/Amt"
    assert caught.value.detail == "7.005 has 3 decimals; EUR has 2"
    mt = generate.mt940(3).replace(b":60F:C250228EUR1000000,00", b":60F:C250228EUR1000000,001")
    with pytest.raises(StatementError) as caught:
        parse_statements(mt)
    assert caught.value.where == "line 4" and "3 decimals" in caught.value.detail


def test_camt_missing_parts_and_bad_numbers() -> None:
    data = (DATA / "camt" / "camt053.v2.multi.statement.xml").read_bytes()
    cases = {
        b'<Amt Ccy="EUR">27.00</Amt>': (b'<Amt Ccy="EUR">27,OO</Amt>', "Stmt[1]/Bal[2]/Amt"),
        b'<Amt Ccy="EUR">8.85</Amt>': (b"", "Stmt[1]/Ntry[1]/Amt"),
        b"<Ccy>EUR</Ccy>": (b"<Ccy>XYZ</Ccy>", "Stmt[1]/Acct/Ccy"),
    }
    for old, (new, where) in cases.items():
        with pytest.raises(StatementError) as caught:
            parse_statements(data.replace(old, new, 1))
        assert caught.value.where == where, caught.value
    no_account = data.replace(b"<IBAN>NL26VAYB8060476890</IBAN>", b"", 1)
    with pytest.raises(StatementError, match="neither IBAN"):
        parse_statements(no_account)


def test_mt940_bad_balance_is_refused() -> None:
    data = generate.mt940(2).replace(b":62F:C", b":62F:X")
    with pytest.raises(StatementError) as caught:
        parse_statements(data)
    assert caught.value.where == "line 9" and "not a balance" in caught.value.detail


def test_bai2_truncated_and_wrong_totals() -> None:
    data = (DATA / "bai2" / "sample.bai2").read_bytes()
    with pytest.raises(StatementError) as caught:
        parse_statements(data[:200])
    assert "99 file trailer" in caught.value.detail
    with pytest.raises(StatementError) as caught:
        parse_statements(data.replace(b"49,2211000", b"49,2211001"))
    assert caught.value.where.startswith("49")


def test_csv_needs_a_mapping_with_existing_columns() -> None:
    data = (DATA / "csv" / "sample.csv").read_bytes()
    with pytest.raises(StatementError) as caught:
        parse_statements(data)
    assert caught.value.where == "file" and "column mapping" in caught.value.detail
    mapping = CsvMapping(date="Buchungstag", amount="Amount", delimiter=";")
    with pytest.raises(StatementError) as caught:
        parse_statements(data, mapping=mapping, currency="EUR")
    assert caught.value.where == "column 'Amount'"
    with pytest.raises(StatementError) as caught:
        mapping.check(["Buchungstag", "Betrag"])
    assert "'Amount'" in caught.value.where


def test_csv_debit_credit_columns_and_thousands() -> None:
    data = b'date,out,in,text\n2025-03-01,,"1,234.50",Invoice 7\n2025-03-02,20.00,,fee\n'
    mapping = CsvMapping(date="date", debit="out", credit="in", description="text")
    (s,) = parse_statements(data, mapping=mapping, account="12345", currency="USD")
    assert [x.amount for x in s.lines] == [123450, -2000]
    assert s.account_number == "12345" and s.iban is None


@pytest.mark.parametrize("data", [b"hello world", b"\x00\x01\x02binary", b"", b"{}"])
def test_unknown_content_is_refused(data: bytes) -> None:
    with pytest.raises(StatementError) as caught:
        detect_format(data)
    assert caught.value.where == "file"


def test_xml_that_is_not_camt_is_refused() -> None:
    with pytest.raises(StatementError, match="not an ISO 20022 camt"):
        parse_statements(b"<?xml version='1.0'?><html><body>hi</body></html>")


@pytest.mark.parametrize("make", [generate.camt053, generate.mt940], ids=["camt053", "mt940"])
def test_generated_files_parse_back_and_balance(make: Callable[..., bytes]) -> None:
    data = make(1000, seed=7)
    (s,) = parse_statements(data)
    assert len(s.lines) == 1000 and balance_gap(s) == 0
    assert len({x.bank_reference for x in s.lines}) == 1000
    assert s.lines[0].booking_date.month == s.lines[-1].booking_date.month == 3
    assert all("INV-2025-" in x.description for x in s.lines)
    assert s.lines[0].counterparty_name and s.lines[0].end_to_end_id


def test_generated_jpy_has_no_decimals() -> None:
    (s,) = parse_statements(generate.camt053(10, currency="JPY"))
    assert s.currency == "JPY" and balance_gap(s) == 0


MT942 = b""":20:MT942REF
:25:DE89370400440532013000
:28C:1/1
:34F:EUR0,
:13D:2503011200+0100
:61:2503010301C100,00NTRFNONREF//REF1
:86:166?00GUTSCHRIFT?20EREF+E2E1?21SVWZ+INV-1 RF18539007547034?32ACME GMBH
:61:2503010301RD25,50NTRFNONREF//REF2
:86:109?00RUECKLASTSCHRIFT?20EREF+E2E2?32FOO?34AC04
:90D:1EUR25,50
:90C:1EUR100,00
-
"""


def test_mt942_interim_report_with_a_reversal() -> None:
    assert detect_format(MT942) == "mt940"
    (s,) = parse_statements(MT942)
    assert s.format == "mt942" and s.iban == "DE89370400440532013000"
    assert s.opening_balance is None and balance_gap(s) is None
    paid, returned = s.lines
    assert paid.amount == 10000 and paid.creditor_reference == "RF18539007547034"
    assert paid.end_to_end_id == "E2E1" and paid.counterparty_name == "ACME GMBH"
    # RD: the reversal of a debit, so money comes back; GVC 109 is a returned direct debit.
    assert returned.amount == 2550 and returned.reversal and returned.return_code == "AC04"
