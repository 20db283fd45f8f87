"""Sanctions list files into one shape: OFAC's SDN CSV files and OpenSanctions'
FollowTheMoney JSON lines become `ListEntry` rows.

OFAC keeps a person's birth dates, nationalities and document numbers inside the free-text
Remarks ("DOB 02 May 1961; nationality Iran; Passport A1234567 (Iran)"): they are pulled
out here. A file in another layout is refused whole with a `ListError` naming the file and
line; an alias or address row for an entry the sdn file does not have is skipped (OFAC's
three files are published separately and may be a day apart).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Final

import pycountry

from bpo.compliance.names import identifier

KINDS: Final = ("person", "organization", "vessel", "aircraft", "other")


@dataclass(frozen=True)
class ListEntry:
    source_id: str  # SDN ent_num (as a string), or the FollowTheMoney entity id
    kind: str  # one of KINDS
    name: str  # primary name as listed
    aliases: tuple[str, ...]
    countries: tuple[str, ...]  # ISO 3166-1 alpha-2 where known
    birth_dates: tuple[str, ...]  # "1961-05-02", "1961-05" or "1961": as precise as listed
    identifiers: tuple[str, ...]  # passport, registration, IMO numbers: upper, no spaces
    programs: tuple[str, ...]
    remarks: str

    def fingerprint(self) -> str:
        """sha256 of the content: the same entry listed again hashes the same (the order
        of its aliases, countries, … aside), any change to it hashes differently."""
        content = {k: sorted(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class ListError(ValueError):
    """A file that is not in the layout it should be; `where` names the file and line."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


# ---------------------------------------------------------------------------------- OFAC

_SDN_COLUMNS: Final = 12  # ent_num, SDN_Name, SDN_Type, Program, Title, Call_Sign,
# Vess_type, Tonnage, GRT, Vess_flag, Vess_owner, Remarks
_ALT_COLUMNS: Final = 5  # ent_num, alt_num, alt_type, alt_name, alt_remarks
_ADD_COLUMNS: Final = 6  # ent_num, add_num, address, city/state/postal, country, add_remarks
_OFAC_KINDS: Final = {"individual": "person", "vessel": "vessel", "aircraft": "aircraft", "": ""}


def parse_ofac(sdn: bytes, alt: bytes | None = None, add: bytes | None = None) -> list[ListEntry]:
    """The SDN file's entries, with the alt file's aliases and the add file's countries."""
    rows = {}
    for line, row in _rows("sdn", sdn, _SDN_COLUMNS):
        fields = _sdn_fields(f"sdn line {line}", row)
        if fields["source_id"] in rows:
            raise ListError(f"sdn line {line}", f"ent_num {fields['source_id']} listed twice")
        rows[fields["source_id"]] = fields
    for line, row in _rows("alt", alt, _ALT_COLUMNS):
        ent = _ent_num(f"alt line {line}", row[0])
        if ent in rows and row[3]:
            rows[ent]["aliases"].append(row[3])
    for line, row in _rows("add", add, _ADD_COLUMNS):
        ent = _ent_num(f"add line {line}", row[0])
        if ent in rows and (code := country_code(row[4])):
            rows[ent]["countries"].append(code)
    return [_entry(fields) for fields in rows.values()]


