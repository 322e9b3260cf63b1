"""``report.md`` (a table to paste into a paper) and a self-contained, offline ``report.html``."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from curricmusic.common.atomic import write_bytes, write_text
from curricmusic.reporting.adaptation import adaptation_figures, adaptation_lines
from curricmusic.reporting.answer import answer_paragraph
from curricmusic.reporting.mastery import mastery_figures, mastery_lines
from curricmusic.reporting.probe_section import probe_lines
from curricmusic.reporting.style import CSS, fmt

__all__ = ["write_reports", "markdown_report", "html_report", "report_figures", "FIGURES_DIR", "fmt"]

REPORT_METRICS = ["pitch_class_entropy", "scale_consistency", "polyphony", "note_density", "empty_beat_rate", "groove_consistency"]


def _ci(stats: dict[str, Any]) -> str:
    """``mean [low, high]``; with too few seeds for an interval, the mean and each seed's value."""
    if not stats or stats.get("mean") is None:
        return "-"
    if stats.get("too_few"):
        values = ", ".join(fmt(v) for v in stats.get("values", []))
        return f"{fmt(stats['mean'])} (seeds: {values})" if values else "-"
    return f"{fmt(stats['mean'])} [{fmt(stats['ci_low'])}, {fmt(stats['ci_high'])}]"


def _to_target(stats: dict[str, Any]) -> tuple[str, str, str]:
    """(reached share, restricted mean, Kaplan-Meier median) of tokens to target."""
    if not stats or not stats.get("n"):
        return "-", "-", "-"
    reached = f"{stats['n_reached']}/{stats['n']}"
    mean = _ci({**stats, "mean": stats["restricted_mean"]})
    median = fmt(stats["km_median"]) if stats["km_median"] is not None else f"> {fmt(stats['budget'])}"
    return reached, mean, median


def _effect(row: dict[str, Any], key: str) -> str:
    value, low, high = row.get(key), row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if value is None:
        return "-"
    return f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"


def _embedder_line(results: dict[str, Any]) -> str:
    novelty = [a.get("novelty", {}) for a in results["arms"].values() if a.get("novelty")]
    if not novelty:
        return "no novelty scores"
    specs = sorted({s for n in novelty for s in n["embedders"]})
    real = all(n["weights_real"] for n in novelty)
    return f"embedder {', '.join(specs)}; weights {'real' if real else 'NOT real (fallback or no weights)'}"


def _target_line(results: dict[str, Any]) -> str:
    target = results.get("target") or {}
    rule = target.get("rule", "")
    return f"Target stage: `{results['target_stage']}`; target loss: {fmt(results.get('target_loss'))} ({rule})."


