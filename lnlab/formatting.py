"""Numbers written so that the digits that matter show, for explorers' text and figure labels.

A confidence of 0.999999998 printed with four significant digits reads ``1``, and a loss floor of
1.2e-11 reads ``1.2e-11`` only if the exponent survives. :func:`format_probability` writes a value
near 1 as ``1 − 2.1e-9`` (how far below 1 it is), a value near 0 in scientific notation, and
anything else with ``digits`` significant digits; :func:`format_number` does the same for any
real number without the ``1 − …`` form.
"""

from __future__ import annotations

import math

MINUS = "\u2212"  # the typographic minus: "1 − 2.1e-9" reads as a difference, not a hyphen


def format_number(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits and a short exponent: ``0.7312``, ``1.03e-11``, ``2e+5``."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    text = f"{x:.{digits}g}"
    return _short_exponent(text) if "e" in text else text


def format_scientific(x: float, digits: int = 2) -> str:
    """``x`` in scientific notation with ``digits`` significant digits: ``2.1e-9``, ``5e-4``."""
    x = float(x)
    if not math.isfinite(x) or x == 0.0:
        return format_number(x, digits)
    mantissa, exponent = f"{x:.{max(digits - 1, 0)}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return _short_exponent(f"{mantissa}e{exponent}")


def _short_exponent(text: str) -> str:
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent):+d}" if int(exponent) > 0 else f"{mantissa}e{int(exponent)}"


def format_probability(p: float, complement: float | None = None, digits: int = 3) -> str:
    """A probability that says something when it is near 1 or 0.

    ``0.7312 -> "0.731"``, ``0.999999998 -> "1 − 2e-9"``, ``3.4e-12 -> "3.4e-12"``, ``1.0 -> "1"``.
    A value within ``10**-digits`` of 1 is written as ``1 − q``, one below ``10**-digits`` in
    scientific notation; pass ``complement`` (``1 − p``
    computed accurately, e.g. ``-math.expm1(-loss)``) when ``p`` is so close to 1 that float64 rounds
    it to 1.0 and ``1 − p`` would read 0.
    """
    p = float(p)
    q = float(complement) if complement is not None else 1.0 - p
    if not (math.isfinite(p) and math.isfinite(q)):
        return str(p)
    if p > 1.0 or p < 0.0:  # not a probability: say so with its digits, not as "1" or "0"
        return format_number(p, digits)
    if q <= 0.0:
        return "1"
    if q < 10.0 ** -digits:
        return f"1 {MINUS} {format_scientific(q, max(digits - 1, 1))}"
    if 0.0 < p < 10.0 ** -digits:
        return format_scientific(p, digits)
    return format_number(p, digits)
