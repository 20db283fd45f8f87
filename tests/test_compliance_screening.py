"""The sanctions screening engine alone (no database, no web): the OFAC and FollowTheMoney
parsers on real and made-up files, name normalisation, and the index's quality on a labelled
set built from the real SDN list (recall and false positives at the chosen THRESHOLD).

Reads only tests/data/sanctions/ (see its README.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bpo.compliance import lists, names, scoring, synthetic
from bpo.compliance.lists import ListEntry, ListError
from bpo.compliance.scoring import Index, Query

DATA = Path(__file__).resolve().parent / "data" / "sanctions"


def _read(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture(scope="module")
def entries() -> list[ListEntry]:
    return lists.parse_ofac(_read("ofac_sdn.csv"), _read("ofac_alt.csv"), _read("ofac_add.csv"))


@pytest.fixture(scope="module")
def by_id(entries: list[ListEntry]) -> dict[str, ListEntry]:
    return {e.source_id: e for e in entries}


@pytest.fixture(scope="module")
def index(entries: list[ListEntry]) -> Index:
    return Index(entries)


# ---------------------------------------------------------------------------------- OFAC


def test_the_real_ofac_files_parse_whole(entries: list[ListEntry]) -> None:
    kinds = {k: sum(1 for e in entries if e.kind == k) for k in lists.KINDS}
    assert len(entries) == 8976
    assert kinds == {
        "person": 4620,
        "organization": 3673,
        "vessel": 406,
        "aircraft": 277,
        "other": 0,
    }
    # 11,910 alt rows, two of which repeat an alias of their entry.
    assert sum(len(e.aliases) for e in entries) == 11908
    assert len({e.source_id for e in entries}) == len(entries)
    assert sum(1 for e in entries if e.birth_dates) > 4000
    assert sum(1 for e in entries if e.countries) > 8000


def test_a_known_person_with_aliases_dates_and_documents(by_id: dict[str, ListEntry]) -> None:
    abbas = by_id["2674"]
    assert (abbas.kind, abbas.name, abbas.aliases) == (
        "person",
        "ABBAS, Abu",
        ("ZAYDAN, Muhammad",),
    )
    assert abbas.birth_dates == ("1948-12-10",)
    assert abbas.programs == ("SDGT",)
    nasrallah = by_id["2686"]
    assert nasrallah.birth_dates == ("1960-08-31", "1953-08-31", "1955-08-31", "1958-08-31")
    assert nasrallah.countries == ("LB",)  # place of birth, Lebanon
    assert nasrallah.identifiers == ("042833",)
    esbati = by_id["15653"]
    assert esbati.identifiers == ("D9004869",)
    assert esbati.programs == ("NPWMD", "IFSR")  # "NPWMD] [IFSR" in the file


def test_organisations_get_their_addresses_countries(by_id: dict[str, ListEntry]) -> None:
    bank = by_id["306"]
    assert bank.kind == "organization"
    assert bank.aliases == ("NATIONAL BANK OF CUBA",)
    assert set(bank.countries) == {"CH", "ES", "JP", "PA"}  # its branches' addresses
    assert bank.remarks == "a.k.a. 'BNC'."


def test_a_vessel_has_its_imo_number_and_flag(by_id: dict[str, ListEntry]) -> None:
    vessel = by_id["15036"]
    assert (vessel.kind, vessel.name, vessel.aliases) == ("vessel", "ARTAVIL", ("ABADAN", "SHONA"))
    assert "IMO9187629" in vessel.identifiers
    assert vessel.countries == ("IR",)


@pytest.mark.parametrize(
    ("remarks", "dates"),
    [
        ("DOB 1961", ["1961"]),
        ("DOB 02 May 1961", ["1961-05-02"]),
        ("DOB May 1961", ["1961-05"]),
        ("DOB circa 1961", ["1961"]),
        ("DOB 1960 to 1962", ["1960", "1961", "1962"]),
        ("DOB 01 Jan 1960 to 31 Dec 1961", ["1960", "1961"]),
        ("DOB 02 May 1961; alt. DOB 1963; POB Tehran, Iran", ["1961-05-02", "1963"]),
    ],
)
def test_birth_dates_in_ofac_remarks(remarks: str, dates: list[str]) -> None:
    assert lists.remark_facts(remarks)["birth_dates"] == dates


def test_countries_and_documents_in_ofac_remarks() -> None:
    facts = lists.remark_facts(
        "DOB 02 May 1961; nationality Iran; alt. citizen Korea, North; Passport A 123-4567 "
        "(Iran) issued 01 Jan 2000; National ID No. 12345678 (Iran); "
        "Vessel Registration Identification IMO 9187629; Gender Male."
    )
    assert facts["countries"] == ["IR", "KP"]
    assert facts["identifiers"] == ["A1234567", "12345678", "IMO9187629"]


SDN_ROW = '36,"AEROCARIBBEAN AIRLINES",-0- ,"CUBA",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n'


@pytest.mark.parametrize(
    ("sdn", "where", "words"),
    [
        (SDN_ROW + '173,"ANGLO",-0- ,"CUBA"\r\n', "sdn line 2", "4 columns"),
        (SDN_ROW * 2, "sdn line 2", "listed twice"),
        (SDN_ROW + SDN_ROW.replace("36", "X36", 1), "sdn line 2", "not a number"),
        (SDN_ROW + SDN_ROW.replace("-0- ", "company", 1), "sdn line 2", "SDN_Type"),
        ('36,12,"aka","AERO-CARIBBEAN",-0- \r\n', "sdn line 1", "5 columns"),  # an alt file
        (SDN_ROW + "\x00\x01\x02garbage", "sdn line 2", "binary"),
    ],
)
def test_an_sdn_file_in_the_wrong_layout_is_refused_naming_the_line(
    sdn: str, where: str, words: str
) -> None:
    with pytest.raises(ListError) as refused:
        lists.parse_ofac(sdn.encode())
    assert refused.value.where == where
    assert words in refused.value.detail
    assert str(refused.value).startswith(where)


def test_alt_and_add_files_are_checked_and_unknown_entries_skipped() -> None:
    alt = '36,12,"aka","AERO-CARIBBEAN",-0- \r\n999,13,"aka","NOBODY",-0- \r\n'
    add = '36,25,-0- ,"Havana","Cuba",-0- \r\n'
    (entry,) = lists.parse_ofac(SDN_ROW.encode(), alt.encode(), add.encode())
    assert entry.aliases == ("AERO-CARIBBEAN",)
    assert entry.countries == ("CU",)
    with pytest.raises(ListError) as refused:
        lists.parse_ofac(SDN_ROW.encode(), (alt + "36,14,aka\r\n").encode())
    assert refused.value.where == "alt line 3"
    with pytest.raises(ListError) as refused:
        lists.parse_ofac(SDN_ROW.encode(), None, SDN_ROW.encode())
    assert refused.value.where == "add line 1"


def test_detect_tells_the_files_apart() -> None:
    assert lists.detect("sdn.csv", _read("ofac_sdn.csv")) == "ofac_sdn"
    assert lists.detect("x.csv", _read("ofac_alt.csv")) == "ofac_alt"
    assert lists.detect("x.csv", _read("ofac_add.csv")) == "ofac_add"
    assert lists.detect("entities.ftm.json", _read("ftm_sample.jsonl")) == "ftm"
    for data in (b"name,amount\nAcme,12\n", b"%PDF-1.7\n\x00\x01", b"", b'{"a": 1}\n'):
        with pytest.raises(ListError) as refused:
            lists.detect("upload.bin", data)
        assert refused.value.where == "upload.bin"


# ------------------------------------------------------------------------ FollowTheMoney


def test_followthemoney_entities_and_what_points_at_them() -> None:
    found = {e.source_id: e for e in lists.parse_ftm(_read("ftm_sample.jsonl"))}
    assert set(found) == {
        "ex-person-ivanov",
        "ex-company-northwind",
        "ex-org-crescent",
        "ex-legal-hongyuan",
        "ex-vessel-polaris",
        "ex-plane-ra",
    }  # the Sanction, Address, Passport and Ownership entities are folded or left out
    ivanov = found["ex-person-ivanov"]
    assert ivanov.kind == "person"
    assert ivanov.name == "Pyotr Sergeyevich IVANOV"
    assert ivanov.aliases == ("Пётр Сергеевич Иванов", "Petr IVANOV")
    assert ivanov.birth_dates == ("1968-03-14",)
    assert ivanov.countries == ("RU", "CY")
    assert ivanov.identifiers == ("721234567", "C7654321")  # its Passport entity's number
    assert ivanov.programs == ("EXAMPLE-RUSSIA",)  # from its Sanction entity
    northwind = found["ex-company-northwind"]
    assert northwind.kind == "organization"
    assert northwind.countries == ("RU", "CY")  # jurisdiction, then its address
    assert "Northwind Shipping Ltd" in northwind.aliases
    assert found["ex-vessel-polaris"].identifiers[0] == "IMO9234567"
    assert found["ex-plane-ra"].kind == "aircraft"
    assert found["ex-legal-hongyuan"].kind == "organization"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("{not json", "not a JSON object"),
        ('["a list"]', "not a JSON object"),
        ('{"id": "x", "properties": {}}', '"schema"'),
        ('{"id": "x", "schema": "Person", "properties": {"name": "Bob"}}', "list of strings"),
    ],
)
def test_a_bad_followthemoney_line_is_refused_naming_it(line: str, words: str) -> None:
    good = json.dumps({"id": "a", "schema": "Person", "properties": {"name": ["Ann Lee"]}})
    with pytest.raises(ListError) as refused:
        lists.parse_ftm(f"{good}\n\n{line}\n".encode())
    assert refused.value.where == "line 3"
    assert words in refused.value.detail


def test_a_fingerprint_follows_the_content_only() -> None:
    entry = ListEntry(
        "1", "person", "DOE, John", ("DOE, J.", "DOE, Johnny"), ("US",), (), (), (), ""
    )
    same = ListEntry(
        "1", "person", "DOE, John", ("DOE, Johnny", "DOE, J."), ("US",), (), (), (), ""
    )
    other = ListEntry("1", "person", "DOE, John", ("DOE, J.",), ("US",), (), (), (), "")
    assert len(entry.fingerprint()) == 64
    assert entry.fingerprint() == same.fingerprint()
    assert entry.fingerprint() != other.fingerprint()


# --------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("José  Ñúñez-Müller", "jose muller nunez"),
        ("NÚÑEZ MÜLLER, José", "jose muller nunez"),
        ("Владимир Путин", "putin vladimir"),
        ("ООО Ромашка", "romashka"),  # noqa: RUF001 (OOO in Cyrillic is the point)
        ("Romashka LLC", "romashka"),
        ("Romashka Limited Liability Company", "romashka"),
        ("Anglo-Caribbean Co., Ltd.", "anglo caribbean"),
        ("Banco Mercantil S.A. de C.V.", "banco mercantil"),
        ("Banco Mercantil S A de C V", "banco mercantil"),
        ("Nordwind GmbH", "nordwind"),
        ("Nordwind AG", "nordwind"),
        ("PJSC Nordwind", "nordwind"),
        ("Ibrahim AL-BAGHDADI", "albaghdadi ibrahim"),
        ("Ibrahim al Baghdadi", "albaghdadi ibrahim"),
        ("O'Brien, Patrick", "obrien patrick"),
        ("P.L.M. Group", "group plm"),
        ("Αλέξης Τσίπρας", "alexis tsipras"),
        ("李方伟", "fangwei li"),
    ],
)
def test_normalise(name: str, normal: str) -> None:
    assert names.normalise(name) == normal


def test_arabic_script_is_transliterated_to_consonants() -> None:
    assert names.tokens("محمد بن سلمان") == ["mhmd", "bn", "slmn"]
    assert names.skeleton("muhammad") == names.skeleton("mhmd") == "mhmd"
    assert names.key("Khussein".lower()) == names.key("husein")


def test_tokens_keep_order_and_a_name_of_legal_forms_keeps_its_words() -> None:
    assert names.tokens("SMITH, John Paul") == ["smith", "john", "paul"]
    assert names.tokens("Limited Company") == ["limited", "company"]
    assert names.tokens("!!! ---") == []
    assert len(names.tokens("word " * 5000)) == names.MAX_TOKENS


# ----------------------------------------------------------------------------- screening


@pytest.fixture(scope="module")
def labelled(entries: list[ListEntry]) -> list[synthetic.Case]:
    return synthetic.cases(entries, n_positive=1000, n_negative=1000, seed=7)


def test_recall_and_false_positives_on_the_labelled_set(
    index: Index, labelled: list[synthetic.Case]
) -> None:
    found = index.screen_many([c.query for c in labelled])
    positives = [(c, hits) for c, hits in zip(labelled, found, strict=True) if c.truth]
    negatives = [hits for c, hits in zip(labelled, found, strict=True) if c.truth is None]
    recalled = sum(any(h.source_id == c.truth for h in hits) for c, hits in positives)
    false = sum(bool(hits) for hits in negatives)
    assert len(positives) == len(negatives) == 1000
    assert recalled / len(positives) >= 0.95
    assert false / len(negatives) <= 0.02


def test_every_kind_of_variant_is_in_the_labelled_set(labelled: list[synthetic.Case]) -> None:
    assert {c.variant for c in labelled} >= {"typo", "cyrillic", "reorder", "spelling", "negative"}


def test_a_hit_explains_itself(index: Index, by_id: dict[str, ListEntry]) -> None:
    hits = index.screen(Query("Mostafa Esbaty", kind="person", birth_date="1961-07-17"))
    hit = hits[0]
    assert hit.source_id == "15653"
    assert hit.matched_name == "ESBATI, Mostafa"
    assert hit.fingerprint == by_id["15653"].fingerprint()
    assert 0.9 < hit.name_score < 1.0 < hit.name_score + 0.1
    assert hit.score == pytest.approx(min(1.0, hit.name_score + scoring.BIRTH_DATE_MATCH))
    explained = hit.explanation
    assert json.loads(json.dumps(explained)) == explained
    assert explained["query"] == "esbaty mostafa"
    assert explained["matched"] == "esbati mostafa"
    assert explained["alias"] is False
    pairs = {(m["query"], m["list"]) for m in explained["tokens"]["matched"]}
    assert pairs == {("mostafa", "mostafa"), ("esbaty", "esbati")}
    assert explained["tokens"]["query_only"] == explained["tokens"]["list_only"] == []
    assert explained["signals"] == [
        {"signal": "birth_date", "effect": 0.08, "detail": "born 1961-07-17, as listed"}
    ]
    assert explained["score"] == round(hit.score, 4)


def _score(index: Index, query: Query, source_id: str) -> float:
    hits = index.screen(query, threshold=0.0, limit=50)
    return next(h.score for h in hits if h.source_id == source_id)


def test_signals_raise_and_lower_the_score(index: Index) -> None:
    plain = _score(index, Query("Hasan Nasralah"), "2686")
    assert 0.85 < plain < 0.99  # one letter short: room to rise
    assert _score(index, Query("Hasan Nasralah", country="LB"), "2686") > plain
    assert _score(index, Query("Hasan Nasralah", birth_date="1955"), "2686") > plain
    assert _score(index, Query("Hasan Nasralah", identifiers=("042 833",)), "2686") > plain
    assert _score(index, Query("Hasan Nasralah", birth_date="1990-01-01"), "2686") < plain
    assert _score(index, Query("Hasan Nasralah", kind="organization"), "2686") < plain
    assert _score(index, Query("Hasan Nasralah", kind="person"), "2686") == plain


def test_a_vessel_by_its_imo_number(index: Index) -> None:
    (hit, *_) = index.screen(Query("Artavil", identifiers=("IMO 9187629",)))
    assert hit.source_id == "15036"
    assert [s["signal"] for s in hit.explanation["signals"]] == ["identifier"]
    (alias, *_) = index.screen(Query("SHONA"))
    assert (alias.source_id, alias.explanation["alias"]) == ("15036", True)


@pytest.mark.parametrize("name", ["", "   ", "!!! ...", "\u200b\u00a0"])
def test_an_empty_name_is_refused(index: Index, name: str) -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        index.screen(Query(name))
    with pytest.raises(ValueError, match="no letters or digits"):
        index.screen_many([Query("John Smith"), Query(name)])


def test_an_absurdly_long_name_returns_quickly(index: Index) -> None:
    started = time.perf_counter()
    index.screen(Query("Muhammad Ali Hassan Ahmad " * 400))
    index.screen(Query("x" * 10_000))
    index.screen(Query("".join(chr(0x4E00 + i) for i in range(10_000))))
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "name",
    [
        "习近平",
        "李方伟",
        "محمد بن سلمان",
        "أسامة بن لادن",
        "김정은",
        "山田太郎",
        "עמר",
        "🙂 Ltd",
        "Ω≈ç√",
    ],
)
def test_names_in_any_script_do_not_crash(index: Index, name: str) -> None:
    for hit in index.screen(Query(name), threshold=0.0):
        assert 0.0 <= hit.score <= 1.0


def test_a_cyrillic_spelling_finds_the_latin_listing(index: Index) -> None:
    hits = index.screen(Query("Мостафа Эсбати"))
    assert hits[0].source_id == "15653"


def test_screening_a_followthemoney_list() -> None:
    ftm = Index(lists.parse_ftm(_read("ftm_sample.jsonl")))
    assert ftm.screen(Query("Petr Ivanov"))[0].source_id == "ex-person-ivanov"
    assert ftm.screen(Query("Норд Винд Марин"))[0].source_id == "ex-company-northwind"
    assert ftm.screen(Query("Polaris Star", identifiers=("9234567",)))[0].score == 1.0
    assert ftm.screen(Query("Jane Doe")) == []
