"""The report writers turn small dictionaries into files with the expected content."""

from __future__ import annotations

import json
import math
import re

import pytest

from curricmusic.common.atomic import json_safe
from curricmusic.evaluation.stats import censored_summary, holm, mean_ci, paired_effect
from curricmusic.experiment.lr_selection import RULE
from curricmusic.reporting import plots
from curricmusic.reporting.compare_page import compare_html
from curricmusic.reporting.novelty_page import novelty_html
from curricmusic.reporting.report import (
    grouped_warnings,
    html_report,
    markdown_report,
    report_metrics,
    write_reports,
)
from curricmusic.reporting.style import CSS, count, fmt, sig

PNG = b"\x89PNG\r\n\x1a\n"


BUDGET = 24576
TARGET_RULE = "mean validation loss of the 'random' arm on the target stage at 0.5 of the budget (12,288 tokens)"


def run(arm, seed, final=None, status="done", error=None):
    """A results.json run entry (a finished one with its curves and novelty summary)."""
    if status != "done":
        return {"arm": arm, "seed": seed, "lr": 1e-3, "run_dir": f"runs/{arm}-seed{seed}", "status": status, "error": error}
    return {
        "arm": arm, "seed": seed, "lr": 1e-3, "run_dir": f"runs/{arm}-seed{seed}", "status": "done",
        "curves": {"eval_tokens": [0, 12288, BUDGET], "eval_target_tokens": [0, 6144, 12288], "val_target": [6.0, 4.5, final],
                   "train_tokens": [6144, 12288, 18432, BUDGET], "current_stage": ["scales", "scales", "pieces", "pieces"],
                   "val": {"scales": [5.0, 4.0, 3.9], "pieces": [6.0, 4.5, final]}},
        "novelty": {"summary": {"heldout_rho": [0.9, 1.0, 1.1]}},
    }  # fmt: skip


def summary(final, to_target, reached, copy=(), copy_unblocked=(), rho=()):
    """An arm's summaries as aggregation writes them: best = final - 0.1, test = final + 0.1, AUC = final + 1."""
    n = len(final)
    return {
        "final_val_target": mean_ci(final),
        "best_val_target": mean_ci([v - 0.1 for v in final]),
        "test_target": mean_ci([v + 0.1 for v in final]),
        "auc_val_target": mean_ci([v + 1.0 for v in final]),
        "tokens_to_target": {**censored_summary(to_target, reached, BUDGET), "target_loss": 5.2},
        "copy_rate": mean_ci(list(copy) or [math.nan] * n),
        "copy_rate_unblocked": mean_ci(list(copy_unblocked) or [math.nan] * n),
        "rho_median": mean_ci(list(rho) or [math.nan] * n),
    }


