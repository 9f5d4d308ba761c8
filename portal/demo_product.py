"""The product behind the demo API: stands for whatever an operator sells through Meterdesk.

Two deterministic operations of different weight: facts about a whole number (cheap, 1 unit)
and descriptive statistics of a list of numbers (heavier, 5 units). Both are pure functions of
their input, so a retried call gets the same answer.
"""

import math
import statistics
from collections.abc import Sequence
from typing import Any

# The lookup factors by trial division: up to 10**9 that is at most ~10k divisions (a few ms).
LOOKUP_MAX = 10**9
ROMAN = [
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
]


def prime_factors(number: int) -> list[int]:
    """Prime factors with multiplicity, smallest first (1 has none)."""
    factors = []
    for prime in (2, 3):
        while number % prime == 0:
            factors.append(prime)
            number //= prime
    candidate = 5
    while candidate * candidate <= number:
        for divisor in (candidate, candidate + 2):
            while number % divisor == 0:
                factors.append(divisor)
                number //= divisor
        candidate += 6
    if number > 1:
        factors.append(number)
    return factors


def roman_numeral(number: int) -> str | None:
    """Standard Roman numerals exist for 1..3999; None outside that range."""
    if not 1 <= number <= 3999:
        return None
    parts = []
    for value, letters in ROMAN:
        count, number = divmod(number, value)
        parts.append(letters * count)
    return "".join(parts)


def number_facts(number: int) -> dict[str, Any]:
    factors = prime_factors(number)
    divisor_count = math.prod(factors.count(p) + 1 for p in set(factors))
    root = math.isqrt(number)
    return {
        "number": number,
        "is_prime": len(factors) == 1,
        "prime_factors": factors,
        "divisor_count": divisor_count,
        "parity": "even" if number % 2 == 0 else "odd",
        "is_perfect_square": root * root == number,
        "binary": format(number, "b"),
        "hexadecimal": format(number, "x"),
        "roman": roman_numeral(number),
    }


def percentile(ordered: Sequence[float], rank: float) -> float:
    """Linear interpolation between closest ranks (the "inclusive" method, as in spreadsheets)."""
    position = (len(ordered) - 1) * rank / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def describe(values: Sequence[float], percentiles: Sequence[float] = ()) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "sum": math.fsum(ordered),
        "mean": statistics.fmean(ordered),
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        # Sample standard deviation; None: undefined for a single value.
        "stdev": statistics.stdev(ordered) if len(ordered) > 1 else None,
        "percentiles": {_label(rank): percentile(ordered, rank) for rank in percentiles},
    }


def _label(rank: float) -> str:
    return str(int(rank)) if float(rank).is_integer() else str(rank)
