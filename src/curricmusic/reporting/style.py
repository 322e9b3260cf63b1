"""What every page of the reporting layer shares: one style sheet and one number formatter."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["CSS", "fmt"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.88em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}thead{background:#f3f3f3}tr.flagged{background:#fde0dd}
figure{margin:1.5em 0}img{max-width:100%}figcaption{color:#555;font-size:0.85em}
.banner{padding:0.6em 1em;border-radius:4px;margin:1em 0}.real{background:#e5f5e0}.fake{background:#fde0dd}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:0.8em}.empty{color:#999}
.listen{display:flex;flex-direction:column;gap:2px;margin-top:4px}.listen audio{width:260px;height:32px}
img.roll{max-width:360px;border:1px solid #eee}.samples{display:flex;flex-wrap:wrap;gap:1em}
.sample{border:1px solid #ddd;border-radius:4px;padding:0.5em;font-size:0.85em}
"""


def fmt(value: Any, digits: int = 3) -> str:
    """A number as the reports show it: ``-`` for missing or not finite, thousands grouped from
    1000 on, else ``digits`` decimals; anything else as ``str`` (escape it for HTML).

    >>> [fmt(None), fmt(float("nan")), fmt(0.12345), fmt(12345.6), fmt(3), fmt("x")]
    ['-', '-', '0.123', '12,346', '3', 'x']
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)
