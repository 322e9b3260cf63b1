"""What every page of the reporting layer shares: one style sheet and the number formatter
(:mod:`curricmusic.common.numbers`, which command-line lines use too)."""

from __future__ import annotations

from curricmusic.common.numbers import count, fmt, sig

__all__ = ["CSS", "fmt", "sig", "count"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0;font-size:0.88em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
td{white-space:nowrap}th:first-child,td:first-child,td.t{text-align:left}td .howto,td.howto{white-space:normal;display:block;min-width:16em}thead{background:#f3f3f3}tr.flagged{background:#fde0dd}
.scroll{max-width:100%;overflow-x:auto;margin:1em 0}
figure{margin:1.5em 0}img{max-width:100%}figcaption{color:#555;font-size:0.85em}
.banner{padding:0.6em 1em;border-radius:4px;margin:1em 0}.real{background:#e5f5e0}.fake{background:#fde0dd}.chosen{background:#eef3fb}
.answer{border-left:4px solid #1f77b4;background:#f7f9fc;padding:0.6em 1em 0.6em 2em;margin:1em 0}.answer li{margin:0.2em 0}
.howto{color:#555;font-size:0.85em}.wrap{white-space:normal;display:block;min-width:12em;max-width:24em}.note{color:#555}.same{background:#fff7bc}
code{background:#f3f3f3;padding:0 0.2em;border-radius:3px;font-size:0.92em}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:0.8em}.empty{color:#999}
.listen{display:flex;flex-direction:column;gap:2px;margin-top:4px}.listen audio{width:260px;height:32px}
img.roll{max-width:360px;border:1px solid #eee}.samples{display:flex;flex-wrap:wrap;gap:1em}
.sample{border:1px solid #ddd;border-radius:4px;padding:0.5em;font-size:0.85em}
"""
