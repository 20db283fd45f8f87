"""A generated, labelled bank reconciliation data set, for tests and benchmarks.

Open items (invoices, bills, expected payments) of a few hundred companies and a statement
that pays most of them the ways real payers do: on time or late, quoting the reference or
not, with typos, in instalments, several invoices at once, short by a bank fee, partly,
returned, plus unrelated noise; common amounts recur across companies, so an amount alone
is ambiguous. The truth is the set of (line ids, item ids) each payment settles.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import date, timedelta
from typing import Final

from rapidfuzz import fuzz, process

from bpo.settlements.matching import BankLine, OpenItem
from bpo.settlements.matching_pool import normalise_name
from bpo.settlements.references import make_rf

Truth = set[tuple[frozenset[str], frozenset[str]]]

START: Final = date(2026, 1, 1)
_SURNAME_WORDS = (
    "Müller Schäfer Lefèvre Østergaard Nakamura Johansson Fernández Kowalski Brennan "
    "Dubois Vermeulen Rossi Papadopoulos Andersson Novák Haverkamp Castellano Whitfield "
    "Björklund García Lindqvist Moreau Ferreira Okonkwo Schneider Van-der-Berg Marchetti "
    "Hoffmann Rasmussen Delacroix Kuznetsov Oyelaran Fitzgerald Zimmermann Halvorsen Łukasik "
    "Ramírez Takahashi Villeneuve Grünewald Abernathy Kristiansen Montgomery Sørensen "
    "Albrecht Bianchi Carvalho Dimitrov Eriksson Fontaine Gallagher Hernández Ivanova"
)
_TRADE_WORDS = (
    "Logistik Consulting Baustoffe Software Maschinenbau Textiles Pharma Foods Printing "
    "Elektrotechnik Transport Architects Analytics Medical Hospitality Furniture Robotics "
    "Recycling Insurance Chemicals Aerospace Packaging Ceramics Shipping Vineyards"
)
_SURNAMES, _TRADES = _SURNAME_WORDS.split(), _TRADE_WORDS.split()
_FORMS = ("GmbH", "AG", "Ltd", "LLC", "Inc", "SA", "SARL", "BV", "KG", "Limited")
# The bank's spelling of a legal form: a normalised name must not care.
_BANK_FORMS = {"GmbH": "G.m.b.H.", "Ltd": "Limited", "SA": "S.A.", "BV": "B.V.", "Inc": "Inc."}
# Price points many companies use: the same amount recurs across counterparties.
_COMMON = (5000, 9900, 10000, 11900, 15000, 19900, 25000, 29900, 49900, 50000, 99900, 119000)
_SHIFTS = tuple(range(-3, 13))
_SHIFT_WEIGHTS = (1, 2, 3, 8, 8, 7, 6, 5, 4, 3, 3, 2, 2, 1, 1, 1)
_SCENARIOS = {
    "unpaid": 6,
    "exact": 40,
    "ref_typo": 7,
    "name_typo": 7,
    "noref": 14,
    "fee": 7,
    "split": 6,
    "merged": 5,
    "partial": 4,
    "reversal": 2,
}
# How the line quotes the reference, and spells the payer, per scenario (else exact, bank).
_MODES = {"ref_typo": ("typo", "bank"), "name_typo": ("exact", "typo"), "noref": ("none", "bank")}
_PAY_TEXT = ("Payment {}", "Rechnung {} vom Vormonat", "INVOICE {} THANK YOU", "{}", "Re {} ok")
_PLAIN_TEXT = ("SEPA CREDIT TRANSFER", "Payment", "Ueberweisung", "TRANSFER", "Zahlung danke")
_NOISE = ("AMAZON PAYMENTS EU", "SHELL 0423", "DEUTSCHE TELEKOM", "BANK CHARGES", "PAYROLL")
FEE_TOLERANCE: Final = 500


def labelled_set(
    n_items: int, *, seed: int = 0, currency: str = "EUR"
) -> tuple[list[BankLine], list[OpenItem], Truth]:
    """`n_items` open items, the bank lines paying most of them, and the true pairs."""
    gen = _Generator(random.Random(seed), currency, max(20, min(300, n_items // 10)))
    while len(gen.items) < n_items:
        gen.scenario(n_items - len(gen.items))
    for _ in range(n_items // 25):
        gen.noise()
    gen.lines.sort(key=lambda line: (line.booked_on, line.id))
    return gen.lines, gen.items, gen.truth


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _typo(text: str, rng: random.Random, skip: int = 0) -> str:
    """One swapped, missing or replaced letter or digit (never in the first `skip`)."""
    spots = [i for i, ch in enumerate(text) if ch.isalnum() and i >= skip]
    i = rng.choice(spots[:-1] or spots)
    kind = rng.choice(("swap", "drop", "replace"))
    if kind == "swap" and i + 1 < len(text) and text[i + 1].isalnum() and text[i] != text[i + 1]:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == "drop":
        return text[:i] + text[i + 1 :]
    pool = "0123456789" if text[i].isdigit() else "abcdefghijklmnopqrstuvwxyz"
    new = rng.choice([c for c in pool if c != text[i].lower()])
    return text[:i] + (new.upper() if text[i].isupper() else new) + text[i + 1 :]


class _Generator:
    def __init__(self, rng: random.Random, currency: str, n_parties: int) -> None:
        self.rng, self.currency = rng, currency
        self.items: list[OpenItem] = []
        self.lines: list[BankLine] = []
        self.truth: Truth = set()
        self.parties = self._companies(n_parties)
        self.recurring = {name: rng.choice(_COMMON) * rng.randint(1, 3) for name in self.parties}

    def _companies(self, count: int) -> list[str]:
        """Distinct names: none as similar to another as a typo would make it."""
        names: list[str] = []
        keys: list[str] = []
        while len(names) < count:
            name = f"{self.rng.choice(_SURNAMES)} {self.rng.choice(_TRADES)}"
            if self.rng.random() < 0.2:
                name = f"{self.rng.choice(_SURNAMES)} & {name}"
            key = normalise_name(name)
            if process.extractOne(key, keys, scorer=fuzz.token_sort_ratio, score_cutoff=80):
                continue
            names.append(f"{name} {self.rng.choice(_FORMS)}")
            keys.append(key)
        return names

    # Open items.

    def new_item(self, party: str, kind: str, due: date) -> OpenItem:
        rng, seq = self.rng, len(self.items) + 1
        roll = rng.random()
        if roll < 0.15:
            size = rng.choice(_COMMON)
        elif roll < 0.2:
            size = self.recurring[party]
        else:
            size = max(500, min(20_000_000, int(rng.lognormvariate(10.5, 1.1))))
        amount = -size if kind == "bill" or (kind == "expected" and rng.random() < 0.3) else size
        ref: str | None = make_rf(str(rng.randrange(10**5, 10**14)))
        if rng.random() < 0.5:
            ref = f"INV-2026-{seq:06d}"
        e2e, low, high = None, None, None
        if kind == "bill" and rng.random() < 0.5:
            e2e = f"E2E{seq:09d}"
        if kind == "expected":
            ref = ref if rng.random() < 0.5 else None
            e2e = f"E2E{seq:09d}" if rng.random() < 0.6 else None
            if rng.random() < 0.6:
                margin = max(1, abs(amount) // 50)
                low, high = amount - margin, amount + margin
        window = 7 if kind == "expected" else 10
        item = OpenItem(
            f"I{seq:07d}", kind, amount, self.currency, due, party, ref, e2e, low, high, window
        )
        self.items.append(item)
        return item

    def _kind(self) -> str:
        return self.rng.choices(("invoice", "bill", "expected"), (60, 35, 5))[0]

    # Bank lines.

    def line(self, item: OpenItem, amount: int, *, ref: str, name: str, shift: int) -> BankLine:
        """A line paying `amount` towards `item`; ref: exact, typo or none; name: bank, typo."""
        rng, reference = self.rng, item.reference
        text, creditor, e2e = rng.choice(_PLAIN_TEXT), None, None
        if ref != "none" and reference:
            quoted = _typo(reference, rng, skip=4) if ref == "typo" else reference
            if quoted.startswith("RF") and rng.random() < 0.7:
                creditor = quoted
            else:
                if quoted.startswith("RF"):  # printed in groups of four
                    quoted = " ".join(quoted[i : i + 4] for i in range(0, len(quoted), 4))
                text = rng.choice(_PAY_TEXT).format(quoted)
        if ref == "exact" and item.end_to_end_id:
            e2e = item.end_to_end_id
        payer = self.bank_name(str(item.counterparty_name))
        if name == "typo":
            payer = _typo(payer, rng, skip=1)
        return self._add(item.due_on + timedelta(days=shift), amount, e2e, creditor, payer, text)

    def _add(
        self,
        booked: date,
        amount: int,
        e2e: str | None,
        creditor: str | None,
        payer: str,
        text: str,
    ) -> BankLine:
        line = BankLine(
            f"L{len(self.lines) + 1:07d}", booked, amount, self.currency, e2e, creditor, payer, text
        )
        self.lines.append(line)
        return line

    def bank_name(self, name: str) -> str:
        """How the payer's bank spells the company: capitals, other legal form, no accents."""
        roll = self.rng.random()
        if roll < 0.4:
            return _strip_accents(name).upper()
        if roll < 0.6:
            words = name.split()
            return " ".join([*words[:-1], _BANK_FORMS.get(words[-1], words[-1])])
        if roll < 0.7:
            return name.rsplit(" ", 1)[0]
        return name

    def shift(self, item: OpenItem) -> int:
        """Days late (or early); an expected payment arrives within its window by definition."""
        days = self.rng.choices(_SHIFTS, _SHIFT_WEIGHTS)[0]
        return min(days, item.window_days) if item.kind == "expected" else days

    def pay_amount(self, item: OpenItem) -> int:
        if item.amount_min is not None and item.amount_max is not None:
            return self.rng.randint(item.amount_min, item.amount_max)
        return item.amount

    # Scenarios.

    def scenario(self, room: int) -> None:
        rng = self.rng
        kind = rng.choices(list(_SCENARIOS), list(_SCENARIOS.values()))[0]
        party = rng.choice(self.parties)
        due = START + timedelta(days=rng.randrange(365))
        if kind == "merged" and room >= 3:
            self.merged(party, due)
            return
        item = self.new_item(party, self._kind(), due)
        if kind == "unpaid":
            return
        if kind == "split" and item.amount_min is None:
            self.split(item)
            return
        if kind == "fee" and item.kind == "invoice":
            short = rng.randint(1, min(FEE_TOLERANCE, item.amount - 1))
            mode = "exact" if rng.random() < 0.7 else "none"
            self._one(item, item.amount - short, ref=mode)
            return
        if kind == "partial" and item.kind != "expected":
            part = item.amount * rng.randint(30, 80) // 100
            self._one(item, part, ref="exact")
            return
        ref, name = _MODES.get(kind, ("exact", "bank"))
        paying = self._one(item, self.pay_amount(item), ref=ref, name=name)
        if kind == "reversal":
            later = paying.booked_on + timedelta(days=rng.randint(2, 5))
            back = f"RETURN {item.reference or 'PAYMENT'} AC04"
            self.lines.append(
                BankLine(
                    f"L{len(self.lines) + 1:07d}",
                    later,
                    -paying.amount,
                    self.currency,
                    None,
                    None,
                    paying.counterparty_name,
                    back,
                    reversal=True,
                )
            )

    def _one(self, item: OpenItem, amount: int, *, ref: str, name: str = "bank") -> BankLine:
        paying = self.line(item, amount, ref=ref, name=name, shift=self.shift(item))
        self.truth.add((frozenset({paying.id}), frozenset({item.id})))
        return paying

    def split(self, item: OpenItem) -> None:
        """One item paid in 2-3 instalments, most quoting its reference."""
        count = self.rng.randint(2, 3)
        # Instalments of at least a sixth of the total each (the rest shared at random).
        whole = abs(item.amount)
        floor = whole // 6
        cuts = sorted(self.rng.sample(range(1, whole - count * floor), count - 1))
        spread = [b - a for a, b in zip([0, *cuts], [*cuts, whole - count * floor], strict=True)]
        sizes = [floor + part for part in spread]
        sign = 1 if item.amount > 0 else -1
        ref = "exact" if self.rng.random() < 0.75 else "none"
        ids = {
            self.line(item, sign * size, ref=ref, name="bank", shift=self.shift(item)).id
            for size in sizes
        }
        self.truth.add((frozenset(ids), frozenset({item.id})))

    def merged(self, party: str, due: date) -> None:
        """One line paying 2-3 invoices (or bills) of a company, most naming their numbers."""
        kind = self.rng.choice(("invoice", "bill"))
        group = [
            self.new_item(party, kind, due + timedelta(days=self.rng.randint(-5, 5)))
            for _ in range(self.rng.randint(2, 3))
        ]
        total = sum(item.amount for item in group)
        text = self.rng.choice(_PLAIN_TEXT)
        if self.rng.random() < 0.85:
            text = "Rechnungen " + ", ".join(str(item.reference) for item in group)
        booked = max(item.due_on for item in group) + timedelta(days=self.shift(group[0]))
        line = self._add(booked, total, None, None, self.bank_name(party), text)
        self.truth.add((frozenset({line.id}), frozenset(item.id for item in group)))

    def noise(self) -> None:
        """A line that pays none of the items: card payments, charges, payroll, refunds."""
        rng = self.rng
        payer = self.bank_name(rng.choice(self.parties)) if rng.random() < 0.4 else None
        payer = payer or rng.choice(_NOISE)
        amount = (int(rng.lognormvariate(9, 1.5)) + 1) * rng.choice((1, -1))
        booked = START + timedelta(days=rng.randrange(380))
        self._add(booked, amount, None, None, payer, f"{rng.choice(_NOISE)} {rng.randrange(10**6)}")
