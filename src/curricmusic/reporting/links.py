"""Links between the files of a report: URL-quoted relative paths that can never be a scheme.

A sample named ``javascript:alert(1).mid`` must link to that file, not run a script when clicked;
a ``#`` or ``%`` in a name must not cut the link short. Every segment of the relative path is
percent-encoded (``:`` included) and the link starts with ``./`` or ``../``, so a browser always
reads it as a path beside the page.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from urllib.parse import quote

__all__ = ["relative_href", "link", "listen_html"]


def relative_href(target: str | os.PathLike[str], page_dir: str | os.PathLike[str]) -> str:
    """The URL of ``target`` relative to a page in ``page_dir`` (not yet HTML-escaped).

    >>> relative_href("out/samples/javascript:alert(1).mid", "out/samples")
    './javascript%3Aalert%281%29.mid'
    """
    relative = Path(os.path.relpath(Path(target), Path(page_dir)))
    parts = [quote(part, safe="") for part in relative.parts]
    if not parts:  # the page's own folder
        return "./"
    if parts[0] != "..":
        parts.insert(0, ".")
    return "/".join(parts)


def link(target: str | os.PathLike[str], page_dir: str | os.PathLike[str], text: str) -> str:
    """An ``<a>`` element to ``target`` from a page in ``page_dir``, its text HTML-escaped."""
    return f"<a href=\"{html.escape(relative_href(target, page_dir))}\">{html.escape(text)}</a>"


def listen_html(midi: str | os.PathLike[str], page_dir: str | os.PathLike[str]) -> str:
    """An ``<audio>`` player of the WAV beside ``midi`` and its piano-roll PNG, for the files that
    exist (empty when neither does); relative links, nothing fetched before the reader presses play."""
    midi = Path(midi)
    wav, png = midi.with_suffix(".wav"), midi.with_suffix(".png")
    parts = []
    if wav.is_file():
        src = html.escape(relative_href(wav, page_dir))
        parts.append(f"<audio controls preload=\"none\" src=\"{src}\"></audio>")
    if png.is_file():
        src = html.escape(relative_href(png, page_dir))
        parts.append(f"<img class=\"roll\" alt=\"piano roll of {html.escape(midi.name)}\" src=\"{src}\">")
    return f"<div class=\"listen\">{''.join(parts)}</div>" if parts else ""
