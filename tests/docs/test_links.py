"""Every relative link of the README and the handbook resolves, and none points outside the repository.

A link resolves when its file exists (relative to the page, through docs/studies and
docs/benchmarks/RESULTS.md, which link to the studies' and benchmarks' own files: so a page
there may link only inside its own folder, which works on disk and in the site alike) and, with an
``#anchor``, when the target page has a heading with that id, as MkDocs makes them. The strict
site build (`make docs`) checks the same for the built site; this test needs no build.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from tests.docs.handbook import DOCS, REPO, load, pages

reference = load("hooks/reference.py")

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6} (.+?)\s*$", re.MULTILINE)


def _links(text: str) -> list[str]:
    text = FENCE.sub("", text)
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [a or b for a, b in LINK.findall(text)]


@functools.cache
def _anchors(page: Path) -> set[str]:
    """Ids of the page's headings: ``{#id}`` where given, else MkDocs' slug of the text."""
    ids = set()
    text = reference.expand(page.read_text(encoding="utf-8"))  # with the generated tables' headings
    for heading in HEADING.findall(FENCE.sub("", text)):
        given = re.search(r"\{#([\w-]+)\}$", heading)
        text = re.sub(r"\s*\{[^}]*\}$", "", heading).replace("`", "")
        ids.add(given.group(1) if given else slugify(text, "-"))
    return ids


def _resolve(page: Path, target: str) -> tuple[Path, str]:
    path, _, anchor = target.partition("#")
    return ((page.parent / path) if path else page), anchor


def _problems(page: Path, text: str | None = None) -> list[str]:
    """What is wrong with the relative links of ``page`` (of ``text`` as if it were that page)."""
    problems = []
    for target in _links(page.read_text(encoding="utf-8") if text is None else text):
        if re.match(r"^[a-z]+:", target):  # a web address: not a relative link
            continue
        path, anchor = _resolve(page, target)
        if not path.exists():
            problems.append(f"{target}: no such file")
        elif not path.resolve().is_relative_to(REPO):
            problems.append(f"{target}: outside the repository")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            problems.append(f"{target}: no heading #{anchor} in {path.name}")
    return problems


LINKED = [REPO / "README.md", *pages()]


@pytest.mark.parametrize("page", LINKED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert _problems(page) == []


def test_there_are_links_to_check():
    assert sum(len(_links(p.read_text(encoding="utf-8"))) for p in LINKED) > 150


def test_a_broken_link_is_found():
    page = DOCS / "guides" / "experiment.md"
    text = "[ok](../statistics.md#tokens-to-target-with-the-seeds-that-never-arrive) [gone](../nowhere.md) [anchor](../statistics.md#no-such-heading) [up](../../../etc/hostname)"
    found = [problem.split(": ")[0] for problem in _problems(page, text)]
    assert found == ["../nowhere.md", "../statistics.md#no-such-heading", "../../../etc/hostname"]


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for needed in ("make env", "make demo", "docs/getting-started.md", "docs/architecture/changes.md", "FINDINGS.md"):
        assert needed in text
    assert "../" not in text  # nothing above the repository


def test_every_study_is_on_the_studies_page():
    index = (REPO / "studies" / "README.md").read_text(encoding="utf-8")
    for study in sorted(p.parent.name for p in (REPO / "studies").glob("*/FINDINGS.md")):
        assert f"({study}/FINDINGS.md)" in index, study


def test_every_page_is_in_the_site_navigation():
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w./-]+\.md)\s*$|^\s*-\s*([\w./-]+\.md)\s*$", nav, re.MULTILINE))
    listed_paths = {a or b for a, b in listed}
    missing = [str(p.relative_to(DOCS)) for p in pages() if str(p.relative_to(DOCS)) not in listed_paths]
    assert missing == [], "add the page to nav in mkdocs.yml"
