"""The report's "Listen" section: a few samples per arm, each with its audio and piano roll.

For every arm, the first ``per_seed`` samples of each of its first ``max_seeds`` finished runs
(at the arm's chosen learning rate) that have a WAV beside them, each as an ``<audio>`` player,
a piano-roll image and a link to the MIDI file; then a link per run to its ``novelty.html``,
which lists every sample. Links are relative to the report and URL-quoted
(:mod:`~curricmusic.reporting.links`): the page plays offline, from the folder it sits in.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from curricmusic.common.readback import read_json
from curricmusic.reporting.links import link, listen_html

__all__ = ["listening_html", "listed_samples"]


def _runs_of(results: dict[str, Any], arm: str) -> list[dict[str, Any]]:
    chosen = results["arms"][arm].get("lr")
    runs = [r for r in results["runs"] if r["arm"] == arm and r["status"] == "done"]
    if chosen is not None and any(r.get("lr") == chosen for r in runs):
        runs = [r for r in runs if r.get("lr") == chosen]
    return sorted(runs, key=lambda r: r["seed"])


def listed_samples(results: dict[str, Any], page_dir: Path, per_seed: int = 2, max_seeds: int = 3) -> dict[str, list[dict]]:
    """Per arm, the samples the section lists: ``seed``, ``midi`` (a path) and ``novelty``
    (the run's novelty page, or None). Only samples with a WAV beside them are listed."""
    out: dict[str, list[dict]] = {}
    for arm in results["arms"]:
        rows = []
        for run in _runs_of(results, arm)[:max_seeds]:
            samples = Path(page_dir) / run["run_dir"] / "samples"
            manifest = samples / "manifest.json"
            if not manifest.is_file():
                continue
            page = Path(page_dir) / run["run_dir"] / "novelty" / "novelty.html"
            listed = read_json(manifest, {"samples": list}, hint="`curricmusic run --resume` samples again") or {}
            names = [Path(s["file"]).name for s in listed["samples"]]
            playable = [samples / n for n in names if (samples / n).with_suffix(".wav").is_file()][:per_seed]
            rows += [{"seed": run["seed"], "midi": m, "novelty": page if page.is_file() else None} for m in playable]
        out[arm] = rows
    return out


def listening_html(results: dict[str, Any], page_dir: Path, per_seed: int = 2, max_seeds: int = 3) -> str:
    """The section's HTML (empty when no sample has audio)."""
    listed = listed_samples(results, page_dir, per_seed, max_seeds)
    if not any(listed.values()):
        return ""
    parts = [
        "<h2>Listen</h2>",
        f"<p>The first {per_seed} samples of each arm's first {max_seeds} seeds (with copy-blocking as configured), "
        "rendered with the General MIDI soundfont; each seed's novelty page lists every sample.</p>",
    ]
    for arm, rows in listed.items():
        if not rows:
            continue
        cards = "".join(
            f"<div class='sample'><div>seed {row['seed']} &middot; {link(row['midi'], page_dir, row['midi'].name)}</div>"
            f"{listen_html(row['midi'], page_dir)}</div>"
            for row in rows
        )
        pages = {row["seed"]: row["novelty"] for row in rows if row["novelty"] is not None}
        more = ", ".join(link(page, page_dir, f"seed {seed}") for seed, page in pages.items())
        parts.append(f"<h3>{html.escape(arm)}</h3><div class='samples'>{cards}</div>")
        if more:
            parts.append(f"<p>Every sample, with its novelty scores: {more}.</p>")
    return "\n".join(parts)
