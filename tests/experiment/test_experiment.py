"""The experiment runner end to end on the debug experiment: results, reports, resume, failures."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import curricmusic.training.loop as train_module
from curricmusic.common.numbers import sig
from curricmusic.config import load_experiment
from curricmusic.experiment.runner import run_experiment
from tests.conftest import REPO

DEBUG = REPO / "experiments" / "debug.toml"


@pytest.fixture(scope="module")
def experiment():
    return load_experiment(DEBUG)


@pytest.fixture(scope="module")
def finished(debug_run):
    """The session's finished debug experiment (tests/conftest.py): ``(folder, results.json)``."""
    return debug_run


def test_results_cover_every_arm_and_seed(finished, experiment):
    out, results = finished
    assert {(r["arm"], r["seed"]) for r in results["runs"]} == {(a.name, s) for a in experiment.config.arms for s in (0, 1)}
    assert all(r["status"] == "done" for r in results["runs"])
    for run in results["runs"]:
        assert len(run["curves"]["val_target"]) == 5  # evaluations at steps 0, 12, 24, 36, 48
        assert run["summary"]["final_val_target"] == run["curves"]["val_target"][-1]
        assert len(run["novelty"]["samples"]) == experiment.config.generate.n
        assert all(len(values) == experiment.config.generate.n for values in run["music"].values())
    arm = results["arms"]["curriculum"]["summary"]["final_val_target"]
    values = [r["summary"]["final_val_target"] for r in results["runs"] if r["arm"] == "curriculum"]
    assert arm["values"] == values and arm["mean"] == pytest.approx(sum(values) / 2)
    assert arm["ci_low"] is None and arm["ci_high"] is None and arm["too_few"]  # 2 seeds: no interval, and why
    assert arm["no_interval"] == "2 seeds: a 95% interval needs 3 or more"
    metrics = {row["metric"] for row in results["comparisons"]}
    assert {"final_val_target", "auc_val_target", "tokens_to_target"} <= metrics
    assert all(row["arm"] == "curriculum" and row["baseline"] == "random" for row in results["comparisons"])
    assert all(row["p_value"] is None and row["too_few_for_p"] for row in results["comparisons"])  # 2 seeds
    assert results["heldout_music"]["pitch_class_entropy"]


def test_every_cell_is_sampled_with_and_without_copy_blocking(finished, experiment):
    out, results = finished
    for run in results["runs"]:
        folder = out / run["run_dir"]
        blocked = json.loads((folder / "samples" / "manifest.json").read_text())
        unblocked = json.loads((folder / "samples-unblocked" / "manifest.json").read_text())
        assert blocked["settings"]["copy_blocking"] and not unblocked["settings"]["copy_blocking"]
        assert [r["seed"] for r in unblocked["samples"]] == [r["seed"] for r in blocked["samples"]]
        if "same_as_blocked" in unblocked:  # nothing was blocked: the same seeds give the same samples
            assert not any(r["copy_blocked_tokens"] for r in blocked["samples"])
            for row in blocked["samples"]:
                assert (folder / "samples" / row["file"]).read_bytes() == (folder / "samples-unblocked" / row["file"]).read_bytes()
        assert len(run["novelty_unblocked"]["samples"]) == experiment.config.generate.n
        assert run["summary"]["copy_rate_unblocked"] == run["novelty_unblocked"]["summary"]["copy_rate"]
    novelty = results["arms"]["curriculum"]["novelty"]
    assert novelty["n_samples_unblocked"] == 2 * experiment.config.generate.n
    assert "cells" in novelty["data_copying_C_T_pooled"] and novelty["fresh_false_flag_rate"]
    markdown = (out / "report.md").read_text()
    assert "## Novelty" in markdown and "false flags on fresh music" in markdown


def test_the_target_follows_the_rule_and_every_seed_counts(finished, experiment):
    _, results = finished
    target = results["target"]
    assert target["source"] == "rule" and target["arm"] == "random"
    assert target["at_tokens"] == experiment.config.train.tokens / 2
    assert target["loss"] == pytest.approx(sum(target["per_seed"]) / 2)
    for name, arm in results["arms"].items():
        to_target = arm["summary"]["tokens_to_target"]
        runs = [r for r in results["runs"] if r["arm"] == name]
        assert to_target["n"] == len(runs) == 2  # seeds that never arrive are kept, at the budget
        assert to_target["n_reached"] == sum(r["summary"]["reached_target"] for r in runs)
        for run in runs:
            if not run["summary"]["reached_target"]:
                assert run["summary"]["tokens_to_target"] == experiment.config.train.tokens
    assert any("too few for an interval" in w for w in results["warnings"])
    assert any("no p-values" in w for w in results["warnings"])