@pytest.fixture
def results():
    """A results.json of three arms (the curriculum, random with 3 of 5 seeds lost, its random-matched
    twin), built with the statistics aggregation uses and read back from JSON as the reports are."""
    curriculum, matched = [3.0, 3.2, 3.4, 3.6, 3.8], [3.5, 3.6, 3.7, 3.8, 3.9]
    curriculum_times, matched_times = [6144, 6144, 12288, 12288, BUDGET], [12288] * 4 + [BUDGET]
    reached = [True] * 4 + [False]
    tokens = {"tokens_seen": 24576.0, "target_tokens_seen": 12032.0, "stage_tokens": {"pieces": 12032.0, "scales": 12544.0}}
    arms = {
        "curriculum": {
            "pacing": "fixed", "order": "curriculum", "n_done": 5, "n_failed": 0, "lr": 1e-3, "tokens": tokens,
            "summary": summary(curriculum, curriculum_times, reached, [0.1] * 5, [0.5] * 5, [1.2] * 5),
            "music": {"pitch_class_entropy": {"overlap": 0.75, "values": [2.0, 2.5]}},
            "novelty": {"n_samples": 10, "copy_rate": 0.1, "copy_rate_unblocked": 0.5, "embedders": ["symbolic"],
                        "weights_real": False, "rho": [0.5, 1.5], "data_copying_C_T_pooled": {"C_T": -1.25, "cells": 2},
                        "fresh_false_flag_rate": [0.0, 0.1, 0.0, 0.1, 0.0],
                        "rho_flag_reason": "probe copies no closer than held-out music (AUC 0.6 < 0.9)"},
        },
        "random": {
            "pacing": "random", "order": "curriculum", "n_done": 2, "n_failed": 2, "n_unfinished": 1, "lr": 1e-3,
            "tokens": {**tokens, "target_tokens_seen": 6144.0},
            "summary": summary([4.4, 4.8], [BUDGET, BUDGET], [False, False]),
            "music": {}, "novelty": {},
        },
        "matched": {
            "pacing": "random-matched", "order": "curriculum", "n_done": 5, "n_failed": 0, "lr": 1e-3, "tokens": tokens,
            "summary": summary(matched, matched_times, reached),
            "music": {"pitch_class_entropy": {"overlap": 0.5, "values": [1.0]}}, "novelty": {},
        },
    }  # fmt: skip
    pairs = [
        ("curriculum", "random", "final_val_target", [0, 1], curriculum[:2], [4.4, 4.8]),
        ("matched", "random", "final_val_target", [0, 1], matched[:2], [4.4, 4.8]),
        ("curriculum", "matched", "final_val_target", [0, 1, 2, 3, 4], curriculum, matched),
        ("curriculum", "matched", "tokens_to_target", [0, 1, 2, 3, 4], curriculum_times, matched_times),
    ]
    comparisons = [
        {"arm": arm, "baseline": baseline, "metric": metric, "lower_is_better": True, "seeds": seeds, **paired_effect(t, c)}
        for arm, baseline, metric, seeds, t, c in pairs
    ]
    for row, adjusted in zip(comparisons, holm([r["p_value"] for r in comparisons]), strict=True):
        row["p_holm"] = adjusted
    candidates = [{"lr": 1e-3, "mean_best_val_target": 3.3, "n_seeds": 5, "n_failed": 0},
                  {"lr": 3e-3, "mean_best_val_target": 3.9, "n_seeds": 5, "n_failed": 0}]  # fmt: skip
    selection = {
        "rule": RULE,
        "arms": {"curriculum": {"chosen": 1e-3, "candidates": candidates}}
        | {name: {"chosen": 1e-3, "candidates": candidates[:1]} for name in ("random", "matched")},
    }
    runs = [run("curriculum", s, curriculum[s]) for s in range(5)] + [run("matched", s, matched[s]) for s in range(5)]
    runs += [run("random", 0, 4.4), run("random", 1, 4.8), run("random", 2, status="failed", error="ValueError: window <64> & more"),
             run("random", 3, status="failed", error="RuntimeError: boom"), run("random", 4, status="missing", error="not run")]  # fmt: skip
    results = {
        "experiment": "tiny", "description": "A <tiny> study & its arms.", "target_stage": "pieces", "target_loss": 5.2,
        "target": {"loss": 5.2, "source": "rule", "rule": TARGET_RULE, "arm": "random", "at_tokens": 12288.0, "per_seed": [5.0, 5.4]},
        "budget_tokens": BUDGET, "baseline_arm": "random", "baseline_arms": ["random", "matched"], "arms": arms, "runs": runs,
        "lr_selection": selection, "comparisons": comparisons,
        "warnings": ["2 finished seed(s) per arm: too few for an interval (need 3); the report shows each seed's value instead",
                     "the target stage has 3 validation piece(s) (fewer than 10): its validation loss is the loss of a handful of tunes"],
        "heldout_music": {"pitch_class_entropy": [2.2, 2.4]},
        "config": {"name": "tiny"}, "curriculum": {"stages": [{"name": "scales"}, {"name": "pieces"}]},
        "versions": {"curricmusic": "0.1.0"},
    }  # fmt: skip
    return json.loads(json.dumps(json_safe(results)))  # NaN is null, as in results.json


def test_one_formatter_for_every_page():
    assert [fmt(None), fmt(math.nan), fmt(math.inf), fmt(0.12345), fmt(0.5, 1), fmt(12345.6), fmt(7), fmt("x")] == [
        "-", "-", "-", "0.123", "0.5", "12,346", "7", "x",
    ]  # fmt: skip
    # losses to 3 significant digits, tokens with thousands separators: the two examples
    assert sig(5.333894394995406) == "5.33" and sig(1.3937439942215253) == "1.39" and sig(-0.0270990) == "-0.0271"
    assert [sig(9.996), sig(999.6), sig(0.1), sig(0.0), sig(None)] == ["10.0", "1,000", "0.100", "0", "-"]
    assert [count(12288.0), count(143846.4), count(math.nan)] == ["12,288", "143,846", "-"]