def _rows(which: str, data: bytes | None, columns: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells with OFAC's "-0-" as ""), each row checked for its width."""
    if data is None:
        return
    reader = csv.reader(io.StringIO(_text(which, data), newline=""))
    line = 1
    try:
        for row in reader:
            cells = [_cell(c) for c in row]
            if any(cells) and cells != ["\x1a"]:  # OFAC's files end with a DOS EOF byte
                if len(cells) != columns:
                    raise ListError(
                        f"{which} line {line}",
                        f"{len(cells)} columns where OFAC's {which} file has {columns}",
                    )
                yield line, cells
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ListError(f"{which} line {line}", f"not CSV: {exc}") from None


def _text(which: str, data: bytes) -> str:
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ListError(f"{which} line {line}", "binary data where a CSV file was expected")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # older OFAC files: Windows-1252


def _cell(value: str) -> str:
    value = value.strip()
    return "" if value == "-0-" else value


def _ent_num(where: str, value: str) -> str:
    if not (value.isascii() and value.isdigit()):
        raise ListError(where, f"ent_num {value[:40]!r} is not a number")
    return str(int(value))


def _sdn_fields(where: str, row: list[str]) -> dict[str, Any]:
    ent = _ent_num(where, row[0])
    if not row[1]:
        raise ListError(where, "SDN_Name is empty")
    if row[2].lower() not in _OFAC_KINDS:
        raise ListError(where, f"SDN_Type {row[2][:40]!r} is not individual, vessel or aircraft")
    facts = remark_facts(row[11])
    countries = facts["countries"] + ([c] if (c := country_code(row[9])) else [])
    ids = facts["identifiers"] + ([identifier(row[5])] if row[5] else [])
    return {
        "source_id": ent,
        "kind": _OFAC_KINDS[row[2].lower()] or "organization",
        "name": row[1],
        "aliases": [],
        "countries": countries,
        "birth_dates": facts["birth_dates"],
        "identifiers": ids,
        "programs": [p for p in re.split(r"[\[\]]+", row[3]) if p.strip()],
        "remarks": row[11],
    }


def _entry(fields: dict[str, Any]) -> ListEntry:
    fields = dict(fields)
    for name in ("aliases", "countries", "birth_dates", "identifiers", "programs"):
        fields[name] = tuple(dict.fromkeys(v.strip() for v in fields[name] if v.strip()))
    return ListEntry(**fields)


# ------------------------------------------------------------------------ OFAC's remarks

_MONTH_WORDS: Final = "jan feb mar apr may jun jul aug sep oct nov dec"
_MONTHS: Final = {m: i for i, m in enumerate(_MONTH_WORDS.split(), 1)}
_DATE: Final = re.compile(r"\b(?:(\d{1,2}) )?(?:([A-Za-z]{3})[a-z]* )?(\d{4})\b")
_ID_LABELS: Final = tuple(
    sorted(
        """Passport|Diplomatic Passport|Cedula No.|National ID No.|NIT #|R.F.C.|RFC|C.U.R.P.|
        Registration Number|Tax ID No.|Registration ID|RUC #|Folio Mercantil No.|
        Identification Number|Government Gazette Number|Company Number|UK Company Number|
        Matricula Mercantil No|Commercial Registry Number|MMSI|D.N.I.|D-U-N-S Number|C.R. No.|
        Business Registration Number|V.A.T. Number|RIF #|Trade License No.|
        Electoral Registry No.|Business Registration Document #|Driver's License No.|
        SWIFT/BIC|Italian Fiscal Code|Credencial electoral|Personal ID Card|
        National Foreign ID Number|Chamber of Commerce Number|SSN|Public Registration Number|
        Residency Number|BIK (RU)|I.F.E.|Birth Certificate Number|C.U.I.T.|LE Number|
        Certificate of Incorporation Number|C.U.I.P.|Turkish Identification Number|
        Numero de Identidad|RTN|Citizen's Card Number|Legal Entity Number|Branch Unit Number|
        United Social Credit Code Certificate (USCCC)|Registered Charity No.|
        Aircraft Manufacturer's Serial Number (MSN)|Aircraft Tail Number|
        Vessel Registration Identification""".replace("\n", "").split("|"),
        key=len,
        reverse=True,  # "Registration ID HRB" before "Registration"
    )
)
_ID_LABELS_STRIPPED: Final = tuple(label.strip() for label in _ID_LABELS)
_ID_END: Final = re.compile(r"\s\(|,\s|\s(?:issued|expires)\b")


def remark_facts(remarks: str) -> dict[str, list[str]]:
    """Birth dates, countries (nationality, citizenship, place of birth) and document
    numbers found in OFAC's Remarks field, in the order given."""
    facts: dict[str, list[str]] = {"birth_dates": [], "countries": [], "identifiers": []}
    for part in remarks.split(";"):
        part = part.strip().rstrip(".").removeprefix("alt. ").strip()
        if part.startswith("DOB "):
            facts["birth_dates"] += birth_dates(part[4:])
        elif m := re.match(r"(?:nationality|citizen):?\s+(?:possibly\s+)?(.+)", part):
            facts["countries"] += [c] if (c := country_code(m.group(1))) else []
        elif part.startswith("POB "):
            facts["countries"] += [c] if (c := country_code(part.split(",")[-1])) else []
        elif number := _document_number(part):
            facts["identifiers"].append(number)
    return facts


def _document_number(part: str) -> str:
    for label in _ID_LABELS_STRIPPED:
        if part.startswith(label + " "):
            value = _ID_END.split(part[len(label) + 1 :], maxsplit=1)[0]
            number = identifier(value)
            return number if any(ch.isdigit() for ch in number) else ""
    return ""


def birth_dates(text: str) -> list[str]:
    """ "02 May 1961" → 1961-05-02, "May 1961" → 1961-05, "circa 1961" → 1961, and
    "1960 to 1962" (or full dates either side) → every year of the range (at most 20)."""
    found = _DATE.findall(text)
    if " to " in text and len(found) >= 2:
        first, last = int(found[0][2]), int(found[-1][2])
        return [str(y) for y in range(first, min(last, first + 20) + 1)]
    out = []
    for day, month, year in found:
        m = _MONTHS.get(month[:3].lower()) if month else None
        if m and day:
            out.append(f"{year}-{m:02d}-{int(day):02d}")
        elif m:
            out.append(f"{year}-{m:02d}")
        else:
            out.append(year)
    return out


# OFAC's spellings that ISO 3166 (through pycountry) does not know.
_COUNTRIES: Final = {
    "russia": "RU",
    "korea, north": "KP",
    "north korea": "KP",
    "korea, south": "KR",
    "south korea": "KR",
    "turkey": "TR",
    "burma": "MM",
    "bahamas, the": "BS",
    "the gambia": "GM",
    "gambia, the": "GM",
    "congo, democratic republic of the": "CD",
    "congo, republic of the": "CG",
    "cote d ivoire": "CI",
    "kosovo": "XK",
    "macau": "MO",
    "brunei": "BN",
    "palestinian": "PS",
    "west bank": "PS",
    "region: gaza": "PS",
    "region: crimea": "UA",
    "region: northern mali": "ML",
    "eritrean": "ER",
    "netherlands antilles": "AN",
    "virgin islands, british": "VG",
    "macedonia, the former yugoslav republic of": "MK",
    "micronesia, federated states of": "FM",
    "iran": "IR",
    "syria": "SY",
    "laos": "LA",
    "vietnam": "VN",
    "taiwan": "TW",
    "united kingdom": "GB",
    "united states": "US",
    "czech republic": "CZ",
    "st. vincent and the grenadines": "VC",
    "st. kitts & nevis": "KN",
}


@lru_cache(maxsize=1024)
def country_code(name: str) -> str:
    """ISO 3166-1 alpha-2 of a country as OFAC names it ("" when it is none)."""
    text = name.strip().rstrip(".").strip()
    if not text or text.lower() == "undetermined":
        return ""
    if code := _COUNTRIES.get(text.lower()):
        return code
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        return ""


# ----------------------------------------------------------------------- FollowTheMoney

_FTM_KINDS: Final = {
    "Person": "person",
    "Organization": "organization",
    "Company": "organization",
    "LegalEntity": "organization",
    "PublicBody": "organization",
    "Vessel": "vessel",
    "Airplane": "aircraft",
}
_FTM_IDS: Final = (
    "idNumber",
    "passportNumber",
    "registrationNumber",
    "imoNumber",
    "taxNumber",
    "innCode",
    "ogrnCode",
    "leiCode",
    "swiftBic",
    "mmsi",
)


def parse_ftm(data: bytes) -> list[ListEntry]:
    """Person, organisation, vessel and aircraft entities of FollowTheMoney JSON lines; the
    Sanction, Address and Identification/Passport entities that point at one are folded
    into it (programs, countries, document numbers); other schemas are left out."""
    things: dict[str, dict[str, Any]] = {}
    others: list[tuple[str, dict[str, list[str]]]] = []
    for _line, entity in _json_lines(data):
        schema, props = entity["schema"], entity["properties"]
        if schema in _FTM_KINDS:
            if props.get("name"):
                things[entity["id"]] = _ftm_fields(entity)
        else:
            others.append((schema, props))
    addresses = {p["id"][0]: p for s, p in others if s == "Address" and p.get("id")}
    for schema, props in others:
        _fold(things, schema, props)
    for fields in things.values():
        topics = fields.pop("topics")
        fields["programs"] = fields["programs"] or topics  # no program named: its topics
        for ref in fields.pop("addresses"):
            fields["countries"] += addresses.get(ref, {}).get("country", [])
        fields["countries"] = [c.upper() for c in fields["countries"] if len(c) == 2]
    return [_entry(fields) for fields in things.values()]


def _json_lines(data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ListError(f"line {line}", "binary data where JSON lines were expected")
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            entity = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ListError(f"line {number}", f"not a JSON object: {exc}") from None
        yield number, _checked(f"line {number}", entity)


def _checked(where: str, entity: Any) -> dict[str, Any]:
    """An entity: a string id and schema, properties mapping names to lists of strings."""
    if not isinstance(entity, dict):
        raise ListError(where, "not a JSON object")
    if not isinstance(entity.get("id"), str) or not isinstance(entity.get("schema"), str):
        raise ListError(where, 'a FollowTheMoney entity needs an "id" and a "schema"')
    props = entity.get("properties", {})
    if not isinstance(props, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in props.values()
    ):
        raise ListError(where, '"properties" must map each property to a list of strings')
    # Addresses are folded by id: keep it with the properties.
    return {
        "id": entity["id"],
        "schema": entity["schema"],
        "properties": {**props, "id": [entity["id"]]},
    }


def _ftm_fields(entity: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, list[str]] = entity["properties"]
    names = props["name"]
    aliases = names[1:] + props.get("alias", []) + props.get("previousName", [])
    return {
        "source_id": entity["id"],
        "kind": _FTM_KINDS[entity["schema"]],
        "name": names[0],
        "aliases": [a for a in aliases if a != names[0]],
        "countries": props.get("country", [])
        + props.get("nationality", [])
        + props.get("citizenship", [])
        + props.get("jurisdiction", [])
        + props.get("flag", []),
        "birth_dates": props.get("birthDate", []),
        "identifiers": [identifier(v) for p in _FTM_IDS for v in props.get(p, [])],
        "programs": props.get("program", []) + props.get("programId", []),
        "topics": props.get("topics", []),
        "remarks": "; ".join(props.get("notes", [])),
        "addresses": props.get("addressEntity", []),
    }


def _fold(things: dict[str, dict[str, Any]], schema: str, props: dict[str, list[str]]) -> None:
    """A Sanction's programs, an Identification's or Passport's number and country."""
    if schema == "Sanction":
        for ref in props.get("entity", []):
            if ref in things:
                things[ref]["programs"] += props.get("program", []) + props.get("programId", [])
    elif schema in ("Identification", "Passport"):
        for ref in props.get("holder", []):
            if ref in things:
                things[ref]["identifiers"] += [identifier(v) for v in props.get("number", [])]
                things[ref]["countries"] += props.get("country", [])


# ------------------------------------------------------------------------------- detect

_HEAD: Final = 4 << 20  # an entity with many names and documents can be a long line


def detect(filename: str, data: bytes) -> str:
    """ "ofac_sdn", "ofac_alt", "ofac_add" or "ftm", from the content's first record."""
    head = data[:_HEAD].lstrip()
    if b"\x00" in head:
        raise ListError(filename, "binary data, not a sanctions list file")
    text = head.decode("utf-8-sig", errors="replace")
    if text.startswith("{"):
        try:
            _checked(filename, json.loads(text.splitlines()[0]))
        except ValueError:
            raise ListError(filename, "its first line is not a FollowTheMoney entity") from None
        return "ftm"
    try:
        first = next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error:
        first = []
    cells = [_cell(c) for c in first]
    if cells and cells[0].isascii() and cells[0].isdigit():
        if len(cells) == _SDN_COLUMNS:
            return "ofac_sdn"
        if len(cells) == _ALT_COLUMNS and cells[1].isdigit():
            return "ofac_alt"
        if len(cells) == _ADD_COLUMNS and cells[1].isdigit():
            return "ofac_add"
    raise ListError(filename, "not an OFAC sdn, alt or add CSV file, nor FollowTheMoney JSON lines")
