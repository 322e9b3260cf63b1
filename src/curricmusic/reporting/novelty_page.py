"""The self-contained ``novelty.html`` page of one sample set (``compare.html`` of several is
:mod:`~curricmusic.reporting.compare_page`).

The page says which embedder scored the set (asked for, or fallen back to), each figure with a
line on how to read it, and every sample in a table that scrolls inside its own box.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.numbers import count, sig
from curricmusic.reporting import howto
from curricmusic.reporting.embedder_note import embedder_note
from curricmusic.reporting.links import link, listen_html
from curricmusic.reporting.markdown import table_html
from curricmusic.reporting.style import CSS, fmt

__all__ = ["novelty_html", "rho_histogram"]

def _fmt(value: Any, digits: int = 3) -> str:
    return html.escape(fmt(value, digits))


def rho_histogram(sets: dict[str, list[float]], heldout: list[float]) -> str:
    """An <img> tag with histograms of rho per sample set and for the held-out pieces."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [v for vs in sets.values() for v in vs if v is not None] + [v for v in heldout if v is not None]
    if not values:
        return "<p>No distance ratios to plot.</p>"
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    bins = np.linspace(0, max(2.0, max(values) * 1.05), 25).tolist()
    for name, rho in sets.items():
        ax.hist([v for v in rho if v is not None], bins=bins, alpha=0.5, density=True, label=f"{name} samples")
    if heldout:
        ax.hist([v for v in heldout if v is not None], bins=bins, histtype="step", lw=1.5, color="black", density=True, label="held-out real pieces")
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xlabel("rho = d_NN(x, train) / median d_NN(held-out, train)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img alt='histogram of distance ratios' src='data:image/png;base64,{data}'>"


def _banner(report: dict[str, Any]) -> str:
    note, css = embedder_note([report["embedder"]])
    return f"<div class='banner {css}'>Novelty scores: {html.escape(note)}.</div>"


def _link(samples_dir: Path, out_dir: Path, name: str) -> str:
    target = samples_dir / Path(name).name  # a file name, never a path out of the folder
    links = [link(target, out_dir, name)]
    wav = target.with_suffix(".wav")
    if wav.is_file():
        links.append(link(wav, out_dir, "wav"))
    return " ".join(links) + listen_html(target, out_dir)


def _sample_row(sample: dict[str, Any], samples_dir: Path, out_dir: Path) -> list[str]:
    span = sample["copied_span"]
    where = f" from {html.escape(str(span['piece_id']))}" if span.get("piece_id") else ""
    flagged = f"yes: {html.escape('; '.join(sample['flag_reasons']))}" if sample["flagged"] else "no"
    return [
        _link(samples_dir, out_dir, sample["file"]),
        flagged,
        _fmt(sample["rho"]),
        f"{span['notes']} notes / {_fmt(span['bars'], 1)} bars{where}",
        *(_fmt(v) for v in sample["hit_rates"].values()),
        html.escape(sample["nearest"]["id"]),
        _fmt(sample["cosine"]),
        _fmt(sample["penalty"]),
    ]


def _summary_table(report: dict[str, Any]) -> str:
    """The set's figures, each with how to read it."""
    summary = report["summary"]
    figures = [
        ("samples", count(summary["n"]), ""),
        ("flagged (copy rate)", f"{summary['n_flagged']} ({fmt(summary['copy_rate'])})", howto.COPY_RATE),
        ("median rho", sig(summary.get("rho_median")), howto.RHO_MEDIAN),
        ("data-copying statistic C_T", f"{sig(summary.get('data_copying_C_T'))} ({summary.get('data_copying_cells', 0)} cells)", howto.C_T),
        ("false-flag rate on fresh material", fmt(summary.get("fresh_false_flag_rate")), howto.FALSE_FLAGS),
        ("longest copied span (notes)", str(summary.get("longest_copied_notes_max", "-")), howto.COPIED_SPAN),
        ("training bank", f"{report['bank']['n_train']} pieces of {', '.join(report['bank']['stages'])}", ""),
        ("held-out pieces", str(report["bank"]["n_heldout"]), ""),
    ]
    rows = [[html.escape(k), html.escape(v), f"<span class='howto'>{html.escape(r)}</span>"] for k, v, r in figures]
    return table_html(["figure", "value", "how to read it"], rows)


def novelty_html(report: dict[str, Any], samples_dir: Path, out_dir: Path) -> str:
    summary = report["summary"]
    rows = [_sample_row(sample, samples_dir, out_dir) for sample in report["samples"]]
    ns = list(report["samples"][0]["hit_rates"]) if report["samples"] else []
    head = ["sample", "flagged", "rho", "longest copied span"] + [f"{n}-gram hits" for n in ns]
    head += ["nearest training piece", "cosine", "penalty"]
    samples = table_html(head, rows, ["flagged" if sample["flagged"] else "" for sample in report["samples"]])
    calibration = _calibration_table(report.get("calibration", {}))
    skipped = "".join(f"<li>{html.escape(str(s['path']))}: {html.escape(s['reason'])}</li>" for s in report.get("skipped", []))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>novelty report</title><style>{CSS}</style></head><body>
<h1>Novelty of {html.escape(Path(report['samples_dir']).name)}</h1>
{_banner(report)}
<p>Against {html.escape(report['against'])}. rho below 1 means closer to the training data than unseen real music is.
Flagged when a span of {report['settings']['max_copied_bars']} bars or more is copied{_rho_rule(report)}.</p>
{_summary_table(report)}
{calibration}
{rho_histogram({'this set': [s['rho'] for s in report['samples']]}, summary.get('heldout_rho', []))}
<h2>Samples</h2>
<p class="howto">{html.escape(howto.RHO)} n-gram hits: share of the sample's note n-grams (transposed) found in the training data.</p>
{samples}
{'<h2>Skipped files</h2><ul>' + skipped + '</ul>' if skipped else ''}
</body></html>
"""


def _rho_rule(report: dict[str, Any]) -> str:
    calibration = report.get("calibration", {})
    if calibration.get("rho_flag"):
        return f", or when rho &lt; {_fmt(calibration.get('rho_threshold'))}"
    return " (the distance ratio does not flag with this embedder: see the calibration below)"


def _calibration_table(calibration: dict[str, Any]) -> str:
    """What the flag was checked against: copies it must catch, fresh music it must leave alone."""
    probe = calibration.get("probe")
    if not probe:
        return ""
    labels = {
        "copies": "training pieces, transposed and re-timed (must be flagged)",
        "fresh_in_style": "test pieces of the bank's stages: new tunes (must not be flagged)",
        "fresh_out_of_style": "random-walk melodies (must not be flagged)",
    }
    rows = [
        [html.escape(labels.get(name, name)), str(p["n"]), _fmt(p["rho_median"]), _fmt(p["flagged_by_rho"]),
         _fmt(p["flagged_by_span"]), _fmt(p["flagged"])]
        for name, p in probe.items()
    ]  # fmt: skip
    auc = calibration.get("separation_auc")
    auc_text = f" How to read the {html.escape(howto.SEPARATION_AUC)}" if auc is not None else ""
    head = ["material", "pieces", "median rho", "flagged by rho", "flagged by copied span", "flagged"]
    return (
        f"<h2>Calibration of the flag</h2><p>{html.escape(calibration.get('rho_flag_reason', ''))}. "
        f"Held-out set: {html.escape(calibration.get('heldout', ''))}.{auc_text}</p>" + table_html(head, rows)
    )
