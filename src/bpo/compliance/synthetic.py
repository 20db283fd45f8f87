"""A labelled screening set built from a real list, for tests and benchmarks.

Positives: sampled entries' names and aliases as counterparties' records spell them:
re-ordered, a middle name dropped, a typo, written in Cyrillic (a small Latin → Cyrillic
map, the screening must read it back), another common spelling (Mohammed/Muhammad,
Sergei/Sergey), words run together or apart, the legal form spelt out, changed or dropped,
case and accents; about half carry the entry's country or birth date as a firm would know
it. Each is labelled with the entry's source_id.

Negatives: common real names from many countries (given name and surname) and ordinary
company names ("Acme Trading GmbH"), labelled None: none may hit. A generated name all of
whose words appear in one listed name is left out: screening should raise it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

from bpo.compliance import names
from bpo.compliance.lists import ListEntry
from bpo.compliance.scoring import Query


class Case(NamedTuple):
    query: Query
    truth: str | None  # the listed entry's source_id, None for a negative
    variant: str  # how the name was changed ("negative" for one)


_GIVEN_WORDS: Final = (
    "James John Robert Michael William David Richard Thomas Mary Patricia Jennifer Linda "
    "Elizabeth Susan Jessica Sarah Karen Emma Olivia Sophie Lucas Liam Noah Oliver Jack "
    "Harry George Charlotte Amelia Hans Klaus Jurgen Stefan Ursula Petra Sabine Monika "
    "Pierre Jean Michel Philippe Camille Juliette Nathalie Giuseppe Giovanni Marco Luca "
    "Francesca Chiara Alessandro Jose Juan Carlos Luis Miguel Javier Carmen Lucia Isabel "
    "Pablo Diego Sofia Valentina Joao Pedro Ana Beatriz Piotr Katarzyna Agnieszka Tomasz "
    "Jan Lars Erik Ingrid Astrid Nils Sven Anders Freya Priya Rahul Anil Sunita Deepak "
    "Arjun Kavya Wei Li Jing Yan Hiroshi Yuki Kenji Haruto Mei Chloe Ethan Mason Logan "
    "Aiden Grace Hannah Zoe Nora Fatima Aisha Leila Yasmin Olga Tatiana Natalia Irina Ivan "
    "Dmitri Pavel Andrei Nikolai Kwame Chinedu Amara Thabo Sipho Mohammed Ahmed Ali Hassan "
    "Omar Yusuf Ibrahim Khalid Mustafa Reza Hossein Mehdi Sergei Alexei Vladimir Igor Oleg "
    "Abdullah Karim Tariq Samir Nadia Maryam Zainab Hamid Rashid Farid Jorge Alejandro"
)
_GIVEN: Final = tuple(_GIVEN_WORDS.split())
_SURNAME_WORDS: Final = (
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore "
    "Jackson Martin Thompson White Harris Clark Lewis Walker Hall Young King Wright Scott "
    "Green Baker Adams Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker "
    "Evans Edwards Collins Stewart Morris Murphy Cook Rogers Morgan Cooper Peterson Reed "
    "Bailey Bell Kelly Howard Ward Cox Richardson Wood Watson Brooks Bennett Gray Hughes "
    "Price Muller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann Schulz "
    "Dubois Durand Lefebvre Moreau Laurent Rossi Russo Ferrari Esposito Bianchi Romano "
    "Colombo Garcia Fernandez Lopez Martinez Sanchez Perez Gomez Ruiz Silva Santos "
    "Oliveira Costa Pereira Nowak Kowalski Wisniewski Jensen Nielsen Hansen Larsen "
    "Johansson Lindberg Patel Sharma Gupta Singh Kumar Iyer Reddy Nair Wang Zhang Liu Chen "
    "Yang Huang Zhou Tanaka Suzuki Takahashi Watanabe Sato Kim Park Lee Choi Nguyen Tran "
    "Okafor Mensah Dlamini Okonkwo Mwangi Ivanova Petrova Smirnova Volkova Novak Horvat "
    "Kovac Papadopoulos Khan Hussain Rahman Ahmadi Hosseini Rezaei Karimi Haddad Nasser "
    "Aziz Ivanov Petrov Sokolov Popov Kuznetsov Morozov Mansour Saleh Farah Yilmaz Demir "
    "Hernandez Rodriguez"
)
_SURNAMES: Final = tuple(_SURNAME_WORDS.split())
_COMPANY_TEXT: Final = (
    "Acme Nordic Alpine Sunrise Bluewater Evergreen Summit Crescent Horizon Pioneer "
    "Granite Maple Orchid Falcon Harbor Meridian Silverline Redwood Lakeside Northstar "
    "Cobalt Keystone Riverside Oakridge Brightwater Clearview Westfield Eastgate Highland "
    "Seaside Global International General Royal Golden Eastern Delta Star Crown Pacific "
    "Atlas"
)
_COMPANY_WORDS: Final = tuple(_COMPANY_TEXT.split())
_TRADE_WORDS: Final = (
    "Trading Logistics Consulting Software Textiles Foods Printing Transport Analytics "
    "Furniture Packaging Ceramics Shipping Vineyards Bakery Dental Construction Media "
    "Insurance Robotics Pharmacy Outdoor Garden Plastics Optics Brewing Tiles Cycles"
)
_TRADES: Final = tuple(_TRADE_WORDS.split())
_FORMS: Final = ("GmbH", "Ltd", "LLC", "Inc", "S.A.", "AG", "B.V.", "Limited", "Co.", "SARL", "")

# Spellings a counterparty's record may use instead of the listed one (both directions).
_SPELLINGS: Final = (
    ("MUHAMMAD", "Mohammed"),
    ("MOHAMMAD", "Muhammed"),
    ("MOHAMED", "Mohammad"),
    ("AHMAD", "Ahmed"),
    ("HUSSEIN", "Husain"),
    ("HASSAN", "Hasan"),
    ("YOUSEF", "Yusuf"),
    ("ABDUL", "Abdel"),
    ("ABDULLAH", "Abdallah"),
    ("KHALED", "Khalid"),
    ("SAEED", "Said"),
    ("RAHMAN", "Rehman"),
    ("OSAMA", "Usama"),
    ("OMAR", "Umar"),
    ("SERGEY", "Sergei"),
    ("SERGEI", "Sergey"),
    ("ALEKSANDR", "Alexander"),
    ("ALEKSEY", "Alexei"),
    ("DMITRIY", "Dmitry"),
    ("YEVGENIY", "Evgeny"),
    ("MIKHAIL", "Michail"),
    ("YURIY", "Yuri"),
    ("JOSE", "José"),
    ("ALI", "Aly"),
)
# Letters transliterations write either way (each pair both ways).
_LETTER_PAIRS: Final = (("ou", "u"), ("kh", "h"), ("ph", "f"), ("w", "v"), ("ie", "y"), ("ss", "s"))
_LETTERS: Final = (*_LETTER_PAIRS, *((b, a) for a, b in _LETTER_PAIRS))
_LEGAL: Final = {
    "LLC": ("Limited Liability Company", "L.L.C.", ""),
    "LIMITED LIABILITY COMPANY": ("LLC", ""),
    "LTD": ("Limited", ""),
    "LIMITED": ("Ltd.", ""),
    "CO": ("Company", ""),
    "COMPANY": ("Co.", ""),
    "S.A.": ("SA", "Sociedad Anonima", ""),
    "SA": ("S.A.", ""),
    "JSC": ("Joint Stock Company", ""),
    "OJSC": ("Open Joint Stock Company", "OAO"),
    "PJSC": ("Public Joint Stock Company", "PAO"),
    "GMBH": ("G.m.b.H.", ""),
    "INC": ("Incorporated", ""),
    "CORPORATION": ("Corp.", ""),
}
# LLC, JSC and closed JSC in Russian (OOO, AO and ZAO in Cyrillic letters).
_RUSSIAN_FORMS: Final = ("\u041e\u041e\u041e", "\u0410\u041e", "\u0417\u0410\u041e")
_CYRILLIC: Final = (
    ("shch", "щ"),
    ("sh", "ш"),
    ("ch", "ч"),
    ("zh", "ж"),
    ("kh", "х"),  # noqa: RUF001 (a Cyrillic letter that looks Latin is the point)
    ("ts", "ц"),
    ("ya", "я"),
    ("yu", "ю"),
    *zip("abcdefghiklmnopqrstuvwyz", "абкдефгхиклмнопкрстуввйз", strict=True),
    ("j", "дж"),
    ("x", "кс"),
)
_FIRST_FORMS: Final = frozenset(("LLC", "JSC", "OJSC", "PJSC", "CJSC", "OOO", "ZAO", "OAO", "AO"))
_PARTICLE_WORDS: Final = "al el ul abu abd bin ibn bint de del della da di dos van von la le"
_PARTICLES: Final = frozenset(_PARTICLE_WORDS.split())
_ACCENTS: Final = {"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü", "n": "ñ", "c": "ç"}
_VARIANTS: Final = (
    "reorder",
    "drop_middle",
    "typo",
    "cyrillic",
    "spelling",
    "joined",
    "legal_form",
    "case_accents",
    "as_listed",
)
_WEIGHTS: Final = (14, 10, 20, 10, 10, 6, 8, 10, 12)


def labelled_set(
    entries: Sequence[ListEntry], n_positive: int, n_negative: int, seed: int = 1
) -> list[tuple[Query, str | None]]:
    """(query, the source_id it must find or None), positives then negatives."""
    return [(c.query, c.truth) for c in cases(entries, n_positive, n_negative, seed)]


def cases(
    entries: Sequence[ListEntry], n_positive: int, n_negative: int, seed: int = 1
) -> list[Case]:
    """`labelled_set` with how each name was made."""
    rng = random.Random(seed)
    return positives(entries, n_positive, rng) + negatives(entries, n_negative, rng)


def positives(entries: Sequence[ListEntry], count: int, rng: random.Random) -> list[Case]:
    listed = [e for e in entries if names.tokens(e.name)]
    out: list[Case] = []
    while len(out) < count and listed:
        entry = rng.choice(listed)
        name, variant = _vary(rng.choices(_VARIANTS, _WEIGHTS)[0], entry, rng)
        if names.tokens(name):
            out.append(Case(_query(name, entry, rng), entry.source_id, variant))
    return out


def _query(name: str, entry: ListEntry, rng: random.Random) -> Query:
    """The name, and sometimes what a firm's record would also hold of the party."""
    kind = entry.kind if entry.kind in ("person", "organization") and rng.random() < 0.5 else None
    country = rng.choice(entry.countries) if entry.countries and rng.random() < 0.4 else None
    born = None
    if entry.birth_dates and rng.random() < 0.3:
        born = rng.choice(entry.birth_dates)
        born = born if len(born) in (4, 10) else born[:4]
    return Query(name=name, kind=kind, country=country, birth_date=born)


