"""The one number formatter of every page, plot and command-line line.

Each kind of number is printed to the precision it carries:

- :func:`fmt`: shares, rates and scores in ``[0, 1]``-ish ranges, ``digits`` decimals
  (``0.125``), thousands grouped from 1,000 on;
- :func:`sig`: losses and their differences, ``digits`` significant digits (``5.33``,
  ``-0.0271``), thousands grouped from 1,000 on;
- :func:`count`: tokens, notes and pieces, a whole number with thousands separators (``12,288``).

All of them print ``-`` for a missing or non-finite value, so a NaN never reaches a reader.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fmt", "sig", "p_text", "count", "is_number", "MISSING"]

#: What a missing or non-finite number prints as.
MISSING = "-"


def is_number(value: Any) -> bool:
    """A finite int or float (``bool`` is not a number here).

    >>> [is_number(v) for v in (1, 2.5, float("nan"), None, True, "3")]
    [True, True, False, False, False, False]
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def fmt(value: Any, digits: int = 3) -> str:
    """A number as the reports show it: ``-`` for missing or not finite, thousands grouped from
    1000 on, else ``digits`` decimals; anything else as ``str`` (escape it for HTML).

    >>> [fmt(None), fmt(float("nan")), fmt(0.12345), fmt(12345.6), fmt(3), fmt("x")]
    ['-', '-', '0.123', '12,346', '3', 'x']
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def p_text(value: Any) -> str:
    """A p-value: three decimals, ``< 0.001`` below that (never a bare ``0.000``), ``-`` when missing.

    >>> [p_text(0.0423), p_text(1.2e-7), p_text(None), p_text(1.0)]
    ['0.042', '< 0.001', '-', '1.000']
    """
    if not is_number(value):
        return MISSING
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def sig(value: Any, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits (losses and their differences); from 1,000 on a
    whole number with thousands separators; ``-`` when missing or not finite.

    >>> [sig(5.333894394995406), sig(-0.027099), sig(0.1), sig(1.3), sig(143846.2), sig(0.0), sig(None)]
    ['5.33', '-0.0271', '0.100', '1.30', '143,846', '0', '-']
    """
    if not is_number(value):
        return MISSING
    number = float(value)
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    if number == 0:
        return "0"
    exponent = math.floor(math.log10(abs(number)))
    rounded = round(number, max(0, digits - 1 - exponent))
    if abs(rounded) >= 1000:
        return f"{rounded:,.0f}"
    if rounded and math.floor(math.log10(abs(rounded))) > exponent:  # 9.996 -> 10.0: one digit more before the point
        exponent += 1
    decimals = max(0, digits - 1 - exponent)
    return f"{number:.{decimals}f}"


def count(value: Any) -> str:
    """A whole number (tokens, notes, pieces) with thousands separators; ``-`` when missing.

    >>> [count(12288.0), count(5), count(1234567), count(float("inf")), count(None)]
    ['12,288', '5', '1,234,567', '-', '-']
    """
    if not is_number(value):
        return MISSING
    return f"{round(float(value)):,}"
