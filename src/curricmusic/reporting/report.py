"""``report.md`` (a table to paste into a paper) and a self-contained, offline ``report.html``.

Both open with the answer (:mod:`~curricmusic.reporting.answer`), then the evidence. Every number
is printed by :mod:`curricmusic.common.numbers` to its precision, and every interval follows the
small-sample rule of :mod:`~curricmusic.reporting.intervals`. report.html renders the same
Markdown (:mod:`~curricmusic.reporting.markdown`): no Markdown is left over, and wide tables
scroll inside their own box.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curricmusic.common.atomic import write_bytes, write_text
from curricmusic.common.numbers import count, fmt, is_number, p_text, sig
from curricmusic.evaluation.metrics import PIECE_METRICS
from curricmusic.reporting import howto
from curricmusic.reporting.adaptation import adaptation_figures, adaptation_lines
from curricmusic.reporting.answer import answer_table_lines, opening_lines
from curricmusic.reporting.embedder_note import embedder_note, embedders_of_results
from curricmusic.reporting.intervals import MIN_SEEDS, effect_text, row_has_interval, stats_text
from curricmusic.reporting.markdown import markdown_to_html
from curricmusic.reporting.mastery import mastery_figures, mastery_lines
from curricmusic.reporting.probe_section import probe_lines
from curricmusic.reporting.style import CSS

__all__ = [
    "write_reports",
    "markdown_report",
    "markdown_body",
    "html_report",
    "report_figures",
    "report_metrics",
    "embedder_line",
    "FIGURES_DIR",
    "METRIC_LABELS",
    "fmt",
]

#: How each compared summary metric is named and printed.
METRIC_LABELS = {
    "final_val_target": "final validation loss",
    "best_val_target": "best validation loss",
    "test_target": "test loss",
    "auc_val_target": "mean validation loss over training (AUC)",
    "tokens_to_target": "tokens to target",
    "copy_rate": "copy rate",
    "copy_rate_unblocked": "copy rate, no blocking",
    "rho_median": "median rho",
}
_COUNTS = {"tokens_to_target"}
_SHARES = {"copy_rate", "copy_rate_unblocked"}


def _formatter(metric: str) -> Callable[..., str]:
    if metric in _COUNTS:
        return count
    if metric in _SHARES:
        return fmt
    return sig


def report_metrics(results: dict[str, Any]) -> list[str]:
    """The musical metrics the report shows: every per-piece metric of the registry
    (:data:`~curricmusic.evaluation.metrics.PIECE_METRICS`) that the results measured, in its order."""
    measured = set(results.get("heldout_music") or {})
    for arm in (results.get("arms") or {}).values():
        measured.update(arm.get("music") or {})
    return [name for name in PIECE_METRICS if name in measured]


def _to_target(stats: dict[str, Any]) -> tuple[str, str, str]:
    """(reached share, restricted mean, Kaplan-Meier median) of tokens to target."""
    if not stats or not stats.get("n"):
        return "-", "-", "-"
    reached = f"{stats['n_reached']}/{stats['n']}"
    mean = stats_text({**stats, "mean": stats["restricted_mean"]}, count)
    median = count(stats["km_median"]) if is_number(stats.get("km_median")) else f"> {count(stats['budget'])}"
    return reached, mean, median


def embedder_line(results: dict[str, Any]) -> tuple[str, str]:
    """``(sentence, banner class)``: which embedder scored novelty, chosen or fallen back to."""
    return embedder_note(embedders_of_results(results))


def _target_line(results: dict[str, Any]) -> str:
    target = results.get("target") or {}
    rule = target.get("rule", "")
    return f"Target stage: `{results['target_stage']}`; target loss: {sig(results.get('target_loss'))} ({rule})."


def _pacing(arm: dict[str, Any]) -> str:
    if arm["order"] == "curriculum":
        return str(arm["pacing"])
    return f"{arm['pacing']} ({arm['order']})"


def _arms_lines(results: dict[str, Any]) -> list[str]:
    """The table of every arm: losses, tokens to target, copying."""
    lines = [
        "## Every arm",
        "",
        "| arm | pacing | seeds | final target val loss | best target val loss | test loss | AUC target val loss "
        "| reached target | tokens to target (restricted mean) | tokens to target (KM median) | copy rate "
        "| copy rate, no blocking | median rho |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, arm in results["arms"].items():
        s = arm["summary"]
        gaps = [f"{arm['n_failed']} failed"] if arm["n_failed"] else []
        gaps += [f"{arm['n_unfinished']} not finished"] if arm.get("n_unfinished") else []
        failed = f" ({', '.join(gaps)})" if gaps else ""
        reached, mean, median = _to_target(s.get("tokens_to_target", {}))
        lines.append(
            f"| {name} | {_pacing(arm)} | {arm['n_done']}{failed} | {stats_text(s.get('final_val_target'))} | "
            f"{stats_text(s.get('best_val_target'))} | {stats_text(s.get('test_target'))} | {stats_text(s.get('auc_val_target'))} | "
            f"{reached} | {mean} | {median} | {stats_text(s.get('copy_rate'), fmt)} | "
            f"{stats_text(s.get('copy_rate_unblocked'), fmt)} | {stats_text(s.get('rho_median'))} |"
        )
    return lines + [
        "",
        f"Losses in nats per token. Mean [95% t-interval] over seeds from {MIN_SEEDS} seeds; below that, the mean and "
        "each seed's value. Tokens to target: seeds that never reach the target count as the whole budget (restricted "
        "mean); the Kaplan-Meier median is '> budget' while more than half the seeds never arrive.",
        "",
    ]


def _comparison_lines(results: dict[str, Any]) -> list[str]:
    """Every paired comparison: difference, ratio, d_z, p, detectable difference."""
    if not results["comparisons"]:
        return []
    lines = [
        "## Paired comparisons against the random-order baselines" + (" (exploratory)" if results.get("claims") else ""),
        "",
        "| arm | baseline | metric | seeds | difference [95% CI] | ratio [95% CI] | d_z | p | p (Holm) | detectable |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["comparisons"]:
        metric, show = row["metric"], _formatter(row["metric"])
        p = p_text(row["p_value"]) if not row.get("too_few_for_p") else "n < 5"
        p_holm = p_text(row["p_holm"]) if not row.get("too_few_for_p") else "-"
        spread = row_has_interval(row, "diff")  # d_z and the detectable difference need a spread
        d_z = fmt(row.get("d_z"), 2) if spread else "-"
        detectable = show(row.get("detectable_diff")) if spread else "-"
        lines.append(
            f"| {row['arm']} | {row['baseline']} | {METRIC_LABELS.get(metric, metric)} | {row['n_pairs']} | "
            f"{effect_text(row, 'diff', show)} | {effect_text(row, 'ratio', lambda v: fmt(v, 3))} | {d_z} | {p} | "
            f"{p_holm} | {detectable} |"
        )
    return lines + [
        "",
        "Difference = arm - baseline, seed by seed; ratio = geometric mean of arm / baseline; d_z = mean difference / SD "
        f"of the differences. Intervals, d_z and the detectable difference from {MIN_SEEDS} seeds (below that, each "
        "seed's value); p: paired t-test, only from 5 seeds; Holm over every row. Detectable: the smallest difference "
        "these seeds find with 80% power at the 5% level, given the spread of the differences (a null result says "
        "most where this is small).",
        "",
    ]


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
        "| arm | samples | copy rate | copy rate, no blocking | median rho (samples pooled) | C_T, seeds pooled (cells) | false flags on fresh music |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n in arms.items():
        pooled = n.get("data_copying_C_T_pooled") or {}
        rho = [v for v in n.get("rho") or [] if is_number(v)]
        median = statistics.median(rho) if rho else None
        lines.append(
            f"| {name} | {count(n['n_samples'])} | {fmt(n['copy_rate'])} | {fmt(n.get('copy_rate_unblocked'))} | "
            f"{sig(median)} | {sig(pooled.get('C_T'))} ({pooled.get('cells', 0)}) | {fmt(_mean(n.get('fresh_false_flag_rate', [])))} |"
        )
    reason = next((n.get("rho_flag_reason") for n in arms.values() if n.get("rho_flag_reason")), None)
    lines += [
        "",
        "How to read it:",
        "",
        f"- {howto.COPY_RATE} A sample is flagged for a copied span of the set number of bars, or a distance ratio "
        "below the calibrated threshold when the embedder can detect copies; 'no blocking': the same seeds sampled "
        "with copy-blocking off, what the model would copy.",
        f"- {howto.RHO_MEDIAN}",
        f"- {howto.C_T}",
        f"- {howto.FALSE_FLAGS}",
        "",
    ]
    if reason:
        lines += [f"Distance flag: {reason}. ({howto.SEPARATION_AUC})", ""]
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
        rate = f"{arm['lr']:g}" if is_number(arm.get("lr")) else "-"
        if len(candidates) > 1:
            rate += f" (best of {len(candidates)} on validation)"
        lines.append(f"| {name} | {count(tokens.get('tokens_seen'))} | {count(tokens.get('target_tokens_seen'))} | {rate} |")
    if any(len(entry.get("candidates", [])) > 1 for entry in selection.values()):
        lines += ["", f"Learning rates chosen by rule: {results['lr_selection']['rule']}."]
    return lines + [""]


def _music_lines(results: dict[str, Any]) -> list[str]:
    """Yang & Lerch overlaps: one row per metric of the registry, one column per arm."""
    metrics = report_metrics(results)
    if not metrics:
        return []
    arms = list(results["arms"])
    lines = [
        "## Musical metrics against held-out pieces (Yang & Lerch)",
        "",
        "Overlap of the distribution of distances between samples and held-out excerpts of the same number of "
        f"bars (inter-set) with that of distances among the held-out excerpts (intra-set). {howto.OVERLAP}",
        "",
        "| metric | " + " | ".join(arms) + " |",
        "|---" * (len(arms) + 1) + "|",
    ]
    for metric in metrics:
        cells = [fmt((results["arms"][a].get("music") or {}).get(metric, {}).get("overlap")) for a in arms]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return lines + [""]


def grouped_warnings(warnings: list[str]) -> list[str]:
    """The warnings of results.json, those that differ only by the arm they name merged into one
    ("arms 'a', 'b': ...")."""
    groups: dict[str, list[str]] = {}
    order: list[str] = []
    for warning in warnings:
        match = re.fullmatch(r"arm ('[^']*'): (.*)", warning)
        key = match.group(2) if match else warning
        if key not in groups:
            groups[key] = []
            order.append(key)
        if match:
            groups[key].append(match.group(1))
    out = []
    for key in order:
        arms = groups[key]
        out.append(key if not arms else f"arm{'s' if len(arms) > 1 else ''} {', '.join(arms)}: {key}")
    return out


def markdown_body(results: dict[str, Any]) -> str:
    """Everything after the opening lines: the context, then the evidence."""
    embedder, _ = embedder_line(results)
    lines = [results.get("description") or "", "", _target_line(results), "", f"Novelty scores: {embedder}.", ""]
    warnings = grouped_warnings(results.get("warnings") or [])
    if warnings:
        lines += ["## Sample too small", ""] + [f"- {w}" for w in warnings] + [""]
    lines += answer_table_lines(results)
    lines += _arms_lines(results)
    lines += _budget_lines(results)
    lines += _comparison_lines(results)
    lines += adaptation_lines(results)
    lines += mastery_lines(results)
    lines += _novelty_lines(results)
    lines += probe_lines(results)
    lines += _music_lines(results)
    unfinished = [r for r in results["runs"] if r["status"] != "done"]
    if unfinished:
        lines += ["## Runs that did not finish", ""]
        lines += [f"- {r['arm']} seed {r['seed']}: {r.get('error', r['status'])}" for r in unfinished]
    return "\n".join(lines).rstrip("\n") + "\n"


def markdown_report(results: dict[str, Any]) -> str:
    """report.md without its figures: the title, the opening lines, then :func:`markdown_body`."""
    return "\n".join([f"# {results['experiment']}", "", *opening_lines(results), "", markdown_body(results)])


def _img(png: bytes | str | None, alt: str) -> str:
    if isinstance(png, str):  # no figure: the sentence that says why
        return f"<p class='note'><strong>{html.escape(alt)}</strong>: {html.escape(png)}</p>"
    if png is None:
        return f"<p class='empty'>No data for: {html.escape(alt)}</p>"
    data = base64.b64encode(png).decode()
    return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'><figcaption>{html.escape(alt)}</figcaption></figure>"


FIGURES_DIR = "figures"


def report_figures(results: dict[str, Any]) -> list[tuple[str, bytes | str | None, str]]:
    """``(file name, png, caption)`` of every figure of the report, in its order; ``png`` is None
    without data, or a sentence when the figure would carry no information."""
    from curricmusic.reporting import plots

    figures: list[tuple[str, bytes | str | None, str]] = [
        ("validation_loss.png", plots.validation_curves(results), "Target-stage validation loss per arm"),
        ("validation_loss_target_tokens.png", plots.validation_curves(results, x="target_tokens"),
         "Target-stage validation loss against target-stage tokens"),
        ("stage_losses.png", plots.stage_panels(results), "Per-stage validation loss, with the stage being learned shaded"),
        ("tokens_to_target.png", plots.tokens_to_target(results), "Tokens to reach the target validation loss"),
        ("final_loss.png", plots.tokens_to_target(results, "final_val_target"), "Final target-stage validation loss"),
        ("musical_metrics.png", plots.metric_distributions(results, report_metrics(results)), "Musical metrics against held-out pieces"),
        ("novelty.png", plots.novelty_histograms(results), "Novelty: distance ratio of samples and held-out pieces"),
    ]  # fmt: skip
    adapted = adaptation_figures(results)
    names = ["adaptation_curves.png", "adaptation_shots.png"] + [f"adaptation_{i}.png" for i in range(2, len(adapted))]
    figures += [(name, png, caption) for name, (png, caption) in zip(names, adapted, strict=False)]
    return figures + mastery_figures(results)


def html_report(
    results: dict[str, Any], page_dir: str | Path | None = None, figures: list[tuple[str, bytes | str | None, str]] | None = None
) -> str:
    """The report page; with ``page_dir`` (the folder it is written to), the "Listen" section
    with relative links to the samples' audio and piano rolls. ``figures``: those of
    :func:`report_figures`, when already drawn."""
    from curricmusic.reporting.listening import listening_html

    embedder, banner_class = embedder_line(results)
    drawn = figures if figures is not None else report_figures(results)
    images = [_img(png, caption) for _, png, caption in drawn]
    settings = {
        "experiment": results["config"],
        "curriculum": results["curriculum"],
        "versions": results["versions"],
    }
    opening = markdown_to_html("\n".join(opening_lines(results)))
    body = markdown_to_html(markdown_body(results).replace(f"Novelty scores: {embedder}.\n", "", 1))  # in the banner
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(results['experiment'])} - curricmusic report</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(results['experiment'])}</h1>
<div class="answer">{opening}</div>
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
        if isinstance(png, bytes):
            write_bytes(out_dir / FIGURES_DIR / name, png)
            links.append(f"![{caption}]({FIGURES_DIR}/{name})")
        elif isinstance(png, str):
            (out_dir / FIGURES_DIR / name).unlink(missing_ok=True)  # an earlier figure of ours would contradict it
            links.append(f"**{caption}**: {png}")
    text = markdown_report(results)
    if links:
        text += "\n## Figures\n\n" + "\n\n".join(links) + "\n"
    md = write_text(out_dir / "report.md", text)
    page = write_text(out_dir / "report.html", html_report(results, out_dir, figures))
    return md, page
