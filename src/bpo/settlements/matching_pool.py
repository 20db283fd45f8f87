"""What the matching steps share: the open lines and items, their indexes, and the measures.

A pool holds one currency (lines and items never match across currencies). Every step
looks candidates up in an index (amount, normalised reference, end-to-end id, normalised
counterparty) and never pairs all lines with all items, so the
cascade stays near linear; rapidfuzz only ever scores the few candidates found that way.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from rapidfuzz import fuzz, process

from bpo.settlements.references import MIN_REF_LEN, normalise_ref, ref_tokens

if TYPE_CHECKING:
    from bpo.settlements.matching import BankLine, OpenItem, Rules

# Words of a company name that say its legal form, not who it is ("Acme GmbH" = "ACME LTD").
_LEGAL_FORM_WORDS = (
    "gmbh mbh ag kg ug ohg ev ltd limited llc llp inc incorporated corp corporation co "
    "company sa sas sarl sl srl spa bv nv plc oy ab as aps se"
)
_LEGAL_FORMS = frozenset(_LEGAL_FORM_WORDS.split())
_SQUEEZE = re.compile(r"[.'\u2019]")  # G.m.b.H. -> gmbh, O'Neil -> oneil
_SPACE = re.compile(r"[\W_]+")
# Demoted scores: a runner-up, and a choice no candidate clearly wins.
RUNNER_UP = 0.6
AMBIGUOUS = 0.7


@lru_cache(maxsize=65536)
def normalise_name(name: str) -> str:
    """Casefolded, accents stripped, punctuation removed, legal-form words dropped."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    words = _SPACE.sub(" ", _SQUEEZE.sub("", text)).split()
    kept = [w for w in words if w not in _LEGAL_FORMS]
    return " ".join(kept or words)


@lru_cache(maxsize=262144)
def _key_similarity(a: str, b: str) -> float:
    return float(fuzz.token_sort_ratio(a, b))


def name_similarity(a: str | None, b: str | None) -> float:
    """0-100: token_sort_ratio of the normalised names (0 when either is missing)."""
    if not a or not b:
        return 0.0
    return _key_similarity(normalise_name(a), normalise_name(b))


class Fit(NamedTuple):
    """How a payment amount relates to an item: equal, range, fee, partial or over."""

    kind: str
    fee: int


EQUAL = Fit("equal", 0)


def fit(amount: int, item: OpenItem, tolerance: int) -> Fit | None:
    """The relation of a payment of `amount` to `item`; None for a payment the other way."""
    if amount == item.amount and amount:
        return EQUAL
    if amount == 0 or (amount > 0) != (item.amount > 0):
        return None
    paid = abs(amount)
    low, high = abs(item.amount), abs(item.amount)
    if item.amount_min is not None or item.amount_max is not None:
        bounds = (abs(item.amount_min or item.amount), abs(item.amount_max or item.amount))
        low, high = min(bounds), max(bounds)
    if low <= paid <= high:
        return Fit("range", 0)
    if paid > high:
        return Fit("over", 0)
    short = low - paid
    return Fit("fee", short) if short <= tolerance else Fit("partial", 0)


def amount_reason(found: Fit, amount: int, item: OpenItem) -> str:
    if found.kind == "equal":
        return "amount equal"
    if found.kind == "range":
        return f"amount within range {item.amount_min}..{item.amount_max}"
    if found.kind == "fee":
        return f"bank fee {found.fee}"
    return f"partial payment {abs(amount)} of {abs(item.amount)}"


def date_reason(days: int, window: int) -> str:
    text = "date same day" if days == 0 else f"date {days:+d} days"
    return text if abs(days) <= window else f"{text} (outside the {window}-day window)"


def name_reason(line_name: str | None, item_name: str | None, score: float) -> str:
    return f"name {line_name!r} ~ {item_name!r} {score:.0f}"


@dataclass(slots=True)
class Candidate:
    """A proposed match before the greedy choice; `days` is its date distance (tie-break)."""

    score: float
    line_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    allocations: tuple[int, ...]
    fee: int
    reasons: tuple[str, ...]
    days: int = 0
    extra: tuple[str, ...] = ()


