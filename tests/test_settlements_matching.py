"""The bank-reconciliation matching engine (pure: no database)."""

from __future__ import annotations

from datetime import date

import pytest

from bpo.settlements.matching import BankLine, Match, OpenItem, Rules, match
from bpo.settlements.matching_pool import name_similarity, normalise_name
from bpo.settlements.references import is_rf, make_rf, normalise_ref, ref_tokens
from bpo.settlements.synthetic import FEE_TOLERANCE, labelled_set

DUE = date(2026, 3, 2)


def line(
    id: str,
    amount: int,
    *,
    on: date = date(2026, 3, 4),
    currency: str = "EUR",
    e2e: str | None = None,
    creditor: str | None = None,
    name: str | None = None,
    text: str = "",
    reversal: bool = False,
) -> BankLine:
    return BankLine(id, on, amount, currency, e2e, creditor, name, text, reversal)


def item(
    id: str,
    amount: int,
    *,
    ref: str | None = None,
    name: str | None = None,
    kind: str = "invoice",
    currency: str = "EUR",
    due: date = DUE,
    e2e: str | None = None,
    low: int | None = None,
    high: int | None = None,
) -> OpenItem:
    return OpenItem(id, kind, amount, currency, due, name, ref, e2e, low, high)


def only(found: list[Match]) -> Match:
    assert len(found) == 1, found
    return found[0]


def pairs(found: list[Match]) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
    return {(m.line_ids, m.item_ids) for m in found}


# References.


def test_rf_check_digits() -> None:
    assert is_rf("RF18539007547034")
    assert is_rf("rf18 5390 0754 7034")
    assert not is_rf("RF19539007547034")
    assert not is_rf("INV-2026-00123")
    assert make_rf("539007547034") == "RF18539007547034"
    assert is_rf(make_rf("ACME2026X"))
    with pytest.raises(ValueError, match="1 to 21"):
        make_rf("")


def test_reference_tokens_find_grouped_and_dashed_references() -> None:
    tokens = ref_tokens("Payment RF18 5390 0754 7034, inv INV-2026-00123 thanks")
    assert "RF18539007547034" in tokens
    assert "INV202600123" in tokens
    assert normalise_ref(" inv-2026/00123 ") == "INV202600123"


def test_name_normalisation() -> None:
    assert normalise_name("Acme GmbH") == normalise_name("ACME G.m.b.H.") == "acme"
    assert normalise_name("Société Générale S.A.") == "societe generale"
    assert name_similarity("Acme GmbH", "ACME G.m.b.H.") == 100
    assert name_similarity("Müller Logistik AG", "MUELLER LOGISTIK") >= 85
    assert name_similarity("Acme GmbH", "Globex Ltd") < 50


# Each step on a tiny case.


def test_reference_exact_rf() -> None:
    found = match(
        [line("L1", 12000, creditor="RF18539007547034", name="ACME GMBH")],
        [item("I1", 12000, ref="RF18539007547034", name="Acme GmbH"), item("I2", 12000)],
    )
    m = only(found)
    assert (m.line_ids, m.item_ids, m.allocations, m.fee, m.rule) == (
        ("L1",),
        ("I1",),
        (12000,),
        0,
        "reference",
    )
    assert m.score >= 0.97 and m.auto
    assert m.reasons[:3] == ("reference RF18539007547034", "amount equal", "date +2 days")
    assert "name 'ACME GMBH' ~ 'Acme GmbH' 100" in m.reasons


def test_reference_invoice_number_in_text_and_end_to_end_id() -> None:
    found = match(
        [
            line("L1", 5000, text="Payment inv-2026 00123 thank you"),
            line("L2", -7000, e2e="E2E-9", text="supplier run"),
        ],
        [
            item("I1", 5000, ref="INV-2026-00123"),
            item("I2", -7000, kind="bill", e2e="E2E-9"),
        ],
    )
    assert pairs(found) == {(("L1",), ("I1",)), (("L2",), ("I2",))}
    assert all(m.rule == "reference" and m.auto for m in found)
    by_line = {m.line_ids[0]: m for m in found}
    assert by_line["L1"].reasons[0] == "reference INV-2026-00123"
    assert by_line["L2"].reasons[0] == "end-to-end id E2E-9"


