"""The split step: one line paying several items, or several lines paying one item.

Bounded subset sums (Business Central's one-to-many and many-to-one): at most
`rules.max_split` members, chosen among at most `CAP` candidates, so the search never grows
exponentially with a counterparty's open items. Candidates come first from the references
the lines quote (a line naming two invoice numbers), then from the counterparty alone.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, TypeVar

from bpo.settlements.matching_pool import Candidate, Pool, date_reason, fit, subset_sums

if TYPE_CHECKING:
    from bpo.settlements.matching import BankLine, OpenItem

# Candidates considered per line or item: the closest by date.
CAP = 20
# A unique combination the references name is confirmed; one by counterparty is suggested.
_SCORES = {"reference": (0.97, 0.65), "counterparty": (0.85, 0.55)}

T = TypeVar("T")


def split_step(pool: Pool) -> list[Candidate]:
    """Combinations by quoted references first, then by counterparty (ranked by score)."""
    if pool.rules.max_split < 2:
        return []
    named = _by_reference(pool)
    # A line or item some quoted reference combines is not combined by counterparty too.
    lines = {i for cand in named for i in cand.line_ids}
    items = {i for cand in named for i in cand.item_ids}
    return named + _by_party(pool, lines, items)


def _by_reference(pool: Pool) -> list[Candidate]:
    out: list[Candidate] = []
    naming: dict[str, list[BankLine]] = defaultdict(list)
    for line in pool.open_lines():
        named = [i for i, _ in pool.ref_hits(line).values() if fit(line.amount, i, 0)]
        for item in named:
            naming[item.id].append(line)
        if len(named) > 1:
            out.extend(_one_line(pool, line, named, "reference"))
    for item_id, lines in naming.items():
        if len(lines) > 1:
            out.extend(_one_item(pool, pool.items[item_id], lines, "reference"))
    return out


def _by_party(pool: Pool, named_lines: set[str], named_items: set[str]) -> list[Candidate]:
    out: list[Candidate] = []
    span = 2 * pool.rules.date_window_days
    lines_by_party: dict[str, list[BankLine]] = defaultdict(list)
    for line in pool.open_lines():
        key = pool.party_key(line)
        if key is None or line.id in named_lines:
            continue
        lines_by_party[key].append(line)
        near = _near(pool.by_party.get(key, []), _due, line.booked_on, span)
        items = [i for i in near if i.id in pool.items and _smaller(i.amount, line.amount)]
        out.extend(_one_line(pool, line, items, "counterparty"))
    for party, lines in lines_by_party.items():
        lines.sort(key=_booked)
        for item in pool.by_party.get(party, []):
            if item.id not in pool.items or item.id in named_items:
                continue
            paying = _near(lines, _booked, item.due_on, span)
            parts = [x for x in paying if _smaller(x.amount, item.amount)]
            out.extend(_one_item(pool, item, parts, "counterparty"))
    return out


def _due(item: OpenItem) -> date:
    return item.due_on


def _booked(line: BankLine) -> date:
    return line.booked_on


def _smaller(part: int, whole: int) -> bool:
    """Same direction and strictly smaller: only such parts can add up to the whole."""
    return (part > 0) == (whole > 0) and abs(part) < abs(whole)


def _near(ordered: Sequence[T], when: Callable[[T], date], center: date, span: int) -> list[T]:
    """Up to CAP of `ordered` (by date) within `span` days of `center`, the closest first."""
    start = bisect_left(ordered, center - timedelta(days=span), key=when)
    stop = bisect_right(ordered, center + timedelta(days=span), key=when)
    if stop - start > CAP:  # the CAP around the center of this date-ordered run
        middle = bisect_left(ordered, center, lo=start, hi=stop, key=when)
        start = max(start, min(middle - CAP // 2, stop - CAP))
        stop = start + CAP
    return list(ordered[start:stop])


def _one_line(pool: Pool, line: BankLine, items: list[OpenItem], basis: str) -> list[Candidate]:
    """One line paying 2..max_split of `items` (their sum, or short by at most the fee)."""
    if len(items) < 2:
        return []
    items = sorted(items[:CAP], key=lambda i: (abs(i.amount), i.id))
    target, tol = abs(line.amount), pool.rules.fee_tolerance
    values = [abs(i.amount) for i in items]
    found = _combinations(values, target, target, target + tol, pool.rules.max_split)
    unique, ambiguous = _SCORES[basis]
    out = []
    for combo in found:
        chosen = [items[k] for k in combo]
        fee = sum(values[k] for k in combo) - target
        sign = 1 if line.amount > 0 else -1
        allocations = [i.amount for i in chosen]
        allocations[-1] -= sign * fee  # the bank's fee comes off the largest item
        days = [(line.booked_on - i.due_on).days for i in chosen]
        reasons = _reasons(basis, chosen, len(chosen), "items add up to the line", fee, days, pool)
        score = unique if len(found) == 1 else ambiguous
        ids = tuple(i.id for i in chosen)
        out.append(Candidate(score, (line.id,), ids, tuple(allocations), fee, reasons))
    return out


def _one_item(pool: Pool, item: OpenItem, lines: list[BankLine], basis: str) -> list[Candidate]:
    """2..max_split of `lines` paying one item (its amount, or short by at most the fee)."""
    if len(lines) < 2:
        return []
    lines = sorted(lines[:CAP], key=lambda x: (abs(x.amount), x.id))
    target, tol = abs(item.amount), pool.rules.fee_tolerance
    values = [abs(x.amount) for x in lines]
    found = _combinations(values, target, target - tol, target, pool.rules.max_split)
    unique, ambiguous = _SCORES[basis]
    out = []
    for combo in found:
        chosen = [lines[k] for k in combo]
        paid = sum(x.amount for x in chosen)
        fee = target - abs(paid)
        days = [(x.booked_on - item.due_on).days for x in chosen]
        reasons = _reasons(basis, [item], len(chosen), "lines add up to the item", fee, days, pool)
        score = unique if len(found) == 1 else ambiguous
        ids = tuple(x.id for x in chosen)
        out.append(Candidate(score, ids, (item.id,), (paid,), fee, reasons))
    return out


def _combinations(
    values: list[int], exact: int, low: int, high: int, max_k: int
) -> list[tuple[int, ...]]:
    """Up to two combinations adding up to `exact`, else within low..high (the fee)."""
    return subset_sums(values, exact, exact, max_k) or subset_sums(values, low, high, max_k)


def _reasons(
    basis: str,
    items: list[OpenItem],
    count: int,
    what: str,
    fee: int,
    days: list[int],
    pool: Pool,
) -> tuple[str, ...]:
    if basis == "reference":
        first = "references " + ", ".join(str(i.reference) for i in items)
    else:
        first = f"counterparty {items[0].counterparty_name!r}"
    reasons = [first, f"{count} {what}" + (f" less bank fee {fee}" if fee else " (amount equal)")]
    window = pool.window(items[0])
    reasons += sorted({date_reason(d, window) for d in days})
    return tuple(reasons)