def test_markdown_report_opens_with_the_answer_and_holds_the_evidence(results):
    text = markdown_report(results)
    lines = text.splitlines()
    assert lines[0] == "# tiny" and lines[2].startswith("In short: with 2 paired seed(s) against random this experiment cannot say")
    opening = lines[2 : lines.index("A <tiny> study & its arms.")]
    assert len(opening) <= 10
    # one line per arm, each seed's difference instead of an interval (2 pairs), then copying
    assert opening[2] == (
        "- **curriculum** against random (too few seeds for an interval: 2 paired): final validation loss on `pieces`, "
        "seed by seed: -1.40, -1.60"
    )
    assert opening[3].startswith("- **matched** against random (too few seeds for an interval: 2 paired)")
    assert opening[4] == "- **random** (the baseline): final validation loss on `pieces` 4.60 (seeds: 4.40, 4.80) nats per token"
    assert opening[5].startswith("- Copying: copy rate 0.10 (curriculum, the one arm scored) (0.50 without copy-blocking)")
    assert f"Target stage: `pieces`; target loss: 5.20 ({TARGET_RULE})." in lines
    assert "Novelty scores: embedder symbolic, as requested" in text and "NOT real" not in text
    warnings = lines.index("## Sample too small")
    assert lines[warnings + 2 : warnings + 4] == [f"- {w}" for w in results["warnings"]]
    # the answer in numbers: a table, not a paragraph
    assert "| curriculum | random | 2 | - | -1.50 (seeds: -1.40, -1.60) |" in lines
    assert "| curriculum | matched | 5 | 0.76x [0.47, 1.21] | -0.300 [-0.496, -0.104] |" in lines
    # mean [95% t-interval] from 3 seeds on; below, the mean and each seed's value; losses to 3 digits
    assert (
        "| curriculum | fixed | 5 | 3.40 [3.01, 3.79] | 3.30 [2.91, 3.69] | 3.50 [3.11, 3.89] | 4.40 [4.01, 4.79] "
        "| 4/5 | 12,288 [2,945, 21,631] | 12,288 | 0.100 [0.100, 0.100] | 0.500 [0.500, 0.500] | 1.20 [1.20, 1.20] |"
    ) in lines
    assert (
        "| random | random | 2 (2 failed, 1 not finished) | 4.60 (seeds: 4.40, 4.80) | 4.50 (seeds: 4.30, 4.70) | 4.70 (seeds: 4.50, 4.90) "
        "| 5.60 (seeds: 5.40, 5.80) | 0/2 | 24,576 (seeds: 24,576, 24,576) | > 24,576 | - | - | - |"
    ) in lines  # no seed reached the target: the median lies beyond the budget
    assert "median is '> budget' while more than half the seeds never arrive." in text
    # budgets: real tokens per arm and the learning rate chosen on validation, by the written rule
    assert "| curriculum | 24,576 | 12,032 | 0.001 (best of 2 on validation) |" in lines
    assert "| random | 24,576 | 6,144 | 0.001 |" in lines
    assert f"Learning rates chosen by rule: {RULE}." in lines
    # 2 pairs: no interval, no d_z, no detectable difference, no p; each seed's difference and ratio instead
    assert (
        "| curriculum | random | final validation loss | 2 | -1.50 (seeds: -1.40, -1.60) | 0.674 (seeds: 0.682, 0.667) "
        "| - | n < 5 | - | - |"
    ) in lines
    assert "| curriculum | matched | final validation loss | 5 | -0.300 [-0.496, -0.104] | 0.916 [0.861, 0.976] | -1.90 | 0.013 | 0.026 | 0.266 |" in lines
    assert "| curriculum | matched | tokens to target | 5 | -2,458 [-6,636, 1,721] | 0.758 [0.473, 1.214] | -0.73 | 0.178 | 0.178 | 5,660 |" in lines
    assert "| curriculum | 10 | 0.100 | 0.500 | 1.00 | -1.25 (2) | 0.040 |" in lines  # novelty, seeds pooled
    assert "Distance flag: probe copies no closer than held-out music (AUC 0.6 < 0.9)." in text
    assert any(line.startswith("- C_T (Meehan et al. 2020)") for line in lines)  # how to read each score
    assert any(line.startswith("- median rho above 1:") for line in lines)
    assert "| pitch_class_entropy | 0.750 | - | 0.500 |" in lines  # musical-metric overlaps, one row per metric
    assert lines[-5:] == [
        "## Runs that did not finish",
        "",
        "- random seed 2: ValueError: window <64> & more",
        "- random seed 3: RuntimeError: boom",
        "- random seed 4: not run",
    ]


