"""Name normalisation for sanctions screening: one comparable form for any script.

`tokens` folds case and accents, transliterates every script to ASCII (anyascii: a maintained
per-code-point table; Han and Hangul runs are split into syllables, surname first), drops
punctuation, legal forms (LLC, GmbH, OOO in Cyrillic, S.A., "Limited Liability Company", …),
joins the Arabic article to its word ("al-Qaida", "Al Qaida" and "Alqaida" agree) and runs
of initials ("P L M" = "P.L.M."). `normalise` is the sorted join: word order does not matter
("SURNAME, Given" as OFAC lists people).

`spellings` knows a few very common names' other spellings (Mohammed/Muhammad); `key` and
`skeleton` are looser forms of one token, used to find and score spelling variants: `key`
merges letters transliterations confuse (kh/h, w/v, c/k, y/i, doubled letters); `skeleton`
keeps consonants only, which is all an unvowelled Arabic-script name carries ("محمد" →
"mhmd" = skeleton("muhammad")).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

from anyascii import anyascii
from rapidfuzz.distance import OSA, Indel

# Work is capped: a hostile 10 MB "name" costs the same as a long real one.
MAX_CHARS: Final = 400
MAX_TOKENS: Final = 16
MAX_TOKEN_CHARS: Final = 40

_UNAMBIGUOUS_WORDS: Final = (
    "llc ltd limited lp llp plc inc incorporated corp corporation co company companies cie "
    "cia gmbh mbh ag kg ohg ug ooo oao zao pao tov jsc pjsc ojsc cjsc sarl sas srl spa "
    "ltda sac saa eirl bv nv oy oyj aps kft zrt sro doo eood ead pty pte pvt bhd berhad "
    "tbk fze fzco fzc fzllc dmcc aktiengesellschaft sapi ink korp korporatsiia kompaniia "
    "gmbkh"
)
_UNAMBIGUOUS_FORMS: Final = frozenset(_UNAMBIGUOUS_WORDS.split())
# Short forms that are also name particles ("as-Sayyid", "Ab", "Sa") only count at an end.
_EDGE_WORDS: Final = "sa as ab ad ao cc dd sl sal cv kk gk ik sc ca ko"
_EDGE_FORMS: Final = frozenset(_EDGE_WORDS.split())
_PREFIX_WORDS: Final = "pt ao ip tk"  # forms written before the name (PT Maju, AO Nord)
_PREFIX_FORMS: Final = frozenset(_PREFIX_WORDS.split())
# Long forms also known through one typo ("Compnay"): they are no part of the name.
# Not "corporation": one edit from it is Spanish "corporacion", a word of many names.
_LONG_FORMS: Final = ("company", "limited", "incorporated")
_FORM_PHRASES: Final = tuple(
    tuple(p.split())
    for p in (
        "limited liability company",
        "limited liability partnership",
        "limited partnership",
        "public limited company",
        "private limited company",
        "closed joint stock company",
        "open joint stock company",
        "public joint stock company",
        "private joint stock company",
        "joint stock company",
        "sociedad anonima",
        "sociedade anonima",
        "societe anonyme",
        "societa per azioni",
        "sociedad de responsabilidad limitada",
        "societe a responsabilite limitee",
        "gesellschaft mit beschrankter haftung",
        "obshchestvo s ogranichennoi otvetstvennostiu",
        "obshchestvo s ogranichennoy otvetstvennostyu",
        "publichnoe aktsionernoe obshchestvo",
        "zakrytoe aktsionernoe obshchestvo",
        "otkrytoe aktsionernoe obshchestvo",
        "aktsionernoe obshchestvo",
        "sdn bhd",
        "sendirian berhad",
        "s de rl de cv",
        "sa de cv",
        "de cv",
        "s de rl",
        "sp z oo",
        "co ltd",
    )
)
# By first letter: a phrase is also known through typos in its long words (see _is_phrase).
_PHRASES_BY_LETTER: Final = {
    p[0][0]: tuple(q for q in _FORM_PHRASES if q[0][0] == p[0][0]) for p in _FORM_PHRASES
}
_TITLE_WORDS: Final = "mr mrs ms miss dr prof sir"
_TITLES: Final = frozenset(_TITLE_WORDS.split())
_ARTICLES: Final = frozenset(("al", "el", "ul"))
# Spellings of one name that differ by too much for edit distance alone.
_VARIANT_GROUPS: Final = (
    "muhammad mohammed mohammad mohamed mohamad muhammed mohamud muhamad mohd mohammod",
    "ahmad ahmed ahmet",
    "husayn hussein hussain husain hussin hossein hosein",
    "hasan hassan hasn",
    "yusuf yousef youssef yousif yusef yousuf",
    "abdul abdel abdoul abdal abdol",
    "usama osama",
    "umar omar",
    "mahmud mahmoud mahmood",
    "mustafa mostafa moustafa mustapha",
    "ibrahim ebrahim",
    "ismail ismael esmail",
)
_SPELLINGS: Final = {
    spelling: tuple(group.split()) for group in _VARIANT_GROUPS for spelling in group.split()
}
_HAN_OR_HANGUL: Final = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")
_JOINERS: Final = re.compile(r"['`\u2019\u02bc.]")  # O'Brien, S.A., J.P.: one word
_NON_WORD: Final = re.compile(r"[^a-z0-9]+")


def tokens(name: str) -> list[str]:
    """The name's comparable words, in the name's order (capped at MAX_TOKENS)."""
    return list(_tokens(name[:MAX_CHARS]))


def normalise(name: str) -> str:
    """The comparable form: `tokens`, sorted, space-joined ("" when nothing is left)."""
    return " ".join(sorted(_tokens(name[:MAX_CHARS])))


@lru_cache(maxsize=65_536)
def _tokens(name: str) -> tuple[str, ...]:
    words = _join_initials(ascii_words(name))
    words = _merge_articles(_strip_forms(words))
    return tuple(w[:MAX_TOKEN_CHARS] for w in words[:MAX_TOKENS])


def ascii_words(text: str) -> list[str]:
    """Lower-case ASCII words of any script, punctuation dropped (no other rules)."""
    text = unicodedata.normalize("NFKC", text)
    text = _HAN_OR_HANGUL.sub(_syllables, text)
    text = anyascii(text).lower()
    return _NON_WORD.sub(" ", _JOINERS.sub("", text)).split()


def _join_initials(words: list[str]) -> list[str]:
    """Runs of single letters are one word: "P L M" as "P.L.M.", "S A de C V" as "SA de CV"."""
    out: list[str] = []
    run = ""
    for w in words:
        if len(w) == 1 and w.isalpha():
            run += w
            continue
        if run:
            out.append(run)
            run = ""
        out.append(w)
    if run:
        out.append(run)
    return out


def _syllables(match: re.Match[str]) -> str:
    """Chinese and Korean names: one syllable per character, romanised as "Surname Given"
    (the way lists write them: 李方伟 → "li fangwei"); longer runs syllable by syllable."""
    parts = [anyascii(ch) for ch in match.group()]
    if 2 <= len(parts) <= 3:
        return f" {parts[0]} {''.join(parts[1:])} "
    return " " + " ".join(parts) + " "


def _strip_forms(words: list[str]) -> list[str]:
    """Without legal forms and leading titles; a name made only of them keeps its words."""
    kept = [w for w in _drop_phrases(words) if not _is_form(w)]
    while kept and kept[-1] in _EDGE_FORMS:
        kept.pop()
    while kept and (kept[0] in _PREFIX_FORMS or kept[0] in _TITLES):
        kept.pop(0)
    return kept or words


def _is_form(word: str) -> bool:
    if word in _UNAMBIGUOUS_FORMS:
        return True
    return len(word) >= 6 and any(OSA.distance(word, f, score_cutoff=1) <= 1 for f in _LONG_FORMS)


def _drop_phrases(words: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(words):
        for phrase in _PHRASES_BY_LETTER.get(words[i][0], ()):
            if _is_phrase(words[i : i + len(phrase)], phrase):
                i += len(phrase)
                break
        else:
            out.append(words[i])
            i += 1
    return out


def _is_phrase(words: list[str], phrase: tuple[str, ...]) -> bool:
    """The words spell the phrase, one slip per long word allowed ("Obshchesvto")."""
    return len(words) == len(phrase) and all(
        w == p or (len(p) >= 5 and Indel.normalized_similarity(w, p) >= 0.8)
        for w, p in zip(words, phrase, strict=True)
    )


def _merge_articles(words: list[str]) -> list[str]:
    """ "al" and "el" join the next word: al-Baghdadi, Al Baghdadi and Albaghdadi agree."""
    out: list[str] = []
    carry = ""
    for w in words:
        if w in _ARTICLES:
            carry += w
            continue
        out.append(carry + w)
        carry = ""
    if carry:
        out.append(carry)
    return out


_KEY_RULES: Final = (
    ("dzh", "j"),
    ("dj", "j"),
    ("zh", "j"),
    ("kh", "h"),
    ("gh", "g"),
    ("ph", "f"),
    ("th", "t"),
    ("sch", "s"),
    ("sh", "s"),
    ("ch", "c"),
    ("ck", "k"),
    ("q", "k"),
    ("c", "k"),
    ("w", "v"),
    ("x", "ks"),
    ("y", "i"),
    ("ou", "u"),
    ("oo", "u"),
    ("ee", "i"),
    ("ie", "i"),
)
_DOUBLES: Final = re.compile(r"(.)\1+")
_VOWELS: Final = re.compile(r"[aeiouy]+")


@lru_cache(maxsize=131_072)
def key(token: str) -> str:
    """A phonetic-ish key: spellings that transliterations and ears confuse agree."""
    out = token
    for old, new in _KEY_RULES:
        out = out.replace(old, new)
    return _DOUBLES.sub(r"\1", out)


@lru_cache(maxsize=131_072)
def skeleton(token: str) -> str:
    """The consonants alone (doubles merged): unvowelled scripts' transliterations agree."""
    return _DOUBLES.sub(r"\1", _VOWELS.sub("", key(token)))


def unvowelled(word: str) -> bool:
    """No vowel past the first letter: how Arabic or Hebrew script transliterates."""
    return not _VOWELS.search(word[1:])


def is_legal_form(word: str) -> bool:
    """A legal form's word or abbreviation ("LLC", "S.A.", "GmbH", "Compnay"), any case."""
    plain = "".join(ascii_words(word))
    return _is_form(plain) or plain in _EDGE_FORMS or plain in _PREFIX_FORMS


def spellings(word: str) -> tuple[str, ...]:
    """Other common spellings of the same name ("mohammed": "muhammad", "mohamed", …)."""
    return _SPELLINGS.get(word, ())


def identifier(value: str) -> str:
    """A document or registration number as compared: upper case, letters and digits."""
    return re.sub(r"[^0-9A-Z]", "", anyascii(value).upper())