Change = Callable[[list[str], random.Random], list[str] | None]


def _vary(variant: str, entry: ListEntry, rng: random.Random) -> tuple[str, str]:
    """One of the entry's names changed the `variant` way, or with a typo where that way
    does not apply (a one-word name has no middle name to drop); and the way it was."""
    name = rng.choice(entry.aliases) if entry.aliases and rng.random() < 0.25 else entry.name
    if variant == "as_listed":
        return name, variant
    words = name.replace(",", " ").split()
    if entry.kind == "person" and "," in name:  # OFAC: "SURNAME, Given Names"
        surname, _, given = name.partition(",")
        words = given.split() + surname.split()
    if entry.kind != "person" and variant == "reorder":
        variant = "form_first"  # firms' names keep their order, but for a Russian form
    applies = entry.kind == "person" or variant != "drop_middle"  # firms: no middle names
    changed = _CHANGES[variant](words, rng) if applies else None
    if changed is None:
        variant, changed = "typo", _typo(words, rng)
    return " ".join(changed), variant


def _reorder(words: list[str], rng: random.Random) -> list[str] | None:
    """The words shuffled, each particle ("al", "abu", "de", …) kept with its word."""
    groups: list[list[str]] = []
    for word in words:
        if groups and groups[-1][-1].lower() in _PARTICLES:
            groups[-1].append(word)
        else:
            groups.append([word])
    if len(groups) < 2:
        return None
    rng.shuffle(groups)
    return [w for group in groups for w in group]