def disambiguate(cands: list[Candidate], key: str) -> None:
    """Demote candidates sharing a line (key 'line') or an item ('item') with no clear winner.

    The closest by score, then date, keeps its score only when it is clearly better (0.03
    more, or 5 days closer); otherwise every one of them becomes a mere suggestion.
    """
    seen: dict[tuple[str, ...], Candidate] = {}
    groups: dict[tuple[str, ...], list[Candidate]] = {}
    for cand in cands:
        ids = cand.line_ids if key == "line" else cand.item_ids
        if ids not in seen:
            seen[ids] = cand
        elif ids in groups:
            groups[ids].append(cand)
        else:
            groups[ids] = [seen[ids], cand]
    for group in groups.values():
        group.sort(key=lambda c: (-c.score, abs(c.days)))
        best, second = group[0], group[1]
        clear = best.score - second.score >= 0.03 or abs(second.days) - abs(best.days) >= 5
        if clear:
            best.score -= 0.01
            best.extra += (f"best of {len(group)} candidates",)
            rest = group[1:]
        else:
            rest = group
        for cand in rest:
            cand.score = min(cand.score, RUNNER_UP if clear else AMBIGUOUS)
            cand.extra += (f"one of {len(group)} candidates",)


def subset_sums(
    values: Sequence[int], low: int, high: int, max_k: int, limit: int = 2
) -> list[tuple[int, ...]]:
    """Up to `limit` index tuples of 2..max_k `values` (ascending, > 0) summing into low..high.

    A depth-first search that stops once the smallest remaining values overshoot, and
    bisects for the last value, so a few dozen values at max_k 4 stay cheap.
    """
    out: list[tuple[int, ...]] = []
    for k in range(2, max_k + 1):
        _subsets(values, 0, k, low, high, (), out, limit)
        if len(out) >= limit:
            break
    return out[:limit]


def _subsets(
    values: Sequence[int],
    start: int,
    k: int,
    low: int,
    high: int,
    chosen: tuple[int, ...],
    out: list[tuple[int, ...]],
    limit: int,
) -> None:
    if k == 1:
        stop = bisect_right(values, high, lo=start)
        out.extend((*chosen, i) for i in range(bisect_left(values, low, lo=start), stop))
        return
    # Skip values too small to reach `low` even with the largest others.
    first = bisect_left(values, low - sum(values[len(values) - k + 1 :]), lo=start)
    for i in range(first, len(values) - k + 1):
        value = values[i]
        if value * k > high:  # the rest are at least as large: every sum overshoots
            return
        _subsets(values, i + 1, k - 1, low - value, high - value, (*chosen, i), out, limit)
        if len(out) >= limit:
            return