def test_reference_with_bank_fee() -> None:
    rules = Rules(fee_tolerance=300)
    found = match(
        [line("L1", 9750, text="INV-2026-00007")], [item("I1", 10000, ref="INV-2026-00007")], rules
    )
    m = only(found)
    assert (m.allocations, m.fee, m.rule) == ((9750,), 250, "reference")
    assert m.score >= 0.97 and m.auto
    assert "bank fee 250" in m.reasons


def test_reference_partial_payment_is_a_suggestion() -> None:
    lines = [line("L1", 4000, text="INV-2026-00007 first part")]
    items = [item("I1", 10000, ref="INV-2026-00007")]
    m = only(match(lines, items))
    assert (m.allocations, m.fee, m.rule, m.auto) == ((4000,), 0, "reference", False)
    assert m.score == pytest.approx(0.9)
    assert "partial payment 4000 of 10000" in m.reasons
    assert match(lines, items, Rules(partial=False)) == []


def test_amount_date_party() -> None:
    found = match(
        [line("L1", 23456, on=date(2026, 3, 5), name="ACME G.m.b.H.", text="transfer")],
        [
            item("I1", 23456, name="Acme GmbH"),
            item("I2", 23456, name="Globex Ltd"),  # same amount, another company
            item("I3", 23456, name="Acme GmbH", due=date(2026, 5, 2)),  # outside the window
        ],
    )
    m = only(found)
    assert (m.line_ids, m.item_ids, m.allocations, m.fee, m.rule) == (
        ("L1",),
        ("I1",),
        (23456,),
        0,
        "amount_date_party",
    )
    assert m.auto
    assert m.reasons == ("amount equal", "date +3 days", "name 'ACME G.m.b.H.' ~ 'Acme GmbH' 100")


def test_amount_date_party_expected_range_and_closest_date() -> None:
    found = match(
        [line("L1", 10150, on=date(2026, 3, 3), name="Initech")],
        [
            item("E1", 10000, kind="expected", low=9800, high=10200, name="Initech LLC"),
            item(
                "E2",
                10000,
                kind="expected",
                low=9800,
                high=10200,
                name="Initech LLC",
                due=date(2026, 3, 10),
            ),
        ],
    )
    m = only(found)
    assert m.item_ids == ("E1",)
    assert "amount within range 9800..10200" in m.reasons
    assert "best of 2 candidates" in m.reasons


def test_amount_date_party_ambiguous_is_only_suggested() -> None:
    found = match(
        [line("L1", 5000, on=date(2026, 3, 3), name="Acme")],
        [
            item("I1", 5000, name="Acme GmbH"),
            item("I2", 5000, name="Acme GmbH", due=date(2026, 3, 4)),
        ],
    )
    m = only(found)
    assert not m.auto and m.score <= 0.7
    assert "one of 2 candidates" in m.reasons


def test_fuzzy_reference_typo() -> None:
    found = match(
        [line("L1", 31400, on=date(2026, 3, 20), name="Acme GmbH", text="Re INV-2026-01234")],
        [item("I1", 31400, ref="INV-2026-01324", name="Acme GmbH")],
    )
    m = only(found)
    assert (m.line_ids, m.item_ids, m.rule, m.allocations) == (("L1",), ("I1",), "fuzzy", (31400,))
    assert m.reasons[0] == "reference INV-2026-01324 ~ INV202601234 92"
    assert "amount equal" in m.reasons
    assert m.auto  # typo, equal amount, same name


def test_split_one_line_pays_two_invoices() -> None:
    found = match(
        [line("L1", 3000, name="Beta Ltd", text="Invoices INV-2026-00001, INV-2026-00002")],
        [
            item("I1", 1000, ref="INV-2026-00001", name="Beta Ltd"),
            item("I2", 2000, ref="INV-2026-00002", name="Beta Ltd"),
            item("I3", 2000, ref="INV-2026-00003", name="Beta Ltd"),
        ],
    )
    m = only(found)
    assert (m.line_ids, m.item_ids, m.allocations, m.fee, m.rule) == (
        ("L1",),
        ("I1", "I2"),
        (1000, 2000),
        0,
        "split",
    )
    assert m.auto
    assert m.reasons[0] == "references INV-2026-00001, INV-2026-00002"