def markdown_report(results: dict[str, Any]) -> str:
    lines = [
        f"# {results['experiment']}",
        "",
        answer_paragraph(results),
        "",
        results.get("description") or "",
        "",
        _target_line(results),
        "",
        f"Novelty scores: {_embedder_line(results)}.",
        "",
    ]
    warnings = results.get("warnings") or []
    if warnings:
        lines += ["## Sample too small", ""] + [f"- {w}" for w in warnings] + [""]
    lines += [
        "| arm | pacing | seeds | final target val loss | best target val loss | test loss | AUC target val loss "
        "| reached target | tokens to target (restricted mean) | tokens to target (KM median) | copy rate "
        "| copy rate, no blocking | median rho |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, arm in results["arms"].items():
        s = arm["summary"]
        failed = f" ({arm['n_failed']} failed)" if arm["n_failed"] else ""
        pacing = arm["pacing"] if arm["order"] == "curriculum" else f"{arm['pacing']} ({arm['order']})"
        reached, mean, median = _to_target(s.get("tokens_to_target", {}))
        lines.append(
            f"| {name} | {pacing} | {arm['n_done']}{failed} | {_ci(s['final_val_target'])} | {_ci(s.get('best_val_target', {}))} | "
            f"{_ci(s.get('test_target', {}))} | {_ci(s['auc_val_target'])} | {reached} | {mean} | {median} | "
            f"{_ci(s['copy_rate'])} | {_ci(s.get('copy_rate_unblocked', {}))} | {_ci(s['rho_median'])} |"
        )
    lines += [
        "",
        "Mean [95% t-interval] over seeds; with fewer than 3 seeds, the mean and each seed's value. Tokens to "
        "target: seeds that never reach the target count as the whole budget (restricted mean); the Kaplan-Meier "
        "median is '> budget' while more than half the seeds never arrive.",
        "",
    ]
    lines += _budget_lines(results)
    if results["comparisons"]:
        lines += [
            "## Paired comparisons against the random-order baselines" + (" (exploratory)" if results.get("claims") else ""),
            "",
            "| arm | baseline | metric | seeds | difference [95% CI] | ratio [95% CI] | d_z | p | p (Holm) | detectable |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in results["comparisons"]:
            p = fmt(row["p_value"]) if not row.get("too_few_for_p") else "n < 5"
            p_holm = fmt(row["p_holm"]) if not row.get("too_few_for_p") else "-"
            lines.append(
                f"| {row['arm']} | {row['baseline']} | {row['metric']} | {row['n_pairs']} | {_effect(row, 'diff')} "
                f"| {_effect(row, 'ratio')} | {fmt(row['d_z'], 2)} | {p} | {p_holm} | {fmt(row.get('detectable_diff'))} |"
            )
        lines += [
            "",
            "Difference = arm - baseline, seed by seed; ratio = geometric mean of arm / baseline; d_z = mean "
            "difference / SD of the differences. p: paired t-test, only from 5 seeds; Holm over every row. "
            "Detectable: the smallest difference these seeds find with 80% power at the 5% level, given the "
            "spread of the differences (a null result says most where this is small).",
            "",
        ]
    lines += adaptation_lines(results)
    lines += mastery_lines(results)
    lines += _novelty_lines(results)
    lines += probe_lines(results)
    lines += [
        "## Musical metrics against held-out pieces (Yang & Lerch)",
        "",
        "Overlap of the distribution of distances between samples and held-out excerpts of the same number of "
        "bars (inter-set) with that of distances among the held-out excerpts (intra-set): 1 = the samples sit "
        "among held-out music as it sits among itself.",
        "",
    ]
    header = "| arm | " + " | ".join(REPORT_METRICS) + " |"
    lines += [header, "|---" * (len(REPORT_METRICS) + 1) + "|"]
    for name, arm in results["arms"].items():
        cells = [fmt(arm["music"].get(m, {}).get("overlap")) for m in REPORT_METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    unfinished = [r for r in results["runs"] if r["status"] != "done"]
    if unfinished:
        lines += ["", "## Runs that did not finish", ""]
        lines += [f"- {r['arm']} seed {r['seed']}: {r.get('error', r['status'])}" for r in unfinished]
    return "\n".join(lines) + "\n"


def _mean(values: list[Any]) -> float | None:
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _novelty_lines(results: dict[str, Any]) -> list[str]:
    """Per arm: copy rates with and without copy-blocking, pooled C_T, and the flag's calibration."""
    arms = {name: arm["novelty"] for name, arm in results["arms"].items() if arm.get("novelty")}
    if not arms:
        return []
    lines = [
        "## Novelty",
        "",
        "| arm | samples | copy rate | copy rate, no blocking | C_T, seeds pooled (cells) | false flags on fresh music |",
        "|---|---|---|---|---|---|",
    ]
    for name, n in arms.items():
        pooled = n.get("data_copying_C_T_pooled") or {}
        lines.append(
            f"| {name} | {n['n_samples']} | {fmt(n['copy_rate'])} | {fmt(n.get('copy_rate_unblocked'))} | "
            f"{fmt(pooled.get('C_T'))} ({pooled.get('cells', 0)}) | {fmt(_mean(n.get('fresh_false_flag_rate', [])))} |"
        )
    reason = next((n.get("rho_flag_reason") for n in arms.values() if n.get("rho_flag_reason")), None)
    lines += [
        "",
        "Copy rate: share of samples flagged (a copied span of the set number of bars, or a distance ratio below the "
        "calibrated threshold when the embedder can detect copies). 'No blocking': the same seeds sampled with "
        "copy-blocking off, what the model would copy. C_T (Meehan et al. 2020): << 0 copying, about 0 fine. "
        "False flags: share of fresh music (new tunes of the bank's stages, random melodies) flagged by the same rule.",
        "",
    ]
    if reason:
        lines += [f"Distance flag: {reason}.", ""]
    return lines


def _budget_lines(results: dict[str, Any]) -> list[str]:
    """What each arm trained on (real tokens, mean over seeds) and at which learning rate."""
    selection = results.get("lr_selection", {}).get("arms", {})
    lines = [
        "## Budgets: real tokens trained on (mean over seeds) and the learning rate",
        "",
        "| arm | tokens | target-stage tokens | learning rate |",
        "|---|---|---|---|",
    ]
    for name, arm in results["arms"].items():
        tokens = arm.get("tokens") or {}
        candidates = selection.get(name, {}).get("candidates", [])
        rate = fmt(arm.get("lr"), 6) if arm.get("lr") is not None else "-"
        if len(candidates) > 1:
            rate += f" (best of {len(candidates)} on validation)"
        lines.append(f"| {name} | {fmt(tokens.get('tokens_seen'))} | {fmt(tokens.get('target_tokens_seen'))} | {rate} |")
    if any(len(entry.get("candidates", [])) > 1 for entry in selection.values()):
        lines += ["", f"Learning rates chosen by rule: {results['lr_selection']['rule']}."]
    return lines + [""]


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f"<p class='empty'>No data for: {html.escape(alt)}</p>"
    data = base64.b64encode(png).decode()
    return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'><figcaption>{html.escape(alt)}</figcaption></figure>"


def _markdown_table_to_html(markdown: str) -> str:
    """The markdown tables as HTML tables; other lines as paragraphs or headings."""
    out: list[str] = []
    rows: list[list[str]] = []

    def flush() -> None:
        if rows:
            head, body = rows[0], rows[2:]
            out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr></thead><tbody>")
            out.extend("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
            out.append("</tbody></table>")
            rows.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            rows.append([c.strip().strip("`") for c in line.strip("|").split("|")])
            continue
        flush()
        if line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            out.append(f"<p>&bull; {html.escape(line[2:])}</p>")
        elif line.startswith("Novelty scores:"):
            continue  # shown in the banner
        elif line.strip() and not line.startswith("# "):
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)


FIGURES_DIR = "figures"


def report_figures(results: dict[str, Any]) -> list[tuple[str, bytes | None, str]]:
    """``(file name, png or None, caption)`` of every figure of the report, in its order."""
    from curricmusic.reporting import plots

    figures = [
        ("validation_loss.png", plots.validation_curves(results), "Target-stage validation loss per arm"),
        ("validation_loss_target_tokens.png", plots.validation_curves(results, x="target_tokens"),
         "Target-stage validation loss against target-stage tokens"),
        ("stage_losses.png", plots.stage_panels(results), "Per-stage validation loss, with the stage being learned shaded"),
        ("tokens_to_target.png", plots.tokens_to_target(results), "Tokens to reach the target validation loss"),
        ("final_loss.png", plots.tokens_to_target(results, "final_val_target"), "Final target-stage validation loss"),
        ("musical_metrics.png", plots.metric_distributions(results, REPORT_METRICS), "Musical metrics against held-out pieces"),
        ("novelty.png", plots.novelty_histograms(results), "Novelty: distance ratio of samples and held-out pieces"),
    ]  # fmt: skip
    adapted = adaptation_figures(results)
    names = ["adaptation_curves.png", "adaptation_shots.png"] + [f"adaptation_{i}.png" for i in range(2, len(adapted))]
    figures += [(name, png, caption) for name, (png, caption) in zip(names, adapted, strict=False)]
    return figures + mastery_figures(results)


def html_report(
    results: dict[str, Any], page_dir: str | Path | None = None, figures: list[tuple[str, bytes | None, str]] | None = None
) -> str:
    """The report page; with ``page_dir`` (the folder it is written to), the "Listen" section
    with relative links to the samples' audio and piano rolls. ``figures``: those of
    :func:`report_figures`, when already drawn."""
    from curricmusic.reporting.listening import listening_html

    embedder = _embedder_line(results)
    banner_class = "real" if "weights real" in embedder else "fake"
    drawn = figures if figures is not None else report_figures(results)
    images = [_img(png, caption) for _, png, caption in drawn]
    settings = {
        "experiment": results["config"],
        "curriculum": results["curriculum"],
        "versions": results["versions"],
    }
    body = _markdown_table_to_html(markdown_report(results))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(results['experiment'])} - curricmusic report</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(results['experiment'])}</h1>
<div class="banner {banner_class}">Novelty scores: {html.escape(embedder)}.</div>
{body}
{listening_html(results, Path(page_dir)) if page_dir is not None else ''}
<h2>Figures</h2>
{''.join(images)}
<h2>Settings and versions</h2>
<pre>{html.escape(json.dumps(settings, indent=2))}</pre>
</body></html>
"""


def write_reports(results: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """report.md (with the figures as PNG files in ``figures/``, linked) and report.html (the
    same figures embedded: one file to send)."""
    out_dir = Path(out_dir)
    figures = report_figures(results)
    links = []
    for name, png, caption in figures:
        if png is not None:
            write_bytes(out_dir / FIGURES_DIR / name, png)
            links.append(f"![{caption}]({FIGURES_DIR}/{name})")
    text = markdown_report(results)
    if links:
        text += "\n## Figures\n\n" + "\n\n".join(links) + "\n"
    md = write_text(out_dir / "report.md", text)
    page = write_text(out_dir / "report.html", html_report(results, out_dir, figures))
    return md, page
