"""``report.md`` (a table to paste into a paper) and a self-contained, offline ``report.html``."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from curricmusic.common.atomic import write_text

__all__ = ["write_reports", "markdown_report", "html_report", "fmt"]

REPORT_METRICS = ["pitch_class_entropy", "scale_consistency", "polyphony", "note_density", "empty_beat_rate", "groove_consistency"]


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _ci(stats: dict[str, Any]) -> str:
    if stats.get("mean") is None:
        return "-"
    return f"{fmt(stats['mean'])} [{fmt(stats['ci_low'])}, {fmt(stats['ci_high'])}]"


def _embedder_line(results: dict[str, Any]) -> str:
    novelty = [a.get("novelty", {}) for a in results["arms"].values() if a.get("novelty")]
    if not novelty:
        return "no novelty scores"
    specs = sorted({s for n in novelty for s in n["embedders"]})
    real = all(n["weights_real"] for n in novelty)
    return f"embedder {', '.join(specs)}; weights {'real' if real else 'NOT real (fallback or no weights)'}"


def markdown_report(results: dict[str, Any]) -> str:
    lines = [
        f"# {results['experiment']}",
        "",
        results.get("description") or "",
        "",
        f"Target stage: `{results['target_stage']}`; target loss: {fmt(results.get('target_loss'))}.",
        "",
        f"Novelty scores: {_embedder_line(results)}.",
        "",
        "| arm | pacing | seeds | final target val loss | AUC target val loss | tokens to target | copy rate | median rho |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, arm in results["arms"].items():
        s = arm["summary"]
        failed = f" ({arm['n_failed']} failed)" if arm["n_failed"] else ""
        pacing = arm["pacing"] if arm["pacing"] in ("random", "target-only") or arm["order"] == "curriculum" else f"{arm['pacing']} ({arm['order']})"
        lines.append(
            f"| {name} | {pacing} | {arm['n_done']}{failed} | {_ci(s['final_val_target'])} | "
            f"{_ci(s['auc_val_target'])} | {_ci(s['tokens_to_target'])} | {_ci(s['copy_rate'])} | {_ci(s['rho_median'])} |"
        )
    lines += ["", "Mean [95% bootstrap CI] over seeds.", ""]
    lines += _budget_lines(results)
    if results["comparisons"]:
        lines += [
            "## Paired comparisons (arm minus baseline, Holm-corrected)",
            "",
            "| arm | baseline | metric | mean difference [95% CI] | p | p (Holm) |",
            "|---|---|---|---|---|---|",
        ]
        for row in results["comparisons"]:
            lines.append(
                f"| {row['arm']} | {row['baseline']} | {row['metric']} | {fmt(row['mean_diff'])} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}] "
                f"| {fmt(row['p_value'])} | {fmt(row['p_holm'])} |"
            )
        lines.append("")
    lines += ["## Musical metrics: overlap with held-out pieces (1 = same distribution)", ""]
    header = "| arm | " + " | ".join(REPORT_METRICS) + " |"
    lines += [header, "|---" * (len(REPORT_METRICS) + 1) + "|"]
    for name, arm in results["arms"].items():
        cells = [fmt(arm["music"].get(m, {}).get("overlap")) for m in REPORT_METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    failed = [r for r in results["runs"] if r["status"] != "done"]
    if failed:
        lines += ["", "## Runs that did not finish", ""]
        lines += [f"- {r['arm']} seed {r['seed']}: {r.get('error', r['status'])}" for r in failed]
    return "\n".join(lines) + "\n"


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
    out, rows = [], []

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


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}thead{background:#f3f3f3}figure{margin:1.5em 0}img{max-width:100%}
figcaption{color:#555;font-size:0.85em}.banner{padding:0.6em 1em;border-radius:4px;margin:1em 0}
.real{background:#e5f5e0}.fake{background:#fde0dd}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:0.8em}
.empty{color:#999}
"""


def html_report(results: dict[str, Any]) -> str:
    from curricmusic.reporting import plots

    embedder = _embedder_line(results)
    banner_class = "real" if "weights real" in embedder else "fake"
    figures = [
        _img(plots.validation_curves(results), "Target-stage validation loss per arm"),
        _img(plots.validation_curves(results, x="target_tokens"), "Target-stage validation loss against target-stage tokens"),
        _img(plots.stage_panels(results), "Per-stage validation loss, with the stage being learned shaded"),
        _img(plots.tokens_to_target(results), "Tokens to reach the target validation loss"),
        _img(plots.tokens_to_target(results, "final_val_target"), "Final target-stage validation loss"),
        _img(plots.metric_distributions(results, REPORT_METRICS), "Musical metrics against held-out pieces"),
        _img(plots.novelty_histograms(results), "Novelty: distance ratio of samples and held-out pieces"),
    ]
    settings = {
        "experiment": results["config"],
        "curriculum": results["curriculum"],
        "versions": results["versions"],
    }
    body = _markdown_table_to_html(markdown_report(results))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(results['experiment'])} - curricmusic report</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(results['experiment'])}</h1>
<div class="banner {banner_class}">Novelty scores: {html.escape(embedder)}.</div>
{body}
<h2>Figures</h2>
{''.join(figures)}
<h2>Settings and versions</h2>
<pre>{html.escape(json.dumps(settings, indent=2))}</pre>
</body></html>
"""


def write_reports(results: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    md = write_text(out_dir / "report.md", markdown_report(results))
    page = write_text(out_dir / "report.html", html_report(results))
    return md, page
