"""One rule for small samples, in every table, line and figure of the reports.

A figure gets an interval only from :data:`MIN_SEEDS` seeds (or seed pairs) on, and only when
``results.json`` holds finite bounds; below that the text shows each seed's value instead, the
same way everywhere (``mean (seeds: a, b)``). The rule is applied here again, not only in
:mod:`curricmusic.evaluation.stats`, so a ``results.json`` written by an older curricmusic (which
kept 2-seed intervals) is reported by the same rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from curricmusic.common.numbers import MISSING, is_number, sig
from curricmusic.evaluation.stats import MIN_SEEDS_FOR_CI, no_interval_reason

__all__ = [
    "MIN_SEEDS",
    "Formatter",
    "has_interval",
    "row_has_interval",
    "stats_text",
    "effect_text",
    "seed_values",
    "pair_values",
    "no_interval_reason",
]

#: Seeds (or pairs) below which nothing shows an interval.
MIN_SEEDS = MIN_SEEDS_FOR_CI

Formatter = Callable[[Any], str]


def has_interval(stats: dict[str, Any] | None) -> bool:
    """Whether a ``mean_ci``-like entry may show its interval: enough seeds, finite bounds."""
    if not stats:
        return False
    n = stats.get("n", len(stats.get("values") or []))
    return (
        not stats.get("too_few")
        and isinstance(n, int)
        and n >= MIN_SEEDS
        and is_number(stats.get("ci_low"))
        and is_number(stats.get("ci_high"))
    )


def row_has_interval(row: dict[str, Any] | None, key: str) -> bool:
    """Whether a paired-comparison row may show the interval of ``row[key]``."""
    if not row:
        return False
    return (
        row.get("n_pairs", 0) >= MIN_SEEDS
        and is_number(row.get(f"{key}_ci_low"))
        and is_number(row.get(f"{key}_ci_high"))
    )


def seed_values(stats: dict[str, Any], formatter: Formatter = sig) -> str:
    """Each seed's value, comma separated (missing ones as ``-``)."""
    return ", ".join(formatter(v) for v in stats.get("values") or [])


def stats_text(stats: dict[str, Any] | None, formatter: Formatter = sig, mean_key: str = "mean") -> str:
    """``mean [low, high]`` with enough seeds; else the mean and each seed's value (one seed: its
    value alone); ``-`` when there is no number."""
    if not stats or not is_number(stats.get(mean_key)):
        return MISSING
    mean = formatter(stats[mean_key])
    if has_interval(stats):
        return f"{mean} [{formatter(stats['ci_low'])}, {formatter(stats['ci_high'])}]"
    values = stats.get("values") or []
    if len(values) <= 1:
        return mean
    return f"{mean} (seeds: {seed_values(stats, formatter)})"


def pair_values(row: dict[str, Any], key: str) -> list[float] | None:
    """Each pair's value of ``diff`` (arm - control), ``ratio`` (arm / control) or ``speedup``
    (control / arm), when the row records its pairs; None otherwise."""
    pairs = row.get("pairs")
    if not isinstance(pairs, list):
        return None
    values = []
    for pair in pairs:
        treatment, control = pair
        if key == "diff":
            values.append(treatment - control)
        elif key == "ratio" and control:
            values.append(treatment / control)
        elif key == "speedup" and treatment:
            values.append(control / treatment)
        else:
            return None
    return values


def effect_text(row: dict[str, Any] | None, key: str, formatter: Formatter = sig, suffix: str = "") -> str:
    """``value [low, high]`` of ``row[key]`` with enough pairs; else the value and each pair's
    value (``value (seeds: a, b)``), or the count of pairs when the row does not list them."""
    if not row or not is_number(row.get(key)):
        return MISSING
    value = f"{formatter(row[key])}{suffix}"
    if row_has_interval(row, key):
        return f"{value} [{formatter(row[f'{key}_ci_low'])}, {formatter(row[f'{key}_ci_high'])}]"
    n = row.get("n_pairs", 0)
    if n <= 1:
        return value
    values = pair_values(row, key)
    if values is None:
        return f"{value} ({n} seeds: no interval)"
    return f"{value} (seeds: {', '.join(formatter(v) + suffix for v in values)})"