def test_reports_carry_the_numbers_of_results_json(finished):
    out, results = finished
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["arms"].keys() == results["arms"].keys()
    markdown = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for name, arm in results["arms"].items():
        mean = arm["summary"]["final_val_target"]["mean"]
        assert sig(mean) in markdown and sig(mean) in page  # losses to 3 significant digits
        assert name in page
    assert page.count("data:image/png;base64,") >= 5  # the plots are embedded: works offline
    # the debug experiment asks for the audio-features embedder: a choice, not a fallback
    assert "audio-features, as requested" in page and "FALLBACK" not in page


def test_generate_with_no_flags_reproduces_the_runners_samples(finished, tmp_path):
    out, _ = finished
    run = out / "runs" / "curriculum-seed1"
    done = subprocess.run(
        [sys.executable, "-m", "curricmusic", "generate", str(run), "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    theirs = json.loads((run / "samples" / "manifest.json").read_text())
    ours = json.loads((tmp_path / "manifest.json").read_text())
    assert ours["seed"] == 1 and ours["settings"] == theirs["settings"]
    assert ours["settings_source"]["seed"] == "default" and ours["settings_source"]["max_bars"] == "experiment"
    assert ours["samples"] == theirs["samples"]
    for row in theirs["samples"]:
        assert (tmp_path / row["file"]).read_bytes() == (run / "samples" / row["file"]).read_bytes()


def test_novelty_with_no_flags_reproduces_the_runs_numbers(finished, tmp_path):
    out, results = finished
    run = out / "runs" / "random-seed0"
    done = subprocess.run(
        [sys.executable, "-m", "curricmusic", "novelty", str(run / "samples"), "--against", str(run), "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    theirs = json.loads((run / "novelty" / "novelty.json").read_text())
    ours = json.loads((tmp_path / "novelty.json").read_text())
    assert ours["settings"] == theirs["settings"] and ours["settings_source"]["embedder"] == "experiment"
    assert ours["summary"] == theirs["summary"]
    assert [s["rho"] for s in ours["samples"]] == [s["rho"] for s in theirs["samples"]]
    reported = next(r for r in results["runs"] if r["arm"] == "random" and r["seed"] == 0)
    assert ours["summary"]["rho_median"] == reported["summary"]["rho_median"]
    assert f"median rho {ours['summary']['rho_median']:.2f}" in done.stdout


def test_interrupted_then_resumed_gives_the_same_results(finished, experiment, tmp_path, monkeypatch):
    """Killed inside an adaptation run (the first cell's first one, at its step 3; its last
    checkpoint is at step 2): the resumed experiment continues the killed one, runs the others
    and gives the same results.json as the uninterrupted one."""
    reference, _ = finished
    real_step = train_module.train_step
    adapt = experiment.config.adapt
    pretraining, adapting = 48, adapt.tokens // experiment.config.train.tokens_per_step  # steps of each run
    per_model = len(adapt.styles) * len(adapt.shots) * len(adapt.learning_rates)  # adaptation runs of a model
    calls = {"n": 0, "kill_at": pretraining + 3}

    def killed_midway(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["kill_at"]:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(experiment, tmp_path, show_progress=False)
    with pytest.raises(Exception, match="pass --resume"):
        run_experiment(experiment, tmp_path, show_progress=False)
    calls.update(n=0, kill_at=None)  # no more kills: count the steps the resumed run trains
    run_experiment(experiment, tmp_path, resume=True, show_progress=False)
    cells = len(experiment.config.arms) * 2
    remaining = (adapting - 2) + (per_model - 1) * adapting + (cells - 1) * (pretraining + per_model * adapting)
    remaining += 2 * per_model * adapting  # from-scratch, both seeds
    assert calls["n"] == remaining
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads((reference / "results.json").read_text())
    run_experiment(experiment, tmp_path, resume=True, show_progress=False)  # everything finished: nothing trains
    assert calls["n"] == remaining


def test_adaptation_covers_every_arm_shot_size_and_seed_and_from_scratch(finished, experiment):
    out, results = finished
    adaptation = results["adaptation"]
    models = [arm.name for arm in experiment.config.arms] + ["scratch"]
    assert adaptation["models"] == models and adaptation["shots"] == [4, 8]
    expected = {(m, s, k) for m in models for s in (0, 1) for k in (4, 8)}
    assert {(r["model"], r["seed"], r["shots"]) for r in adaptation["runs"]} == expected
    steps = experiment.config.adapt.tokens // experiment.config.train.tokens_per_step
    for run in adaptation["runs"]:
        assert run["status"] == "done" and (out / run["run_dir"] / "run.json").is_file()
        assert run["curves"]["eval_steps"] == list(range(0, steps + 1, experiment.config.adapt.eval_every))
        assert run["summary"]["final_val"] == run["curves"]["val"][-1] and math.isfinite(run["summary"]["test"])
        assert run["summary"]["early_val"] == run["curves"]["val"][1]  # after eval_every steps
    assert adaptation["target"]["source"] == "rule" and adaptation["target"]["shots"] == 8
    for model in models:
        for k in ("4", "8"):
            assert adaptation["arms"][model]["shots"][k]["n_done"] == 2
    pairs = {(r["arm"], r["baseline"]) for r in adaptation["comparisons"]}
    assert pairs == {("curriculum", "scratch"), ("random", "scratch"), ("curriculum", "random")}
    assert adaptation["style"]["n_exact_duplicates_of_pretraining"] == 0
    assert sum(adaptation["style"]["n_pieces"].values()) > 0
    markdown = (out / "report.md").read_text()
    assert "## Adaptation to a new style" in markdown
    assert markdown.splitlines()[2].startswith("In short: with 2 paired seed(s) against random this experiment cannot say")
    page = (out / "report.html").read_text()
    body = page[page.index("<h1>") :]  # right under the title: the answer opens the page
    assert body.index('<div class="answer"><p>In short: with 2 paired seed(s)') < body.index("<h2>")
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 9  # + curves and shot sizes


def test_adaptations_start_from_the_right_weights_and_see_the_same_pieces(finished, experiment):
    from curricmusic.model.transformer import load_model, weights_digest
    from curricmusic.training.setup import build_model, style_prepared

    out, results = finished
    runs = results["adaptation"]["runs"]
    vocab = style_prepared(experiment, show_progress=False).vocab_size
    for seed in (0, 1):
        initial = weights_digest(build_model(experiment, vocab, seed))
        for run in [r for r in runs if r["seed"] == seed]:
            if run["model"] == "scratch":  # the seed's initial weights, exactly
                assert run["init_sha256"] == initial
            else:  # the arm's final checkpoint, exactly
                assert run["init_sha256"] == weights_digest(load_model(out / "runs" / f"{run['model']}-seed{seed}" / "model"))
                assert run["init_sha256"] != initial
        for arm in experiment.config.arms:  # every arm of the seed started pretraining from those weights
            assert json.loads((out / "runs" / f"{arm.name}-seed{seed}" / "run.json").read_text())["init_sha256"] == initial
    data = style_prepared(experiment, show_progress=False)
    train = {p["id"] for p in data.pieces("essen_folksong", "train")}
    pieces = {(r["model"], r["seed"], r["shots"]): r["pieces"] for r in runs}
    for seed in (0, 1):
        for k in (4, 8):
            seen = {tuple(pieces[(m, seed, k)]) for m in ("curriculum", "random", "scratch")}
            assert len(seen) == 1 and len(set(next(iter(seen)))) == k and set(next(iter(seen))) <= train
        assert set(pieces[("scratch", seed, 4)]) < set(pieces[("scratch", seed, 8)])  # nested
    assert set(pieces[("scratch", 0, 8)]) != set(pieces[("scratch", 1, 8)])  # each seed its own subsets


def test_a_failing_arm_is_reported_and_the_others_finish(finished, experiment, tmp_path, monkeypatch):
    """The finished experiment, resumed after one cell's record was lost: that cell trains again
    and fails; it is recorded and reported, and the others stand."""
    import shutil

    import curricmusic.experiment.runner as experiment_module

    reference, _ = finished
    shutil.copytree(reference, tmp_path / "out")
    tmp_path = tmp_path / "out"
    (tmp_path / "runs" / "random-seed1" / "cell.json").unlink()

    def flaky(exp, cell, show_progress):
        assert (cell.arm, cell.seed) == ("random", 1), "a finished cell trained again"
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(experiment_module, "_train_cell", flaky)
    results = run_experiment(experiment, tmp_path, resume=True, show_progress=False)
    failed = [r for r in results["runs"] if r["status"] == "failed"]
    assert [(r["arm"], r["seed"]) for r in failed] == [("random", 1)]
    assert "out of memory" in failed[0]["error"]
    assert results["arms"]["random"]["n_done"] == 1 and results["arms"]["curriculum"]["n_done"] == 2
    assert "random seed 1: RuntimeError: out of memory" in (tmp_path / "report.md").read_text()
    comparisons = [r for r in results["comparisons"] if r["metric"] == "final_val_target"]
    assert comparisons[0]["n_pairs"] == 1 and comparisons[0]["p_value"] is None and comparisons[0]["d_z"] is None
    assert not math.isnan(results["arms"]["random"]["summary"]["final_val_target"]["mean"])


@pytest.fixture
def one_cell_experiment(tmp_path):
    """The debug experiment with one arm and one seed, without adaptation, to try the other launchers."""
    text = DEBUG.read_text()
    text = text[: text.index("[adapt]")]
    text = text.replace('curriculum = "../curricula/debug.toml"', f'curriculum = "{REPO / "curricula" / "debug.toml"}"')
    text = text.replace("seeds = [0, 1]", "seeds = [0]")
    head, arms = text.split("[[arms]]", 1)
    random_arm = "[[arms]]" + arms.split("[[arms]]", 1)[1]
    path = tmp_path / "one.toml"
    path.write_text(head + random_arm)
    return load_experiment(path)


@pytest.mark.parametrize("launcher", ["slurm-local", "accelerate"])
def test_other_launchers_train_the_same_run(one_cell_experiment, finished, tmp_path, launcher):
    reference, _ = finished
    results = run_experiment(one_cell_experiment, tmp_path / launcher, launcher=launcher, show_progress=False)
    assert [r["status"] for r in results["runs"]] == ["done"], results["runs"]
    ours = json.loads((tmp_path / launcher / "runs" / "random-seed0" / "metrics.jsonl").read_text().splitlines()[-1])
    theirs = json.loads((reference / "runs" / "random-seed0" / "metrics.jsonl").read_text().splitlines()[-1])
    assert ours["val_loss"] == pytest.approx(theirs["val_loss"], abs=1e-5)


def test_each_cell_is_probed_and_the_report_plays_its_samples(finished):
    """probe.json in every run folder and the probe section in report.md; report.html and each
    novelty.html play every listed sample from a WAV beside it, with its piano roll, relative
    links only (nothing fetched from the network)."""
    import re

    out, results = finished
    for run in results["runs"]:
        probe = json.loads((out / run["run_dir"] / "probe.json").read_text())
        assert set(probe["tasks"]) == {"key", "mode", "meter"} and probe["seed"] == run["seed"]
    for name, arm in results["arms"].items():
        assert arm["probe"]["n_runs"] == 2 and set(arm["probe"]["tasks"]) == {"key", "mode", "meter"}, name
    assert "## What did the model learn? Linear probes of key, mode and meter" in (out / "report.md").read_text()
    pages = [out / "report.html"] + [out / r["run_dir"] / "novelty" / "novelty.html" for r in results["runs"]]
    for page in pages:
        text = page.read_text()
        audio = re.findall(r'<audio controls preload="none" src="([^"]+)">', text)
        rolls = re.findall(r'<img class="roll" alt="[^"]*" src="([^"]+)">', text)
        assert audio and [a.removesuffix(".wav") for a in audio] == [r.removesuffix(".png") for r in rolls], page
        assert all(src.startswith(("./", "../")) for src in audio + rolls), page
        assert all((page.parent / a).read_bytes()[:4] == b"RIFF" for a in audio), page
        assert all((page.parent / r).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for r in rolls), page
        assert "http:" not in text and "https:" not in text and 'src="//' not in text, page
    report = (out / "report.html").read_text()
    assert report.count("<audio ") == 2 * 2 * 2  # arms x seeds x the first 2 samples of each


def test_report_rebuilds_results_and_reports_from_the_folder_alone(finished, tmp_path):
    """``curricmusic report OUT`` aggregates the runs again from ``experiment.json``: the same
    results as ``run`` wrote, without the TOML, and a folder that is not an experiment is one line."""
    out, results = finished
    (out / "report.md").unlink()
    done = subprocess.run([sys.executable, "-m", "curricmusic", "report", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "In short:" in done.stdout and f"{len(results['runs'])} of {len(results['runs'])} runs finished" in done.stdout
    rebuilt = json.loads((out / "results.json").read_text())
    assert rebuilt == results
    assert (out / "report.md").read_text().startswith("# ")
    bad = subprocess.run([sys.executable, "-m", "curricmusic", "report", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "not an experiment folder" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_debug_run_exercises_the_mastery_studys_measures(finished, experiment):
    """Mastery recorded per run (the scales left on their criterion, the other basics at their cap),
    the key share and both styles' losses at every evaluation, models probed at the boundaries,
    two styles adapted with a learning rate chosen per model on validation, the declared claims."""
    out, results = finished
    for run in [r for r in results["runs"] if r["arm"] == "curriculum"]:
        events = run["schedule"]["events"]
        assert [(e["stage"], e["mastered"], e["cap_hit"], e["end_step"]) for e in events] == [
            ("scales", True, False, 12), ("hanon", False, True, 24), ("etudes", False, True, 36),
        ]  # fmt: skip
        assert events[0]["value"] >= 0.5 and [b["step"] for b in run["stage_boundaries"]] == [12, 24, 36]
        assert [b["stage"] for b in run["boundary_probes"]] == ["scales", "hanon", "etudes"]
        assert all(0 < b["key_share"] < 1 and 0 <= b["key_accuracy"] <= 1 for b in run["boundary_probes"])
    for run in results["runs"]:  # every arm: the key share of every stage, both styles' distance
        curves = run["curves"]
        assert set(curves["key_share"]) == {"scales", "hanon", "etudes", "chorales"}
        assert set(curves["style_val"]) == {"essen_folksong", "oneills1850"} and len(curves["style_val"]["oneills1850"]) == 5
        assert set(run["final_style_loss"]) == {"essen_folksong", "oneills1850"}
    mastery = results["arms"]["curriculum"]["mastery"]["stages"]
    assert (mastery["scales"]["n_mastered"], mastery["hanon"]["n_cap_hit"]) == (2, 2)
    assert results["arms"]["random"]["mastery"] is None and results["arms"]["random"]["traits"]["baseline"]
    styles = results["adaptations"]
    assert [a["style"]["stage"] for a in styles] == ["essen_folksong", "oneills1850"] and results["adaptation"] == styles[0]
    for entry in styles:
        selection = entry["lr_selection"]
        for model in entry["models"]:
            for k in ("4", "8"):
                candidates = selection["models"][model][k]["candidates"]
                best = min(candidates, key=lambda c: (c["mean_auc_val"], c["lr"]))["lr"]
                assert [c["lr"] for c in candidates] == [1e-3, 3e-3] and selection["models"][model][k]["chosen"] == best
                chosen = [r for r in entry["runs"] if r["model"] == model and str(r["shots"]) == k and r["chosen"]]
                assert len(chosen) == 2 and {r["lr"] for r in chosen} == {best}
        run = next(r for r in entry["runs"] if r["status"] == "done")
        assert {"start_val", "val_at_2", "val_at_4", "drop", "gap_closed", "epochs"} <= set(run["summary"])
        assert run["summary"]["start_val"] == run["curves"]["val"][0] and run["summary"]["epochs"] > 1
    claims = results["claims"]
    assert claims["m"] == 2 and [r["label"] for r in claims["rows"]] == [
        "curriculum vs random: auc_val, essen_folksong, 4 pieces", "curriculum vs scratch: auc_val, oneills1850, 8 pieces",
    ]  # fmt: skip
    assert all(r["n_pairs"] == 2 and r["too_few_for_p"] for r in claims["rows"])
    markdown = (out / "report.md").read_text()
    for heading in ("## Declared claims (confirmatory)", "## Mastery of the basics", "## Key share by stage",
                    "### Learning speed on oneills1850", "### Adaptation learning rates on essen_folksong: the sweep",
                    "## Paired comparisons against the random-order baselines (exploratory)"):  # fmt: skip
        assert heading in markdown
    assert (out / "figures" / "pretraining_measures.png").is_file()
