"""The report writers turn small dictionaries into files with the expected content."""

from __future__ import annotations

import math

import pytest

from curricmusic.reporting import plots
from curricmusic.reporting.novelty_page import compare_html, novelty_html
from curricmusic.reporting.report import html_report, markdown_report, write_reports
from curricmusic.reporting.style import CSS, fmt

PNG = b"\x89PNG\r\n\x1a\n"


def stats(values):
    finite = [v for v in values if v is not None]
    mean = sum(finite) / len(finite) if finite else None
    return {"mean": mean, "ci_low": min(finite, default=None), "ci_high": max(finite, default=None), "values": values}


def run(arm, seed, finals, status="done"):
    if status != "done":
        return {"arm": arm, "seed": seed, "status": status, "error": "RuntimeError: boom"}
    return {
        "arm": arm, "seed": seed, "status": "done",
        "curves": {"eval_tokens": [0, 1000, 2000], "val_target": finals, "train_tokens": [500, 1000, 1500, 2000],
                   "current_stage": ["scales", "scales", "pieces", "pieces"],
                   "val": {"scales": [5.0, 4.0, 3.9], "pieces": finals}},
        "novelty": {"summary": {"heldout_rho": [0.9, 1.0, 1.1]}},
    }  # fmt: skip


@pytest.fixture
def results():
    metrics = ["final_val_target", "auc_val_target", "tokens_to_target", "copy_rate", "rho_median"]
    arms = {
        "curriculum": {
            "pacing": "fixed", "order": "curriculum", "n_done": 2, "n_failed": 0,
            "summary": {m: stats([3.0, 3.5]) for m in metrics} | {"tokens_to_target": stats([1000.0, 2000.0])},
            "music": {"pitch_class_entropy": {"overlap": 0.75, "values": [2.0, 2.5]}},
            "novelty": {"embedders": ["symbolic"], "weights_real": False, "rho": [0.5, 1.5]},
        },
        "random <b>": {
            "pacing": "random", "order": "curriculum", "n_done": 1, "n_failed": 1,
            "summary": {m: stats([4.5]) for m in metrics} | {"tokens_to_target": stats([None])},
            "music": {"pitch_class_entropy": {"overlap": None, "values": [1.0]}},
            "novelty": {"embedders": ["symbolic"], "weights_real": False, "rho": [0.25]},
        },
    }  # fmt: skip
    return {
        "experiment": "tiny", "description": "A tiny study.", "target_stage": "pieces", "target_loss": 4.0,
        "baseline_arm": "random <b>", "arms": arms,
        "runs": [run("curriculum", 0, [6.0, 4.0, 3.0]), run("curriculum", 1, [6.0, 5.0, 3.5]),
                 run("random <b>", 0, [6.0, 5.0, 4.5]), run("random <b>", 1, None, status="failed")],
        "comparisons": [{"arm": "curriculum", "metric": "final_val_target", "mean_diff": -1.5, "ci_low": -1.5,
                         "ci_high": -1.5, "p_value": None, "p_holm": None}],
        "heldout_music": {"pitch_class_entropy": [2.2, 2.4]},
        "config": {"name": "tiny"}, "curriculum": {"stages": [{"name": "scales"}, {"name": "pieces"}]},
        "versions": {"curricmusic": "0.1.0"},
    }  # fmt: skip


def test_one_formatter_for_every_page():
    assert [fmt(None), fmt(math.nan), fmt(math.inf), fmt(0.12345), fmt(0.5, 1), fmt(12345.6), fmt(7), fmt("x")] == [
        "-", "-", "-", "0.123", "0.5", "12,346", "7", "x",
    ]  # fmt: skip


def test_markdown_report_holds_the_table_of_arms_comparisons_and_failures(results):
    text = markdown_report(results)
    lines = text.splitlines()
    assert lines[0] == "# tiny"
    assert "Target stage: `pieces`; target loss: 4.000." in lines
    assert "Novelty scores: embedder symbolic; weights NOT real (fallback or no weights)." in lines
    assert (
        "| curriculum | fixed | 2 | 3.250 [3.000, 3.500] | 3.250 [3.000, 3.500] | 1,500 [1,000, 2,000] "
        "| 3.250 [3.000, 3.500] | 3.250 [3.000, 3.500] |"
    ) in lines
    assert "| random <b> | random | 1 (1 failed) | 4.500 [4.500, 4.500] | 4.500 [4.500, 4.500] | - " \
           "| 4.500 [4.500, 4.500] | 4.500 [4.500, 4.500] |" in lines  # fmt: skip
    assert "| curriculum | final_val_target | -1.500 [-1.500, -1.500] | - | - |" in lines
    assert "| curriculum | 0.750 | - | - | - | - | - |" in lines  # musical-metric overlaps
    assert lines[-1] == "- random <b> seed 1: RuntimeError: boom"


def test_html_report_is_self_contained_escaped_and_uses_the_shared_style(results, tmp_path):
    page = html_report(results)
    assert CSS in page and "<script" not in page
    assert "random &lt;b&gt;" in page and "random <b>" not in page
    assert "<td>3.250 [3.000, 3.500]</td>" in page
    assert page.count("data:image/png;base64,") == 6  # every figure has data here
    assert "weights NOT real" in page and "class=\"banner fake\"" in page
    md, html = write_reports(results, tmp_path)
    assert md.read_text() == markdown_report(results) and html.read_text().startswith("<!doctype html>")


def test_plots_draw_pngs_and_nothing_without_data(results):
    for figure in (
        plots.validation_curves(results),
        plots.stage_panels(results),
        plots.tokens_to_target(results),
        plots.tokens_to_target(results, "final_val_target"),
        plots.metric_distributions(results, ["pitch_class_entropy"]),
        plots.novelty_histograms(results),
    ):
        assert figure is not None and figure.startswith(PNG)
    empty = {**results, "runs": [], "heldout_music": {},
             "arms": {name: {**arm, "summary": {}, "novelty": {}} for name, arm in results["arms"].items()}}  # fmt: skip
    assert plots.validation_curves(empty) is None and plots.stage_panels(empty) is None
    assert plots.tokens_to_target(empty) is None and plots.novelty_histograms(empty) is None
    assert plots.metric_distributions(empty, ["pitch_class_entropy"]) is None


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
    assert "<tr><td>median rho</td><td>0.625</td></tr>" in page
    assert "<tr><td>data-copying statistic C_T</td><td>- (0 cells)</td></tr>" in page
    assert "Requested clap:x: no weights" in page and "<li>x.mid: no notes</li>" in page
    assert page.count("data:image/png;base64,") == 1


def test_compare_page_puts_sets_side_by_side():
    page = compare_html({"a": novelty_report("a", [0.25, 1.0]), "b<": novelty_report("b", [2.0])})
    assert CSS in page and "<th>a</th><th>b&lt;</th>" in page
    assert "<tr><td>samples</td><td>2</td><td>1</td></tr>" in page
    assert "<tr><td>median rho</td><td>0.625</td><td>0.625</td></tr>" in page