def test_split_two_lines_pay_one_item_by_counterparty() -> None:
    found = match(
        [
            line("L1", -4000, name="Gamma SA", text="part one"),
            line("L2", -6000, on=date(2026, 3, 9), name="GAMMA S.A.", text="part two"),
            line("L3", -2500, name="Gamma SA", text="other"),
        ],
        [item("B1", -10000, kind="bill", name="Gamma SA")],
    )
    m = only(found)
    assert (m.line_ids, m.item_ids, m.allocations, m.fee, m.rule) == (
        ("L1", "L2"),
        ("B1",),
        (-10000,),
        0,
        "split",
    )
    assert not m.auto  # by counterparty alone: a suggestion
    assert "2 lines add up to the item (amount equal)" in m.reasons


def test_split_with_fee_and_bounded() -> None:
    rules = Rules(fee_tolerance=100, max_split=2)
    lines = [line("L1", 2950, name="Delta", text="INV-A0001 INV-A0002")]
    items = [item("I1", 1000, ref="INV-A0001"), item("I2", 2000, ref="INV-A0002")]
    m = only(match(lines, items, rules))
    assert (m.allocations, m.fee) == ((1000, 1950), 50)
    three = [*items, item("I3", 500, ref="INV-A0003")]
    assert match([line("L1", 3500, text="INV-A0001 INV-A0002 INV-A0003")], three, rules) == []


# Invariants.


def test_never_across_currencies() -> None:
    found = match(
        [line("L1", 1000, currency="USD", creditor="RF18539007547034", name="Acme")],
        [item("I1", 1000, ref="RF18539007547034", name="Acme", currency="EUR")],
    )
    assert found == []


def test_reversal_is_not_matched() -> None:
    found = match(
        [line("L1", -5000, creditor="RF18539007547034", name="Acme", reversal=True)],
        [item("I1", -5000, kind="bill", ref="RF18539007547034", name="Acme")],
    )
    assert found == []


def test_a_line_and_an_item_are_used_at_most_once() -> None:
    found = match(
        [
            line("L1", 5000, text="INV-2026-00009"),
            line("L2", 5000, text="INV-2026-00009 again"),  # a duplicate payment
        ],
        [item("I1", 5000, ref="INV-2026-00009"), item("I2", 5000)],
    )
    used_lines = [i for m in found for i in m.line_ids]
    used_items = [i for m in found for i in m.item_ids]
    assert len(used_lines) == len(set(used_lines)) and len(used_items) == len(set(used_items))
    assert not any(m.auto for m in found)  # two lines for one item: nobody is sure


def test_unknown_step_refused() -> None:
    with pytest.raises(ValueError, match="unknown matching steps"):
        match([], [], Rules(steps=("reference", "magic")))


# Quality on a realistic generated set.


def test_synthetic_set_is_deterministic() -> None:
    assert labelled_set(300, seed=4) == labelled_set(300, seed=4)
    lines, items, truth = labelled_set(300, seed=4)
    assert len(items) == 300 and truth
    assert any(line.reversal for line in lines)


def test_recall_and_auto_precision_on_labelled_set() -> None:
    lines, items, truth = labelled_set(3000, seed=1)
    found = match(lines, items, Rules(fee_tolerance=FEE_TOLERANCE))
    proposed = {(frozenset(m.line_ids), frozenset(m.item_ids)) for m in found}
    auto = [(frozenset(m.line_ids), frozenset(m.item_ids)) for m in found if m.auto]
    recall = len(proposed & truth) / len(truth)
    precision = sum(pair in truth for pair in auto) / len(auto)
    print(f"labelled_set(3000, seed=1): recall {recall:.4f}, auto precision {precision:.4f}")
    assert recall >= 0.95
    assert precision >= 0.995
