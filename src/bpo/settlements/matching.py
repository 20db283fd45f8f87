"""Bank reconciliation: statement lines matched to open invoices, bills and expected payments.

A pure engine (no database). The cascade of steps is configured per bank account (`Rules`),
as Odoo's reconciliation models are: each step proposes candidates over what earlier steps
left, the best-scored are taken greedily (a line or an item is used at most once), and each
match carries a confidence and the reasons behind it. At or above `auto_confirm` a match is
confirmed automatically; between `suggest_min` and that it is a suggestion for a person.

    reference          exact RF creditor reference, end-to-end id, or invoice number
    amount_date_party  amount (range, fee) + date window + similar counterparty name
    fuzzy              reference with a typo + amount equal
    split              one line paying many items, many lines paying one item (bounded)

Amounts are signed integers of minor units: money in > 0, money out < 0; an item is signed
like the bank line that would settle it. Lines and items never match across currencies.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from bpo.settlements.matching_pool import Candidate, Pool
from bpo.settlements.matching_rules import amount_date_party_step, fuzzy_step, reference_step
from bpo.settlements.matching_split import split_step


@dataclass(frozen=True)
class BankLine:
    """One bank statement line."""

    id: str
    booked_on: date
    amount: int
    currency: str
    end_to_end_id: str | None
    creditor_reference: str | None
    counterparty_name: str | None
    description: str
    reversal: bool = False


@dataclass(frozen=True)
class OpenItem:
    """What a payment can settle: an invoice (> 0), a bill (< 0) or an expected payment."""

    id: str
    kind: str
    amount: int
    currency: str
    due_on: date
    counterparty_name: str | None
    reference: str | None
    end_to_end_id: str | None = None
    amount_min: int | None = None
    amount_max: int | None = None
    window_days: int = 10


@dataclass(frozen=True)
class Rules:
    """The cascade configured per bank account; the first step to match a line wins."""

    steps: tuple[str, ...] = ("reference", "amount_date_party", "fuzzy", "split")
    auto_confirm: float = 0.95
    suggest_min: float = 0.5
    date_window_days: int = 10
    fee_tolerance: int = 0
    fuzzy_min: float = 85.0
    max_split: int = 4
    partial: bool = True


@dataclass(frozen=True)
class Match:
    """Lines and items reconciled together, with how much of the lines went to each item.

    `allocations[i]` is the part of the lines applied to `item_ids[i]` (signed like it);
    `fee` is the magnitude the bank kept, so allocations + fee settle the items in full
    (a partial payment has no fee and leaves the rest of its item open).
    """

    line_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    allocations: tuple[int, ...]
    fee: int
    score: float
    rule: str
    reasons: tuple[str, ...]
    auto: bool


_STEPS: dict[str, Callable[[Pool], list[Candidate]]] = {
    "reference": reference_step,
    "amount_date_party": amount_date_party_step,
    "fuzzy": fuzzy_step,
    "split": split_step,
}


def match(
    lines: Sequence[BankLine], items: Sequence[OpenItem], rules: Rules = Rules()
) -> list[Match]:
    """Reconcile `lines` against `items` with the cascade of `rules`; best matches first."""
    unknown = [step for step in rules.steps if step not in _STEPS]
    if unknown:
        raise ValueError(f"unknown matching steps {unknown}; known: {sorted(_STEPS)}")
    found: list[Match] = []
    with _gc_paused():
        # One pool per currency: nothing is ever compared across currencies.
        for cur_lines, cur_items in _by_currency(lines, items).values():
            pool = Pool(cur_lines, cur_items, rules)
            for step in rules.steps:
                found.extend(_take(pool, _STEPS[step](pool), step, rules))
    found.sort(key=_by_score)
    return found


def _by_currency(
    lines: Sequence[BankLine], items: Sequence[OpenItem]
) -> dict[str, tuple[list[BankLine], list[OpenItem]]]:
    groups: dict[str, tuple[list[BankLine], list[OpenItem]]] = {}
    for line in lines:
        groups.setdefault(line.currency, ([], []))[0].append(line)
    for item in items:
        if item.currency in groups:  # an item no line is in the currency of stays open
            groups[item.currency][1].append(item)
    return groups


def _by_score(found: Match | Candidate) -> float:
    return -found.score


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while matching: it makes no cycles, yet its hundreds of thousands of
    small objects would trigger collections that scan them all again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _take(pool: Pool, candidates: list[Candidate], step: str, rules: Rules) -> list[Match]:
    """Greedy by score: a candidate is taken when none of its lines or items is taken yet."""
    # Ties in the order the steps proposed them, which follows the input order.
    candidates.sort(key=_by_score)
    taken: list[Match] = []
    lines, items = pool.lines, pool.items
    for cand in candidates:
        if cand.score < rules.suggest_min:
            break
        line_ids, item_ids = cand.line_ids, cand.item_ids
        if not all(i in lines for i in line_ids) or not all(i in items for i in item_ids):
            continue
        pool.consume(line_ids, item_ids)
        score = round(min(cand.score, 1.0), 4)
        taken.append(
            Match(
                line_ids,
                item_ids,
                cand.allocations,
                cand.fee,
                score,
                step,
                cand.reasons + cand.extra,
                score >= rules.auto_confirm,
            )
        )
    return taken
