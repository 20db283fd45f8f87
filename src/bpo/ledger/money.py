"""Currencies and amounts of the books: integers of minor units, ISO 4217 exponents.

An amount is an integer count of the currency's minor units (12050 EUR is 120.50; JPY has
none, KWD three), as billing keeps them (DESIGN §6). Conversion to the firm's functional
currency uses a decimal rate and rounds half to even, once per line.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

import iso4217


class UnknownCurrency(ValueError):
    pass


@lru_cache(maxsize=512)
def exponent(code: str) -> int:
    """Minor-unit digits of an ISO 4217 currency (metals and funds without one: refused)."""
    try:
        digits = iso4217.Currency(code).exponent
    except ValueError:
        raise UnknownCurrency(f"{code!r} is not an ISO 4217 currency code") from None
    if digits is None:
        raise UnknownCurrency(f"{code} has no minor unit (ISO 4217): not a currency of books")
    return int(digits)


def is_currency(code: object) -> bool:
    if not isinstance(code, str) or len(code) != 3:
        return False
    try:
        exponent(code)
    except UnknownCurrency:
        return False
    return True


def convert(amount: int, currency: str, rate: Decimal, functional: str) -> int:
    """`amount` minor units of `currency` at `rate` (functional units per currency unit)."""
    if currency == functional:
        return amount
    shift = exponent(functional) - exponent(currency)
    value = Decimal(amount) * rate * (Decimal(10) ** shift)
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split `total` across `weights` in proportion, the parts summing to `total` exactly
    (largest remainders), so converted lines still balance."""
    whole = sum(weights)
    if whole == 0:
        return [0 for _ in weights]
    shares = [total * w // whole for w in weights]
    rest = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: -((total * weights[i]) % whole))
    for i in order[: abs(rest)]:
        shares[i] += 1 if rest > 0 else -1
    return shares
