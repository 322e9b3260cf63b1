"""MkDocs hook: Sphinx roles in docstrings (``:func:`~a.b.name```) shown as plain code.

The docstrings cross-reference with Sphinx roles; rendered as Markdown, a role would show its
name (``:func:``) before the code. This keeps the code, and for ``~a.b.name`` only ``name``, as
Sphinx does.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:func|class|data|mod|meth|attr|exc|obj|const|ref|term):<code>(~?)([^<]*)</code>")


def strip_roles(html: str) -> str:
    def replace(match: re.Match[str]) -> str:
        text = match.group(2)
        if match.group(1):
            text = text.rsplit(".", 1)[-1]
        return f"<code>{text}</code>"

    return ROLE.sub(replace, html)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return strip_roles(html)