def _form_first(words: list[str], rng: random.Random) -> list[str] | None:
    """The legal form before the name, as Russian firms write theirs ("LLC Nord")."""
    if len(words) > 1 and words[-1].upper().strip(".,") in _FIRST_FORMS:
        return [words[-1], *words[:-1]]
    return None


def _drop_middle(words: list[str], rng: random.Random) -> list[str] | None:
    if len(words) < 3:
        return None
    out = list(words)
    del out[rng.randrange(1, len(out) - 1)]
    return out


def _typo(words: list[str], rng: random.Random) -> list[str]:
    """One slip of the keyboard in one word of five letters or more."""
    long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not long:
        return list(words)
    i = rng.choice(long)
    w = words[i]
    at = rng.randrange(1, len(w) - 1)
    how = rng.choice(("swap", "drop", "double", "replace"))
    if how == "swap":
        w = w[:at] + w[at + 1] + w[at] + w[at + 2 :]
    elif how == "drop":
        w = w[:at] + w[at + 1 :]
    elif how == "double":
        w = w[:at] + w[at] + w[at:]
    else:
        w = w[:at] + rng.choice("aeiourstnl") + w[at + 1 :]
    return [*words[:i], w, *words[i + 1 :]]


def _cyrillic(words: list[str], rng: random.Random) -> list[str] | None:
    """Letter by letter into Cyrillic; a legal form at the end becomes the Russian one,
    in front ("X S.A. de C.V." → "OOO X", in Cyrillic)."""
    out = []
    name = names.tokens(" ".join(words))
    bare = next(k for k in range(1, len(words) + 1) if names.tokens(" ".join(words[:k])) == name)
    if bare < len(words):
        out.append(rng.choice(_RUSSIAN_FORMS))
        words = words[:bare]
    for word in words:
        text = word.lower()
        for latin, cyrillic in _CYRILLIC:
            text = text.replace(latin, cyrillic)
        out.append(text.capitalize())
    return out


