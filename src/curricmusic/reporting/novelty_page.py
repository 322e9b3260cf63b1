"""The self-contained ``novelty.html`` page of one sample set, and ``compare.html`` of several."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.reporting.links import link, listen_html
from curricmusic.reporting.style import CSS, fmt

__all__ = ["novelty_html", "compare_html", "rho_histogram"]

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
    embedder = report["embedder"]
    real = embedder.get("weights_real")
    text = f"Embedder: {embedder.get('spec')} (weights {'real' if real else 'not real: no learned weights'})"
    if embedder.get("fallback_reason"):
        text += f". Requested {embedder.get('requested')}: {embedder['fallback_reason']}"
    return f"<div class='banner {'real' if real else 'fake'}'>{html.escape(text)}</div>"


def _link(samples_dir: Path, out_dir: Path, name: str) -> str:
    target = samples_dir / Path(name).name  # a file name, never a path out of the folder
    links = [link(target, out_dir, name)]
    wav = target.with_suffix(".wav")
    if wav.is_file():
        links.append(link(wav, out_dir, "wav"))
    return " ".join(links) + listen_html(target, out_dir)


def novelty_html(report: dict[str, Any], samples_dir: Path, out_dir: Path) -> str:
    summary = report["summary"]
    rows = []
    for sample in report["samples"]:
        span = sample["copied_span"]
        rows.append(
            f"<tr class='{'flagged' if sample['flagged'] else ''}'><td>{_link(samples_dir, out_dir, sample['file'])}</td>"
            f"<td>{html.escape(sample['nearest']['id'])}</td><td>{_fmt(sample['cosine'])}</td><td>{_fmt(sample['rho'])}</td>"
            f"<td>{_fmt(sample['penalty'])}</td><td>{span['notes']} notes / {_fmt(span['bars'], 1)} bars"
            f"{' from ' + html.escape(str(span['piece_id'])) if span['piece_id'] else ''}</td>"
            + "".join(f"<td>{_fmt(v)}</td>" for v in sample["hit_rates"].values())
            + f"<td>{'yes: ' + html.escape('; '.join(sample['flag_reasons'])) if sample['flagged'] else 'no'}</td></tr>"
        )
    ns = list(report["samples"][0]["hit_rates"]) if report["samples"] else []
    head = "".join(f"<th>{h}</th>" for h in ["sample", "nearest training piece", "cosine", "rho", "penalty", "longest copied span"])
    head += "".join(f"<th>{n}-gram hits</th>" for n in ns) + "<th>flagged</th>"
    figures = [
        ("samples", summary["n"]),
        ("flagged (copy rate)", f"{summary['n_flagged']} ({_fmt(summary['copy_rate'])})"),
        ("median rho", _fmt(summary.get("rho_median"))),
        ("data-copying statistic C_T", f"{_fmt(summary.get('data_copying_C_T'))} ({summary.get('data_copying_cells', 0)} cells)"),
        ("false-flag rate on fresh material", _fmt(summary.get("fresh_false_flag_rate"))),
        ("longest copied span (notes)", summary.get("longest_copied_notes_max")),
        ("training bank", f"{report['bank']['n_train']} pieces of {', '.join(report['bank']['stages'])}"),
        ("held-out pieces", report["bank"]["n_heldout"]),
    ]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in figures)
    calibration = _calibration_table(report.get("calibration", {}))
    skipped = "".join(f"<li>{html.escape(str(s['path']))}: {html.escape(s['reason'])}</li>" for s in report.get("skipped", []))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>novelty report</title><style>{CSS}</style></head><body>
<h1>Novelty of {html.escape(Path(report['samples_dir']).name)}</h1>
{_banner(report)}
<p>Against {html.escape(report['against'])}. rho below 1 means closer to the training data than unseen real music is.
Flagged when a span of {report['settings']['max_copied_bars']} bars or more is copied{_rho_rule(report)}.</p>
<table><tbody>{table}</tbody></table>
{calibration}
{rho_histogram({'this set': [s['rho'] for s in report['samples']]}, summary.get('heldout_rho', []))}
<h2>Samples</h2><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>
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
    rows = "".join(
        f"<tr><td>{html.escape(labels.get(name, name))}</td><td>{p['n']}</td><td>{_fmt(p['rho_median'])}</td>"
        f"<td>{_fmt(p['flagged_by_rho'])}</td><td>{_fmt(p['flagged_by_span'])}</td><td>{_fmt(p['flagged'])}</td></tr>"
        for name, p in probe.items()
    )
    return (
        f"<h2>Calibration of the flag</h2><p>{html.escape(calibration.get('rho_flag_reason', ''))}. "
        f"Held-out set: {html.escape(calibration.get('heldout', ''))}.</p>"
        "<table><thead><tr><th>material</th><th>pieces</th><th>median rho</th><th>flagged by rho</th>"
        f"<th>flagged by copied span</th><th>flagged</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def compare_html(reports: dict[str, dict[str, Any]]) -> str:
    keys = [
        ("samples", lambda r: r["summary"].get("n")),
        ("copy rate", lambda r: r["summary"].get("copy_rate")),
        ("median rho", lambda r: r["summary"].get("rho_median")),
        ("rho 5%", lambda r: (r["summary"].get("rho_quantiles") or {}).get("0.05")),
        ("C_T", lambda r: r["summary"].get("data_copying_C_T")),
        ("longest copied notes", lambda r: r["summary"].get("longest_copied_notes_max")),
        ("copied bars (max)", lambda r: r["summary"].get("copied_bars_max")),
        ("embedder", lambda r: r["embedder"].get("spec")),
        ("weights real", lambda r: r["embedder"].get("weights_real")),
    ]
    head = "<th>figure</th>" + "".join(f"<th>{html.escape(name)}</th>" for name in reports)
    body = "".join(
        f"<tr><td>{label}</td>" + "".join(f"<td>{_fmt(get(r))}</td>" for r in reports.values()) + "</tr>" for label, get in keys
    )
    heldout = next(iter(reports.values()))["summary"].get("heldout_rho", [])
    figure = rho_histogram({name: [s["rho"] for s in r["samples"]] for name, r in reports.items()}, heldout)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>novelty comparison</title><style>{CSS}</style></head><body>
<h1>Novelty comparison</h1><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{figure}</body></html>
"""
