"""The one-to-one steps of the cascade: exact reference, amount-date-party, fuzzy reference.

Scores are fixed tiers plus small bonuses rather than a learnt model, so that a person can
read why a match was proposed: each bonus has its reason in the match.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from rapidfuzz import fuzz, process

from bpo.settlements.matching_pool import (
    Candidate,
    Fit,
    Pool,
    amount_reason,
    date_reason,
    disambiguate,
    fit,
    name_reason,
    subset_sums,
)
from bpo.settlements.references import normalise_ref

if TYPE_CHECKING:
    from bpo.settlements.matching import BankLine, OpenItem

# An exact reference with the amount settling the item in full.
_REFERENCE_SCORE = {"equal": 0.99, "range": 0.98, "fee": 0.97}
# A reference with less than the item paid: a suggestion unless configured otherwise.
PARTIAL_SCORE = 0.9
# Amount-date-party and fuzzy lose a little when the amount is a range, and more when it is
# short by a fee: without a reference, a near amount is weaker evidence than an equal one.
_AMOUNT_PENALTY = {"equal": 0.0, "range": 0.01, "fee": 0.05}


def _days(line: BankLine, item: OpenItem) -> int:
    return (line.booked_on - item.due_on).days


def reference_step(pool: Pool) -> list[Candidate]:
    """Lines naming an open item exactly: end-to-end id, RF reference, invoice number."""
    cands: list[Candidate] = []
    short: dict[str, list[tuple[BankLine, str, Fit]]] = defaultdict(list)
    for line in pool.open_lines():
        for item, why in pool.ref_hits(line).values():
            found = fit(line.amount, item, pool.rules.fee_tolerance)
            # More than the item: a payment of several items, for the split step.
            if found is None or found.kind == "over":
                continue
            if found.kind in ("fee", "partial"):
                short[item.id].append((line, why, found))
            else:
                cands.append(_reference_candidate(pool, line, item, why, found))
    for item_id, paying in short.items():
        cands.extend(_short_payments(pool, pool.items[item_id], paying))
    disambiguate(cands, "line")
    disambiguate(cands, "item")
    return cands


def _reference_candidate(
    pool: Pool, line: BankLine, item: OpenItem, why: str, found: Fit
) -> Candidate:
    days = _days(line, item)
    reasons = [why, amount_reason(found, line.amount, item), date_reason(days, pool.window(item))]
    similarity = pool.similarity(line, item)
    if similarity >= pool.rules.fuzzy_min:
        reasons.append(name_reason(line.counterparty_name, item.counterparty_name, similarity))
    score = _REFERENCE_SCORE.get(found.kind, PARTIAL_SCORE)
    allocation = (line.amount,)
    return Candidate(score, (line.id,), (item.id,), allocation, found.fee, tuple(reasons), days)


def _short_payments(
    pool: Pool, item: OpenItem, paying: list[tuple[BankLine, str, Fit]]
) -> list[Candidate]:
    """Lines paying less than a referenced item: with a fee, in part, or in instalments.

    Instalments that add up to the item are left to the split step, exactly adding up
    first (a small instalment is otherwise mistaken for the bank fee of the large one).
    """
    rules, target = pool.rules, abs(item.amount)
    paid = sorted(abs(line.amount) for line, _, _ in paying)
    if len(paying) > 1 and subset_sums(paid, target, target, rules.max_split, 1):
        return []
    tolerated = subset_sums(paid, target - rules.fee_tolerance, target, rules.max_split, 1)
    instalments = len(paying) > 1 and bool(tolerated)
    return [
        _reference_candidate(pool, line, item, why, found)
        for line, why, found in paying
        if found.kind == "fee"
        or (rules.partial and not instalments and _plausible(pool, line, item))
    ]


def _plausible(pool: Pool, line: BankLine, item: OpenItem) -> bool:
    """A part payment needs the payer's name or the date to agree, not the reference alone."""
    if abs(_days(line, item)) <= pool.window(item):
        return True
    return pool.similarity(line, item) >= pool.rules.fuzzy_min