def test_report_metrics_come_from_the_metric_registry(results):
    from curricmusic.evaluation.metrics import PIECE_METRICS

    every = {**results, "heldout_music": {name: [1.0] for name in reversed(list(PIECE_METRICS))}}
    assert report_metrics(every) == list(PIECE_METRICS)  # the registry's order, whatever results.json's
    assert report_metrics(results) == ["pitch_class_entropy"]  # only what was measured


def test_warnings_that_differ_by_arm_are_one_line():
    warnings = ["arm 'a': C_T rests on 1 cell(s)", "3 seeds", "arm 'b': C_T rests on 1 cell(s)", "arm 'b': few samples"]
    assert grouped_warnings(warnings) == ["arms 'a', 'b': C_T rests on 1 cell(s)", "3 seeds", "arm 'b': few samples"]


def test_html_report_is_self_contained_escaped_and_uses_the_shared_style(results, tmp_path):
    page = html_report(results)
    assert CSS in page and "<script" not in page and "http" not in page  # works offline
    assert "window &lt;64&gt; &amp; more" in page and "window <64>" not in page
    assert "A &lt;tiny&gt; study &amp; its arms." in page and "<tiny>" not in page
    assert "<td>3.40 [3.01, 3.79]</td>" in page and "<td>4.60 (seeds: 4.40, 4.80)</td>" in page
    assert "<td>&gt; 24,576</td>" in page and "<h2>Sample too small</h2>" in page
    assert "<td class='t'>curriculum</td><td class='t'>matched</td><td class='t'>final validation loss</td>" in page
    assert page.count("data:image/png;base64,") == 7  # every figure has data here
    assert 'class="banner chosen"' in page and "NOT real" not in page  # symbolic was chosen, not a fallback
    assert "**" not in page and "`" not in page and "|---" not in page and "## " not in page  # no raw Markdown
    md, html = write_reports(results, tmp_path)
    assert html.read_text() == page
    text = md.read_text()  # the report, then its figures as files beside it, linked relatively
    assert text.startswith(markdown_report(results)) and "\n## Figures\n" in text
    links = re.findall(r"!\[[^\]]+\]\((figures/[a-z_]+\.png)\)", text)
    assert len(links) == 7 and all((tmp_path / link).read_bytes().startswith(PNG) for link in links)


def test_the_report_says_why_a_figure_without_information_is_not_drawn(results, tmp_path):
    """Every seed of every arm at the target at the same evaluation: a sentence, not a plot."""
    same = json.loads(json.dumps(results))
    for arm in same["arms"].values():
        stats = arm["summary"]["tokens_to_target"]
        stats["values"] = [12288.0] * len(stats["values"])
        stats["reached"] = [True] * len(stats["values"])
    why = plots.tokens_to_target(same)
    assert isinstance(why, str) and "at the same evaluation, 12,288 tokens" in why and "target loss (5.20)" in why
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "tokens_to_target.png").write_bytes(PNG)  # an earlier report's figure
    md, page = write_reports(same, tmp_path)
    assert not (tmp_path / "figures" / "tokens_to_target.png").exists()
    assert f"**Tokens to reach the target validation loss**: {why}" in md.read_text()
    assert f"<strong>Tokens to reach the target validation loss</strong>: {why}" in page.read_text()


def test_plots_draw_pngs_and_nothing_without_data(results):
    for figure in (
        plots.validation_curves(results),
        plots.validation_curves(results, x="target_tokens"),
        plots.stage_panels(results),
        plots.tokens_to_target(results),
        plots.tokens_to_target(results, "final_val_target"),
        plots.metric_distributions(results, ["pitch_class_entropy"]),
        plots.novelty_histograms(results),
    ):
        assert isinstance(figure, bytes) and figure.startswith(PNG)
    empty = {**results, "runs": [], "heldout_music": {},
             "arms": {name: {**arm, "summary": {}, "novelty": {}} for name, arm in results["arms"].items()}}  # fmt: skip
    assert plots.validation_curves(empty) is None and plots.stage_panels(empty) is None
    assert plots.validation_curves(empty, x="target_tokens") is None
    assert plots.tokens_to_target(empty) is None and plots.novelty_histograms(empty) is None
    assert plots.metric_distributions(empty, ["pitch_class_entropy"]) is None


def test_panels_are_laid_out_in_a_grid():
    """Seven panels in rows of three (the issue's stage figure was seven panels in one row)."""
    fig, axes = plots.grid(7)
    rows = {round(ax.get_position().y0, 3) for ax in axes}
    assert len(axes) == 7 and len(rows) == 3 and fig.get_size_inches()[0] < 14
    plots._pyplot().close(fig)