class Pool:
    """The lines and items still open, indexed for the steps' look-ups.

    Amount and counterparty buckets are kept in due-date order, so a step bisects its date
    window instead of scanning a bucket (a common amount is shared by thousands of items).
    """

    def __init__(self, lines: Sequence[BankLine], items: Sequence[OpenItem], rules: Rules) -> None:
        self.rules = rules
        # Reversals are never matched to items: they never enter the pool.
        self.lines = {line.id: line for line in lines if not line.reversal}
        self.items = {item.id: item for item in items}
        self.by_amount: dict[int, list[OpenItem]] = defaultdict(list)
        self.by_ref: dict[str, list[OpenItem]] = defaultdict(list)
        self.by_e2e: dict[str, list[OpenItem]] = defaultdict(list)
        self.by_party: dict[str, list[OpenItem]] = defaultdict(list)
        self.item_ref: dict[str, str] = {}
        self._index(items)
        for bucket in (*self.by_amount.values(), *self.by_party.values()):
            if len(bucket) > 1:
                bucket.sort(key=_due)
        self.party_amounts = {party: _by_amount(bucket) for party, bucket in self.by_party.items()}
        self.party_keys = list(self.by_party)
        self._party_memo: dict[str, str | None] = {}
        self.max_window = max([rules.date_window_days, *(i.window_days for i in items)])
        self._similar: dict[tuple[str | None, str | None], float] = {}

    def _index(self, items: Sequence[OpenItem]) -> None:
        by_amount, by_party = self.by_amount, self.by_party
        for item in items:
            # Items with an amount range are found through their counterparty or reference.
            if item.amount_min is None and item.amount_max is None:
                by_amount[item.amount].append(item)
            if item.reference and len(ref := normalise_ref(item.reference)) >= MIN_REF_LEN:
                self.by_ref[ref].append(item)
                self.item_ref[item.id] = ref
            if item.end_to_end_id:
                self.by_e2e[item.end_to_end_id].append(item)
            if item.counterparty_name:
                by_party[normalise_name(item.counterparty_name)].append(item)

    def similarity(self, line: BankLine, item: OpenItem) -> float:
        """name_similarity of the payer and the item's counterparty, memoised per pair."""
        pair = (line.counterparty_name, item.counterparty_name)
        found = self._similar.get(pair)
        if found is None:
            found = self._similar[pair] = name_similarity(*pair)
        return found

    def window(self, item: OpenItem) -> int:
        """Days a payment may be off the due date: the item's own for expected payments."""
        return item.window_days if item.kind == "expected" else self.rules.date_window_days

    def open_lines(self) -> list[BankLine]:
        return list(self.lines.values())

    def consume(self, line_ids: Iterable[str], item_ids: Iterable[str]) -> None:
        for line_id in line_ids:
            del self.lines[line_id]
        for item_id in item_ids:
            del self.items[item_id]

    def tokens(self, line: BankLine) -> tuple[str, ...]:
        """Normalised references the line carries: creditor reference, then its text's."""
        words = ref_tokens(line.description)
        if line.creditor_reference:
            return (normalise_ref(line.creditor_reference), *words)
        return words

    def ref_hits(self, line: BankLine) -> dict[str, tuple[OpenItem, str]]:
        """Open items the line names exactly, with the reason.

        The structured fields (end-to-end id, creditor reference) first: when they name an
        item, the free text is not searched (it is the slow part, and says less).
        """
        items, hits = self.items, {}
        if line.end_to_end_id:
            for item in self.by_e2e.get(line.end_to_end_id, ()):
                if item.id in items:
                    hits[item.id] = (item, f"end-to-end id {line.end_to_end_id}")
        by_ref = self.by_ref
        if line.creditor_reference:
            for item in by_ref.get(normalise_ref(line.creditor_reference), ()):
                if item.id in items and item.id not in hits:
                    hits[item.id] = (item, f"reference {item.reference}")
        if hits:
            return hits
        for token in ref_tokens(line.description):
            for item in by_ref.get(token, ()):
                if item.id in items and item.id not in hits:
                    hits[item.id] = (item, f"reference {item.reference}")
        return hits

    def near(self, bucket: Sequence[OpenItem], when: date, span: int) -> list[OpenItem]:
        """The open items of a due-date-ordered bucket due within `span` days of `when`."""
        if not bucket:
            return []
        start = bisect_left(bucket, when - timedelta(days=span), key=_due)
        stop = bisect_right(bucket, when + timedelta(days=span), key=_due)
        items = self.items
        return [item for item in bucket[start:stop] if item.id in items]

    def same_amount(self, line: BankLine, span: int) -> list[OpenItem]:
        """Open items of exactly the line's amount, due within `span` days of its booking."""
        return self.near(self.by_amount.get(line.amount, ()), line.booked_on, span)

    def party_fits(self, line: BankLine) -> list[OpenItem]:
        """Open items of the line's counterparty its amount may settle (equal, fee, range)."""
        key = self.party_key(line)
        entry = None if key is None else self.party_amounts.get(key)
        if entry is None:
            return []
        amounts, fixed, ranged = entry
        amount, tol = line.amount, self.rules.fee_tolerance
        # A fee makes the payment smaller in magnitude than the item, by at most tol.
        low, high = (amount, amount + tol) if amount > 0 else (amount - tol, amount)
        found = fixed[bisect_left(amounts, low) : bisect_right(amounts, high)]
        found += [item for low, high, item in ranged if low <= amount <= high]
        items = self.items
        return [item for item in found if item.id in items]

    def party_key(self, line: BankLine) -> str | None:
        """The normalised counterparty of the items this line's payer is (exact, else fuzzy)."""
        if not line.counterparty_name:
            return None
        key = normalise_name(line.counterparty_name)
        if key in self.by_party:
            return key
        if key not in self._party_memo:
            best = process.extractOne(
                key,
                self.party_keys,
                scorer=fuzz.token_sort_ratio,
                score_cutoff=self.rules.fuzzy_min,
            )
            self._party_memo[key] = None if best is None else best[0]
        return self._party_memo[key]


def _due(item: OpenItem) -> date:
    return item.due_on


def _by_amount(
    bucket: list[OpenItem],
) -> tuple[list[int], list[OpenItem], list[tuple[int, int, OpenItem]]]:
    """A counterparty's items by amount (for bisecting), and those with a range apart."""
    ranged: list[tuple[int, int, OpenItem]] = []
    fixed: list[OpenItem] = []
    for item in bucket:
        if item.amount_min is None and item.amount_max is None:
            fixed.append(item)
            continue
        low = item.amount if item.amount_min is None else item.amount_min
        high = item.amount if item.amount_max is None else item.amount_max
        ranged.append((min(low, high), max(low, high), item))
    fixed.sort(key=lambda i: i.amount)
    return [i.amount for i in fixed], fixed, ranged
