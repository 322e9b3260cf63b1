"""The small Markdown the reports write, rendered to HTML, so that report.html shows what
report.md says with no Markdown left over.

What it reads: headings (``#`` to ``####``), paragraphs, bullet lists (``- ``), pipe tables (each
wrapped in a box that scrolls sideways, so a wide table never widens the page), and inline
``code``, ``**bold**`` and ``[text](relative link)``. Everything is HTML-escaped first; a link
whose target has a scheme (``javascript:``, ``http:``) is printed as text.
"""

from __future__ import annotations

import html
import re

__all__ = ["markdown_to_html", "inline_html", "table_html"]

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,4}) (.*)$")


def _link(match: re.Match[str]) -> str:
    text, target = match.group(1), match.group(2)
    if ":" in target.split("/", 1)[0]:  # a scheme: never a link from a report
        return f"{text} ({target})"
    return f'<a href="{target}">{text}</a>'


def inline_html(text: str) -> str:
    """One line of Markdown text as HTML: escaped, then code, bold and relative links.

    >>> inline_html("a `<b>` **c** [d](./e.html)")
    'a <code>&lt;b&gt;</code> <strong>c</strong> <a href="./e.html">d</a>'
    """
    escaped = html.escape(text, quote=False)
    escaped = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", escaped)
    escaped = _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", escaped)
    return _LINK.sub(_link, escaped)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


_NUMBER = re.compile(r"^(-|[-+>]?\s?[0-9.][^a-z]*)(\s|$|x\b|\()")
_TAG = re.compile(r"<[^>]+>")


def _cell(cell: str) -> str:
    """A ``<td>``: numbers right-aligned (the default), words left-aligned (class ``t``)."""
    text = html.unescape(_TAG.sub("", cell)).strip()
    return f"<td>{cell}</td>" if not text or _NUMBER.match(text) else f"<td class='t'>{cell}</td>"


def table_html(head: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    """A table of already-rendered HTML cells inside a box that scrolls sideways; ``row_classes``
    gives each body row a CSS class (empty: none)."""
    classes = row_classes or [""] * len(rows)
    parts = ['<div class="scroll"><table><thead><tr>']
    parts += [f"<th>{cell}</th>" for cell in head]
    parts.append("</tr></thead><tbody>")
    parts += [
        (f"<tr class='{css}'>" if css else "<tr>") + "".join(_cell(cell) for cell in row) + "</tr>"
        for row, css in zip(rows, classes, strict=True)
    ]
    parts.append("</tbody></table></div>")
    return "".join(parts)


def markdown_to_html(markdown: str, skip_title: bool = True) -> str:
    """The report's Markdown as HTML blocks (the ``# title`` line left out when ``skip_title``)."""
    out: list[str] = []
    table: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if table:
            rows = [_cells(line) for line in table]
            if len(table) > 1 and re.fullmatch(r"[\s:|-]+", table[1]):  # the divider under the head
                del rows[1]
            if rows:
                head, body = rows[0], rows[1:]
                out.append(table_html([inline_html(c) for c in head], [[inline_html(c) for c in row] for row in body]))
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline_html(item)}</li>" for item in items) + "</ul>")
            items.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            if items:
                flush()
            table.append(line)
            continue
        if line.startswith("- "):
            if table:
                flush()
            items.append(line[2:])
            continue
        flush()
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            if level == 1 and skip_title:
                continue
            out.append(f"<h{level}>{inline_html(heading.group(2))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{inline_html(line)}</p>")
    flush()
    return "\n".join(out)
