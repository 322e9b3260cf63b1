"""``compare.html``: several sample sets side by side, each column named by what it is.

A column is one sample set: its arm and seed, copy-blocking on or off, what it was scored
against, a link to its novelty page and samples, and a mark when its samples are the same files
as another column's. Each score's row says how to read it; a figure sets the distributions of
the distance ratio and of the longest copied span side by side.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curricmusic.common.numbers import fmt, is_number, sig
from curricmusic.reporting import howto
from curricmusic.reporting.embedder_note import embedder_note
from curricmusic.reporting.links import link
from curricmusic.reporting.markdown import table_html
from curricmusic.reporting.style import CSS

__all__ = ["compare_html", "distributions_png"]

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if is_number(v)]


def distributions_png(labels: list[str], rho: list[list[float]], spans: list[list[float]], heldout: list[float]) -> bytes | None:
    """Two panels side by side: each set's distance ratios (with the held-out pieces' own as a
    reference) and each set's longest copied spans (notes), as box plots with every sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not any(rho) and not any(spans):
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(labels) + 2.4), constrained_layout=True)
    panels = ((left, rho + [_finite(heldout)], labels + ["held-out real pieces"], "distance ratio rho (1 = as far as unseen music)"),
              (right, spans, labels, "longest copied span (notes)"))  # fmt: skip
    rng = np.random.default_rng(0)
    for ax, data, names, title in panels:
        kept = [(i, d) for i, d in enumerate(data) if d]
        if not kept:
            ax.axis("off")
            continue
        positions = list(range(len(kept)))
        ax.boxplot([d for _, d in kept], positions=positions, orientation="horizontal", widths=0.5, showfliers=False)
        for y, (i, values) in zip(positions, kept, strict=True):
            color = "black" if i >= len(labels) else _COLORS[i % len(_COLORS)]
            ax.scatter(values, y + rng.uniform(-0.15, 0.15, len(values)), s=10, alpha=0.6, color=color, zorder=3)
        ax.set_yticks(positions, [names[i] for i, _ in kept], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    left.axvline(1.0, color="grey", ls=":", lw=1)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _img(png: bytes | None) -> str:
    if png is None:
        return "<p class='empty'>No distances or copied spans to plot.</p>"
    data = base64.b64encode(png).decode()
    return (
        "<figure><img alt='distance ratio and longest copied span of each set' "
        f"src='data:image/png;base64,{data}'><figcaption>Each set's samples (dots) and their spread (boxes). "
        f"Left: {html.escape(howto.RHO)} Right: {html.escape(howto.COPIED_SPAN)}</figcaption></figure>"
    )


def _samples_cell(one: dict[str, Any], out_dir: Path) -> str:
    parts = []
    if one.get("page"):
        parts.append(link(one["page"], out_dir, "novelty page"))
    if Path(one["samples_dir"]).is_dir():
        parts.append(link(Path(one["samples_dir"]), out_dir, "sample files"))
    return " &middot; ".join(parts) or "-"


def _identity_rows(sets: list[dict[str, Any]], reports: list[dict[str, Any]], out_dir: Path) -> list[list[str]]:
    def blocking(one: dict[str, Any]) -> str:
        return {True: "on", False: "off", None: "not recorded"}[one["copy_blocking"]]

    rows = [
        ["arm"] + [html.escape(str(one["arm"] or "-")) for one in sets],
        ["seed"] + [html.escape(str(one["seed"] if one["seed"] is not None else "-")) for one in sets],
        ["copy-blocking"] + [blocking(one) for one in sets],
        ["scored against"] + [f"<span class='wrap'>{html.escape(one['against'])}</span>" for one in sets],
        ["embedder"] + [html.escape(f"{r['embedder'].get('spec')}") for r in reports],
        ["pages"] + [_samples_cell(one, out_dir) for one in sets],
    ]
    if any(one["identical_to"] for one in sets):
        rows.append(
            ["identical samples"]
            + [f"<span class='same wrap'>same files as {html.escape(', '.join(one['identical_to']))}</span>" if one["identical_to"] else "-" for one in sets]
        )
    return rows


_FIGURES: list[tuple[str, Callable[[dict[str, Any]], Any], Callable[[Any], str], str]] = [
    ("samples", lambda r: r["summary"].get("n"), str, ""),
    ("copy rate", lambda r: r["summary"].get("copy_rate"), fmt, howto.COPY_RATE),
    ("median rho", lambda r: r["summary"].get("rho_median"), sig, howto.RHO_MEDIAN),
    ("rho, 5% quantile", lambda r: (r["summary"].get("rho_quantiles") or {}).get("0.05"), sig, ""),
    ("C_T", lambda r: r["summary"].get("data_copying_C_T"), sig, howto.C_T),
    ("longest copied span (notes)", lambda r: r["summary"].get("longest_copied_notes_max"), str, howto.COPIED_SPAN),
    ("longest copied span (bars)", lambda r: r["summary"].get("copied_bars_max"), lambda v: fmt(v, 1), ""),
    ("false flags on fresh music", lambda r: r["summary"].get("fresh_false_flag_rate"), fmt, howto.FALSE_FLAGS),
]


def _figure_rows(reports: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for label, get, show, read in _FIGURES:
        first = html.escape(label) + (f"<div class='howto'>{html.escape(read)}</div>" if read else "")
        rows.append([first] + [html.escape(show(get(r)) if get(r) is not None else "-") for r in reports])
    return rows


def compare_html(sets: list[dict[str, Any]], reports: list[dict[str, Any]], out_dir: str | Path) -> str:
    """The page: who each set is, its figures with how to read them, and the distributions.
    ``sets`` come from :func:`curricmusic.novelty.compare.describe_set` (with ``identical_to``)."""
    out_dir = Path(out_dir)
    head = ["set"] + [html.escape(one["label"]) for one in sets]
    table = table_html(head, _identity_rows(sets, reports, out_dir) + _figure_rows(reports))
    note, banner = embedder_note(r["embedder"] for r in reports)
    identical = [one for one in sets if one["identical_to"]]
    warning = ""
    if identical:
        groups = sorted({tuple(sorted([one["label"], *one["identical_to"]])) for one in identical})
        listed = "; ".join(" = ".join(group) for group in groups)
        warning = (
            f"<p class='banner fake'>Identical sample sets: {html.escape(listed)}. Their files are the same, so their "
            "figures differ only where they were scored differently; comparing them says nothing about the samples.</p>"
        )
    heldout: list[Any] = next((r["summary"]["heldout_rho"] for r in reports if r["summary"].get("heldout_rho")), [])
    png = distributions_png(
        [one["label"] for one in sets],
        [_finite([s.get("rho") for s in r["samples"]]) for r in reports],
        [_finite([(s.get("copied_span") or {}).get("notes") for s in r["samples"]]) for r in reports],
        heldout,
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>novelty comparison</title><style>{CSS}</style></head><body>
<h1>Novelty comparison</h1>
<div class="banner {banner}">Novelty scores: {html.escape(note)}.</div>
{warning}
<p>{len(sets)} sample set(s), one column each: what the set is (arm, seed, copy-blocking, what it was scored against), then
its scores, each with how to read it.</p>
{table}
{_img(png)}
</body></html>
"""