def amount_date_party_step(pool: Pool) -> list[Candidate]:
    """Amount (or range, or fee short), date within the window, similar counterparty name."""
    rules, cands = pool.rules, []
    for line in pool.open_lines():
        for item in pool.party_fits(line):
            days = _days(line, item)
            if abs(days) > pool.window(item):
                continue
            similarity = pool.similarity(line, item)
            if similarity < rules.fuzzy_min:
                continue
            found = fit(line.amount, item, rules.fee_tolerance)
            if found is None or found.kind not in _AMOUNT_PENALTY:
                continue
            cands.append(_party_candidate(pool, line, item, found, similarity, days))
    disambiguate(cands, "line")
    disambiguate(cands, "item")
    return cands


def _party_candidate(
    pool: Pool, line: BankLine, item: OpenItem, found: Fit, similarity: float, days: int
) -> Candidate:
    score = 0.90 - _AMOUNT_PENALTY[found.kind]
    score += 0.05 if similarity >= 95 else 0.02 if similarity >= 90 else 0.0
    score += 0.03 if abs(days) <= 3 else 0.01
    reasons = [
        amount_reason(found, line.amount, item),
        date_reason(days, pool.window(item)),
        name_reason(line.counterparty_name, item.counterparty_name, similarity),
    ]
    if line.creditor_reference:
        score += _quoted_reference(pool, line.creditor_reference, item, reasons)
    return Candidate(score, (line.id,), (item.id,), (line.amount,), found.fee, tuple(reasons), days)


def _quoted_reference(pool: Pool, quoted: str, item: OpenItem, reasons: list[str]) -> float:
    """A structured reference on the line: for this item (with a typo) or against it."""
    ref = pool.item_ref.get(item.id)
    similarity = fuzz.ratio(normalise_ref(quoted), ref) if ref else 0.0
    if similarity >= pool.rules.fuzzy_min:
        reasons.append(f"reference {item.reference} ~ {quoted} {similarity:.0f}")
        return 0.02
    reasons.append(f"line quotes another reference {quoted}")
    return -0.1


def fuzzy_step(pool: Pool) -> list[Candidate]:
    """A reference with a typo (rapidfuzz) and the amount equal; a similar name helps."""
    rules, cands = pool.rules, []
    for line in pool.open_lines():
        tokens = pool.tokens(line)
        if not tokens:
            continue
        span = 2 * pool.max_window
        near = {i.id: i for i in (*pool.same_amount(line, span), *pool.party_fits(line))}
        for item in near.values():
            ref = pool.item_ref.get(item.id)
            days = _days(line, item)
            if ref is None or abs(days) > 2 * pool.window(item):
                continue
            ref_score, token = _best_token(ref, tokens, rules.fuzzy_min)
            found = fit(line.amount, item, rules.fee_tolerance)
            if token is None or found is None or found.kind not in _AMOUNT_PENALTY:
                continue
            cands.append(_fuzzy_candidate(pool, line, item, found, (ref_score, token), days))
    disambiguate(cands, "line")
    disambiguate(cands, "item")
    return cands


def _best_token(ref: str, tokens: tuple[str, ...], cutoff: float) -> tuple[float, str | None]:
    """The line's token closest to the reference; partial_ratio only for longer (glued) ones."""
    best = process.extractOne(ref, tokens, scorer=fuzz.ratio, score_cutoff=cutoff)
    score, token = (best[1], best[0]) if best else (0.0, None)
    for glued in tokens:
        if len(glued) > len(ref) + 2:
            value = fuzz.partial_ratio(ref, glued, score_cutoff=max(cutoff, score))
            if value > score:
                score, token = value, glued
    return score, token


def _fuzzy_candidate(
    pool: Pool,
    line: BankLine,
    item: OpenItem,
    found: Fit,
    ref_match: tuple[float, str],
    days: int,
) -> Candidate:
    ref_score, token = ref_match
    similarity = pool.similarity(line, item)
    score = (0.85 if ref_score >= 90 else 0.78) - _AMOUNT_PENALTY[found.kind]
    score += 0.10 if similarity >= 95 else 0.05 if similarity >= pool.rules.fuzzy_min else 0.0
    score += 0.02 if abs(days) <= pool.window(item) else 0.0
    reasons = [
        f"reference {item.reference} ~ {token} {ref_score:.0f}",
        amount_reason(found, line.amount, item),
        date_reason(days, pool.window(item)),
    ]
    if similarity >= pool.rules.fuzzy_min:
        reasons.append(name_reason(line.counterparty_name, item.counterparty_name, similarity))
    return Candidate(score, (line.id,), (item.id,), (line.amount,), found.fee, tuple(reasons), days)