def _spelling(words: list[str], rng: random.Random) -> list[str] | None:
    """Another common spelling of a name in it, else one transliteration choice made the
    other way in one word ("Yousef" / "Yusef", "Khalil" / "Halil", "Mikhail" / "Michail")."""
    table = dict(_SPELLINGS)
    out = [table.get(w.upper(), w) for w in words]
    if out != words:
        return out
    choices = [
        (i, a, b)
        for i, w in enumerate(words)
        if w.isalpha() and len(w) > 2 and not names.is_legal_form(w)
        for a, b in _LETTERS
        if a in w.lower()
    ]
    if not choices:
        return None
    i, a, b = rng.choice(choices)
    return [*words[:i], words[i].lower().replace(a, b, 1).capitalize(), *words[i + 1 :]]


def _joined(words: list[str], rng: random.Random) -> list[str] | None:
    """A hyphenated word split or run together ("AL-NURI" → "Al Nuri", "Alnuri"), or a
    short word run into the next ("ABU BAKR" → "Abubakr", "LA HACIENDA" → "Lahacienda")."""
    hyphenated = [i for i, w in enumerate(words) if "-" in w.strip("-")]
    if hyphenated:
        i = rng.choice(hyphenated)
        parts = words[i].split("-") if rng.random() < 0.5 else [words[i].replace("-", "")]
        return [*words[:i], *parts, *words[i + 1 :]]
    short = [i for i in range(len(words) - 1) if _joinable(words[i], words[i + 1])]
    if not short:
        return None
    i = rng.choice(short)
    return [*words[:i], words[i] + words[i + 1].lower(), *words[i + 2 :]]


