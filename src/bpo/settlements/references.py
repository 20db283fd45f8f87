"""Structured payment references: ISO 11649 RF creditor references and reference tokens.

A reference is compared in a normal form (upper case, letters and digits only) because banks
and payers print the same reference as "RF18 5390 0754 7034", "rf18-5390-0754-7034" or glued
to other words. Tokens of a free-text remittance line are normalised the same way, and
adjacent short groups are joined so that a reference printed in blocks of four is found.
"""

from __future__ import annotations

import re

_NOT_ALNUM = re.compile(r"[^0-9A-Z]")
_RF_SHAPE = re.compile(r"RF[0-9]{2}[0-9A-Z]{1,21}")
_ALNUM_RUN = re.compile(r"[0-9A-Z]+")
# A reference shorter than this is too likely to occur by chance in a text.
MIN_REF_LEN = 4
# Blocks up to this long may be a printed group of a longer reference (RF18 5390 0754 7034).
_GROUP_LEN = 5
_MAX_GROUPS = 7


def normalise_ref(ref: str) -> str:
    """Upper case, letters and digits only: the form references are indexed and compared in."""
    # str.replace is much faster than str.translate for a few characters.
    text = ref.upper().replace(" ", "").replace("-", "").replace(".", "").replace("/", "")
    # The usual separators deleted, most references are plain ASCII letters and digits now.
    return text if text.isascii() and text.isalnum() else _NOT_ALNUM.sub("", text)


def _rf_number(text: str) -> int:
    # ISO 7064 MOD 97-10: letters count as 10..35, then the whole string is one integer.
    return int("".join(str(int(ch, 36)) for ch in text))


def is_rf(ref: str) -> bool:
    """Whether `ref` is an ISO 11649 creditor reference with valid check digits."""
    norm = normalise_ref(ref)
    if not _RF_SHAPE.fullmatch(norm):
        return False
    return _rf_number(norm[4:] + norm[:4]) % 97 == 1


def make_rf(body: str) -> str:
    """The RF creditor reference for `body` (1-21 letters or digits): 'RF' + check digits + body."""
    norm = normalise_ref(body)
    if not 1 <= len(norm) <= 21:
        raise ValueError(f"an RF reference body has 1 to 21 letters or digits, not {body!r}")
    check = 98 - _rf_number(norm + "RF00") % 97
    return f"RF{check:02d}{norm}"


def ref_tokens(text: str) -> tuple[str, ...]:
    """Normalised candidate references in a text: its words, and runs of short words joined."""
    # '.', '/' and '-' join what they separate (INV-2026-00123): deleted before splitting.
    text = text.upper().replace("-", "").replace(".", "").replace("/", "")
    words = _ALNUM_RUN.findall(text)
    found = [w for w in words if len(w) >= MIN_REF_LEN]
    if not any(len(w) <= _GROUP_LEN and not w.isalpha() for w in words[1:]):
        return tuple(found)  # no short block with digits after a word: nothing to join
    # Join a word and the short blocks with digits after it: a reference printed in groups
    # ("RF18 5390 0754 7034", "INV-2026 00123").
    for i, first in enumerate(words):
        joined = first
        for nxt in words[i + 1 : i + _MAX_GROUPS]:
            if len(nxt) > _GROUP_LEN or nxt.isalpha():
                break
            joined += nxt
            if len(joined) >= MIN_REF_LEN:
                found.append(joined)
    return tuple(dict.fromkeys(found))