def novelty_report(name: str, rhos: list[float]) -> dict:
    samples = [
        {"file": f"sample_{i:03d}.mid", "nearest": {"id": "scales/c<major>"}, "cosine": 0.9, "rho": rho, "penalty": 0.0,
         "copied_span": {"notes": 12, "bars": 3.5, "piece_id": "scales/c<major>"}, "hit_rates": {"4": 0.5, "8": 0.25},
         "flagged": rho < 0.5, "flag_reasons": ["rho 0.25 < 0.5"] if rho < 0.5 else []}
        for i, rho in enumerate(rhos)
    ]  # fmt: skip
    return {
        "samples_dir": f"/somewhere/{name}", "against": "/runs/a", "samples": samples, "skipped": [{"path": "x.mid", "reason": "no notes"}],
        "summary": {"n": len(rhos), "n_flagged": sum(r < 0.5 for r in rhos), "copy_rate": 0.5, "rho_median": 0.625,
                    "data_copying_C_T": None, "longest_copied_notes_max": 12, "heldout_rho": [0.9, 1.1],
                    "rho_quantiles": {"0.05": 0.3}, "copied_bars_max": 3.5},
        "embedder": {"spec": "symbolic", "weights_real": False, "requested": "clap:x", "fallback_reason": "no weights"},
        "settings": {"rho_threshold": 0.5, "max_copied_bars": 4.0}, "bank": {"n_train": 10, "n_heldout": 3, "stages": ["scales"]},
    }  # fmt: skip


def test_novelty_page_lists_every_sample_and_flags(tmp_path):
    report = novelty_report("set", [0.25, 1.0])
    (tmp_path / "sample_001.wav").write_bytes(b"RIFF")
    page = novelty_html(report, tmp_path, tmp_path / "novelty")
    assert CSS in page and "<h1>Novelty of set</h1>" in page
    assert page.count("<tr class='flagged'>") == 1 and "yes: rho 0.25 &lt; 0.5" in page
    assert "12 notes / 3.5 bars from scales/c&lt;major&gt;" in page
    assert '<a href="../sample_001.wav">wav</a>' in page and "../sample_000.wav" not in page
    assert "<td class='t'>median rho</td><td>0.625</td><td class='t'><span class='howto'>median rho above 1:" in page
    assert "<td class='t'>data-copying statistic C_T</td><td>- (0 cells)</td>" in page
    assert "you asked for clap:x, whose weights are missing (no weights)" in page and "class='banner fake'" in page
    assert "<li>x.mid: no notes</li>" in page
    assert page.count("data:image/png;base64,") == 1
    assert page.count("<div class=\"scroll\">") == 2  # the figures and the samples each scroll in their own box
    chosen = novelty_html({**report, "embedder": {"spec": "audio-features", "weights_real": False,
                                                  "requested": "audio-features", "fallback_reason": None}}, tmp_path, tmp_path)  # fmt: skip
    assert "class='banner chosen'" in chosen and "as requested" in chosen and "FALLBACK" not in chosen


def test_compare_page_puts_sets_side_by_side(tmp_path):
    reports = [novelty_report("a", [0.25, 1.0]), novelty_report("b", [2.0])]
    sets = [
        {"label": "a, seed 0, copy-blocking on", "arm": "a", "seed": 0, "copy_blocking": True, "against": "run a-seed0",
         "samples_dir": str(tmp_path), "page": None, "digest": "x", "identical_to": []},
        {"label": "b<, seed 0, copy-blocking off", "arm": "b<", "seed": 0, "copy_blocking": False, "against": "run b-seed0",
         "samples_dir": str(tmp_path / "gone"), "page": None, "digest": "y", "identical_to": []},
    ]  # fmt: skip
    page = compare_html(sets, reports, tmp_path)
    assert CSS in page and "<th>a, seed 0, copy-blocking on</th><th>b&lt;, seed 0, copy-blocking off</th>" in page
    assert "<td class='t'>copy-blocking</td><td class='t'>on</td><td class='t'>off</td>" in page
    assert "<td class='t'>scored against</td><td class='t'><span class='wrap'>run a-seed0</span></td>" in page
    assert "<td>2</td><td>1</td>" in page and "<td>0.625</td><td>0.625</td>" in page
    assert page.count("data:image/png;base64,") == 1 and "Identical sample sets" not in page