def _joinable(word: str, after: str) -> bool:
    """A short word before a longer one, neither of them a legal form."""
    plain = word.isalpha() and after.isalpha() and 2 <= len(word) <= 4 and len(after) > 2
    return plain and not names.is_legal_form(word) and not names.is_legal_form(after)


def _legal_form(words: list[str], rng: random.Random) -> list[str] | None:
    """The legal form at the end spelt out, abbreviated or dropped; added where none is."""
    for size in (3, 2, 1):
        tail = " ".join(words[-size:]).upper().rstrip(".,")
        if len(words) > size and tail in _LEGAL:
            return [*words[:-size], *rng.choice(_LEGAL[tail]).split()]
    return [*words, rng.choice(("LLC", "Ltd", "Limited", "GmbH", "S.A.", "Inc."))]


def _case_accents(words: list[str], rng: random.Random) -> list[str] | None:
    text = " ".join(words).title() if rng.random() < 0.5 else " ".join(words).lower()
    chars = list(text)
    plain = [i for i, ch in enumerate(chars) if ch.lower() in _ACCENTS]
    for i in rng.sample(plain, min(2, len(plain))):
        chars[i] = _ACCENTS[chars[i].lower()]
    return re.sub(r"[-,.]", " ", "".join(chars)).split()


_CHANGES: Final[dict[str, Change]] = {
    "reorder": _reorder,
    "form_first": _form_first,
    "drop_middle": _drop_middle,
    "typo": _typo,
    "cyrillic": _cyrillic,
    "spelling": _spelling,
    "joined": _joined,
    "legal_form": _legal_form,
    "case_accents": _case_accents,
}


# ---------------------------------------------------------------------------- negatives


def negatives(entries: Sequence[ListEntry], count: int, rng: random.Random) -> list[Case]:
    """Common people's and companies' names that no listed name contains (see above)."""
    covered = _Listed(entries)
    out: list[Case] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < count and tries < count * 50:
        tries += 1
        if rng.random() < 0.7:
            name, kind = _person(rng), "person"
        else:
            name, kind = _company(rng), "organization"
        if name in seen or covered.contains(name):
            continue
        seen.add(name)
        query = Query(name=name, kind=kind if rng.random() < 0.5 else None)
        out.append(Case(query, None, "negative"))
    return out


def _person(rng: random.Random) -> str:
    given = rng.choice(_GIVEN)
    if rng.random() < 0.25:
        given += " " + rng.choice(_GIVEN)
    surname = rng.choice(_SURNAMES)
    return f"{surname.upper()}, {given}" if rng.random() < 0.2 else f"{given} {surname}"


def _company(rng: random.Random) -> str:
    first = rng.choice(_COMPANY_WORDS if rng.random() < 0.6 else _SURNAMES)
    return f"{first} {rng.choice(_TRADES)} {rng.choice(_FORMS)}".strip()


def _canonical(word: str) -> str:
    """One form for a word's spellings and transliterations (Mohammed/Muhammad, Kh/H)."""
    return names.key((names.spellings(word) or (word,))[0])


class _Listed:
    """Whether some listed name holds every word (by spelling or phonetic key) of a name."""

    def __init__(self, entries: Sequence[ListEntry]) -> None:
        self._by_key: dict[str, set[int]] = {}
        count = 0
        for entry in entries:
            for name in (entry.name, *entry.aliases):
                for word in names.tokens(name):
                    self._by_key.setdefault(_canonical(word), set()).add(count)
                count += 1

    def contains(self, name: str) -> bool:
        keys = [_canonical(w) for w in names.tokens(name)]
        found = [self._by_key.get(k, set()) for k in keys]
        return bool(found) and bool(set.intersection(*found))
