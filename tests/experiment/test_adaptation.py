"""The adaptation phase: the [adapt] section, shot subsets, restricted windows, resumable
adaptation runs, its statistics and its report section (end to end: tests/experiment/test_experiment.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from curricmusic.common.errors import UserError
from curricmusic.common.run_folder import read_metrics
from curricmusic.config import load_experiment
from curricmusic.curriculum.shots import SHOT_STREAM, shot_order, shot_subset
from curricmusic.curriculum.windows import PackedStage
from curricmusic.experiment.adapt_results import (
    adaptation_arms,
    adaptation_comparisons,
    adaptation_pairs,
    adaptation_summary,
    adaptation_target,
)
from curricmusic.training.loop import Adaptation, train_run
from tests.conftest import REPO

DEBUG = REPO / "experiments" / "debug.toml"
DEBUG_TEXT = DEBUG.read_text().replace('curriculum = "../curricula/debug.toml"', f'curriculum = "{REPO / "curricula" / "debug.toml"}"')
ADAPT = DEBUG_TEXT[DEBUG_TEXT.index("[adapt]") :]
ADAPT_ALONE = ADAPT[: ADAPT.index("[[claims]]")]  # without the claims that name its styles
WITHOUT_ADAPT = DEBUG_TEXT[: DEBUG_TEXT.index("[adapt]")]


def experiment_file(tmp_path, adapt: str, head: str = WITHOUT_ADAPT):
    path = tmp_path / "experiment.toml"
    path.write_text(head + adapt)
    return path


# ---- the [adapt] section ---------------------------------------------------------------------------


def test_the_debug_experiment_adapts_to_a_new_style():
    experiment = load_experiment(DEBUG)
    adapt = experiment.config.adapt
    assert adapt is not None and adapt.style.name == "essen_folksong" and adapt.shots == [4, 8]
    assert [s.name for s in adapt.styles] == ["essen_folksong", "oneills1850"] and adapt.learning_rates == [1e-3, 3e-3]
    curriculum = experiment.adapt_curriculum
    assert curriculum is not None and curriculum.stage_names == ["essen_folksong"]
    assert curriculum.tokenizer == experiment.curriculum.tokenizer and curriculum.split == experiment.curriculum.split
    assert experiment.adapt_curricula is not None and experiment.adapt_curricula["oneills1850"].stage_names == ["oneills1850"]


def test_no_adapt_section_means_no_adaptation(tmp_path):
    experiment = load_experiment(experiment_file(tmp_path, ""))
    assert experiment.config.adapt is None and experiment.adapt_curriculum is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('collection = "essen_folksong"', 'collection = "bach_chorales", name = "essen_folksong"'),
         "adapt.styles.0: collection 'bach_chorales' is also pretraining stage 'chorales' of curriculum 'debug'; "
         "the new style must be music that no pretraining stage contains"),
        (('collection = "oneills1850", limit = 30 }', 'collection = "oneills1850", limit = 30, name = "hanon" }'),
         "adapt.styles.1.name: 'hanon' is also the name of a pretraining stage of curriculum 'debug'"),
        (('collection = "oneills1850", limit = 30 }', 'collection = "essen_folksong", limit = 30 }'),
         "adapt: styles: names must be unique"),
        (("report_steps = [2, 4]", "report_steps = [3]"), "(top level): adapt.report_steps: 3 is not an evaluation step"),
        (("shots = [4, 8]", "shots = [4, 4]"), "adapt.shots: shots must be distinct piece counts >= 1, got [4, 4]"),
        (("shots = [4, 8]", "shots = [0, 8]"), "adapt.shots: shots must be distinct piece counts >= 1, got [0, 8]"),
        (("tokens = 2048 ", "tokens = 512 "), "(top level): adapt.tokens = 512 gives 1 steps of 512 tokens, fewer than adapt.eval_every = 2"),
        (('source = "music21"', 'source = "generated"'), "adapt.styles.0: Input tag 'generated' found using 'source'"),
        (('source = "music21", collection = "essen_folksong"', 'source = "midi_dir", path = "nowhere"'),
         "adapt.styles.0.path: folder '"),
        (("lr = [1e-3, 3e-3]", "lr = [1e-3, -1.0]"), "adapt: lr must be a positive number or a list of distinct ones"),
        (('lr_rule = { metric = "auc_val" }', 'lr_rule = { metric = "test" }'), "adapt.lr_rule.metric: Input should be"),
        (("eval_every = 2", "eval_every = 2\nwarmup = 3"), "adapt.warmup: unknown key"),
    ],
)  # fmt: skip
def test_a_bad_adapt_section_is_refused_at_load_with_one_line(tmp_path, change, message):
    old, new = change
    assert old in ADAPT_ALONE
    path = experiment_file(tmp_path, ADAPT_ALONE.replace(old, new))
    with pytest.raises(UserError) as caught:
        load_experiment(path)
    line = str(caught.value)
    assert line.startswith(f"{path}: {message}") and "\n" not in line


def test_a_style_in_a_pretraining_folder_is_refused_and_an_arm_may_not_be_called_scratch(tmp_path, midi_folder):
    curriculum = tmp_path / "c.toml"
    curriculum.write_text(f'name = "c"\n[[stages]]\nname = "tunes"\nsource = "midi_dir"\npath = "{midi_folder}"\n')
    head = WITHOUT_ADAPT.replace(f'curriculum = "{REPO / "curricula" / "debug.toml"}"', f'curriculum = "{curriculum}"')
    mastery = head[head.index('pacing = "mastery"') : head.index("[[arms]]", head.index('pacing = "mastery"'))]
    head = head.replace(mastery, 'pacing = "random"\n\n')  # one stage: nothing to master
    inside = ADAPT_ALONE.replace('source = "music21", collection = "essen_folksong", limit = 60', f'source = "midi_dir", path = "{midi_folder / "sub"}"')
    path = experiment_file(tmp_path, inside, head)
    with pytest.raises(UserError, match=rf"adapt.styles.0: folder '{midi_folder / 'sub'}' is also pretraining stage 'tunes' of curriculum 'c'"):
        load_experiment(path)
    renamed = experiment_file(tmp_path, ADAPT, WITHOUT_ADAPT.replace('name = "random"', 'name = "scratch"'))
    with pytest.raises(UserError, match="arms: 'scratch' names the from-scratch model of \\[adapt\\]; rename the arm"):
        load_experiment(renamed)


def test_the_command_line_refuses_a_pretraining_style_in_one_line(tmp_path):
    path = experiment_file(tmp_path, ADAPT.replace('collection = "essen_folksong"', 'collection = "bach_chorales", name = "essen_folksong"'))
    done = subprocess.run([sys.executable, "-m", "curricmusic", "run", str(path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is also pretraining stage 'chorales'" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


# ---- shot subsets and restricted windows -----------------------------------------------------------


def test_shot_subsets_are_nested_seeded_prefixes_of_one_permutation():
    order = np.random.default_rng([3, SHOT_STREAM]).permutation(20)
    assert shot_order(20, 3).tolist() == order.tolist()
    subsets = [shot_subset(20, k, 3) for k in (2, 5, 9, 20)]
    assert subsets[0].tolist() == sorted(order[:2].tolist()) and subsets[-1].tolist() == list(range(20))
    for small, large in zip(subsets[:-1], subsets[1:], strict=True):
        assert set(small.tolist()) < set(large.tolist())  # the 2 are inside the 5, ...
    assert shot_subset(20, 9, 3).tolist() == subsets[2].tolist()  # the same for every model of a seed
    assert shot_subset(20, 9, 4).tolist() != subsets[2].tolist()  # another seed draws others
    with pytest.raises(ValueError, match="21 shots from 20 pieces"):
        shot_subset(20, 21, 0)


def test_a_packed_stage_restricted_to_a_subset_reads_only_those_pieces():
    lengths = [3, 5, 2, 4]
    tokens = np.arange(sum(lengths), dtype=np.uint16)  # piece i holds consecutive ids
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    stage = PackedStage(tokens, offsets, keep=np.array([1, 3]))
    assert stage.n_tokens == 9
    assert stage.read(np.arange(9)).tolist() == [3, 4, 5, 6, 7, 10, 11, 12, 13]  # piece 1, then piece 3
    ranked = PackedStage(tokens, offsets, ranks=np.array([3, 2, 1, 0]), keep=np.array([0, 3]))
    assert ranked.read(np.arange(7)).tolist() == [10, 11, 12, 13, 0, 1, 2]  # rank order kept inside the subset
    assert PackedStage(tokens, offsets, keep=np.array([0, 1])).in_storage_order


# ---- adaptation runs through the one loop ----------------------------------------------------------


@pytest.fixture(scope="module")
def experiment():
    return load_experiment(DEBUG)


@pytest.fixture(scope="module")
def scratch_run(experiment, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("adapt") / "scratch"
    train_run(experiment, "scratch", 0, run_dir, adapt=Adaptation(4, None, "scratch", lr=1e-3), show_progress=False)
    return run_dir


def _losses(rows):
    return [(r["step"], r["train_loss"], r.get("val_loss"), r["lr"], r["tokens_seen"]) for r in rows]


def test_an_adaptation_run_trains_on_its_shots_with_its_own_budget_and_cadence(scratch_run, experiment):
    from curricmusic.training.setup import style_prepared

    adapt = experiment.config.adapt
    info = json.loads((scratch_run / "run.json").read_text())
    rows = read_metrics(scratch_run)
    steps = adapt.tokens // experiment.config.train.tokens_per_step
    assert info["status"] == "finished" and info["adapt"]["shots"] == 4 and info["adapt"]["init"] is None
    assert [r["step"] for r in rows if "val_loss" in r] == list(range(0, steps + 1, adapt.eval_every))
    assert set(rows[-1]["val_loss"]) == {"essen_folksong"} and set(info["test_loss"]) == {"essen_folksong"}
    assert rows[-1]["tokens_seen"] == adapt.tokens and info["lr"] == 1e-3
    assert {r["lr"] for r in rows if r["step"] >= 2} == {1e-3}  # constant after one warm-up step
    assert info["adapt"]["style"] == "essen_folksong" and info["adapt"]["train_tokens"] > 0
    data = style_prepared(experiment, show_progress=False)
    train = [p["id"] for p in data.pieces("essen_folksong", "train")]
    assert info["adapt"]["pieces"] == [train[i] for i in shot_subset(len(train), 4, 0)]


def test_a_resumed_adaptation_run_equals_an_uninterrupted_one(scratch_run, experiment, tmp_path):
    adapt = Adaptation(4, None, "scratch", lr=1e-3)
    train_run(experiment, "scratch", 0, tmp_path, adapt=adapt, show_progress=False, stop_after=3)  # last checkpoint: 2
    result = train_run(experiment, "scratch", 0, tmp_path, adapt=adapt, resume=True, show_progress=False)
    assert result.resumed_from == 2
    assert _losses(read_metrics(tmp_path)) == _losses(read_metrics(scratch_run))
    ours, theirs = (json.loads((d / "run.json").read_text()) for d in (tmp_path, scratch_run))
    assert ours["test_loss"] == theirs["test_loss"] and ours["init_sha256"] == theirs["init_sha256"]
    with pytest.raises(UserError, match="holds another adaptation run"):
        train_run(experiment, "scratch", 0, tmp_path, adapt=Adaptation(8, None, "scratch", lr=1e-3), resume=True, show_progress=False)
    with pytest.raises(UserError, match="sweeps learning rates"):
        train_run(experiment, "scratch", 0, tmp_path / "x", adapt=Adaptation(4, None, "scratch"), show_progress=False)


def test_an_adaptation_starts_from_the_weights_it_is_given(scratch_run, experiment, tmp_path):
    from curricmusic.model.transformer import weights_digest
    from curricmusic.training.setup import build_model, style_prepared

    vocab = style_prepared(experiment, show_progress=False).vocab_size
    scratch = json.loads((scratch_run / "run.json").read_text())
    assert scratch["init_sha256"] == weights_digest(build_model(experiment, vocab, 0))  # the seed's initial weights
    assert scratch["init_sha256"] != weights_digest(build_model(experiment, vocab, 1))
    # from the adapted model's own final weights: a chain of adaptations starts where the last ended
    train_run(experiment, "again", 0, tmp_path, adapt=Adaptation(4, scratch_run / "model", "again", lr=1e-3), show_progress=False)
    from curricmusic.model.transformer import load_model

    assert json.loads((tmp_path / "run.json").read_text())["init_sha256"] == weights_digest(load_model(scratch_run / "model"))


def test_resuming_an_adaptation_from_other_weights_is_refused(scratch_run, experiment, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(scratch_run, run_dir)  # a from-scratch run, resumed as if it started from a trained model
    with pytest.raises(UserError, match="holds a run that started from other weights; use a new --out folder"):
        train_run(experiment, "scratch", 0, run_dir, adapt=Adaptation(4, scratch_run / "model", "scratch", lr=1e-3), resume=True, show_progress=False)


# ---- statistics of the phase -----------------------------------------------------------------------


def _run(model, seed, shots, time, reached=True, test=3.0, early=4.0):
    summary = {"tokens_to_target": time, "reached_target": reached, "test": test, "early_val": early,
               "final_val": test + 0.1, "best_val": test + 0.1, "auc_val": test + 0.5}  # fmt: skip
    return {"model": model, "seed": seed, "shots": shots, "status": "done", "summary": summary,
            "curves": {"eval_tokens": [0, 100, 200], "val": [6.0, 5.0, 4.0 + seed]}}  # fmt: skip


def test_one_adaptation_runs_figures():
    curves = {"eval_tokens": [0, 100, 200, 300], "eval_steps": [0, 1, 2, 3], "val": [6.0, 5.0, 4.0, 3.0]}
    summary = adaptation_summary(curves, {"test_loss": {"s": 2.5}}, "s", target=4.5, budget=300, early_tokens=100)
    assert summary | {"gap_closed": None, "epochs": None} == {
        "start_val": 6.0, "early_val": 5.0, "final_val": 3.0, "best_val": 3.0, "auc_val": pytest.approx(4.5), "drop": 3.0,
        "test": 2.5, "tokens_to_target": 150.0, "reached_target": True, "gap_closed": None, "epochs": None,
    }  # fmt: skip
    never = adaptation_summary(curves, {}, "s", target=1.0, budget=300, early_tokens=100)
    assert never["tokens_to_target"] == 300 and not never["reached_target"] and math.isnan(never["test"])


def test_the_adaptation_target_is_fixed_by_rule_from_scratch_at_the_largest_shot_size():
    runs = [_run("scratch", s, 8, 100) for s in (0, 1)] + [_run("scratch", 0, 4, 100), _run("a", 0, 8, 100)]
    target = adaptation_target(None, runs, budget=200, shots=8)
    assert target["per_seed"] == [5.0, 5.0] and target["loss"] == 5.0 and target["at_tokens"] == 100
    assert target["source"] == "rule" and "from-scratch model with 8 pieces" in target["rule"]
    assert adaptation_target(2.5, runs, 200, 8) == {"loss": 2.5, "source": "user", "rule": "adapt.target_loss in the experiment file"}
    assert math.isnan(adaptation_target(None, [], 200, 8)["loss"])


def test_speed_ups_and_differences_are_paired_by_seed():
    seeds = [0, 1, 2]
    runs = [_run("a", s, 4, t, test=3.0 - 0.1 * s) for s, t in zip(seeds, (100, 200, 400), strict=True)]
    runs += [_run("scratch", s, 4, t, test=3.5 - 0.1 * s) for s, t in zip(seeds, (200, 400, 800), strict=True)]
    runs += [_run("random", s, 4, 800, reached=False) for s in seeds]  # never arrives: censored at the budget
    assert adaptation_pairs(["a", "random", "scratch"]) == [("a", "scratch"), ("random", "scratch"), ("a", "random")]
    rows = adaptation_comparisons(runs, adaptation_pairs(["a", "random", "scratch"]), [4], seeds, budget=800)
    speed = next(r for r in rows if (r["arm"], r["baseline"], r["metric"]) == ("a", "scratch", "tokens_to_target"))
    assert speed["speedup"] == pytest.approx(2.0) and speed["speedup_ci_low"] == pytest.approx(2.0)  # 2x every seed
    assert speed["speedup_rmst"] == pytest.approx((200 + 400 + 800) / (100 + 200 + 400))
    assert speed["diff"] == pytest.approx(-700 / 3) and speed["n_at_start"] == 0
    test = next(r for r in rows if (r["arm"], r["baseline"], r["metric"]) == ("a", "scratch", "test"))
    assert test["diff"] == pytest.approx(-0.5) and test["diff_ci_low"] == pytest.approx(-0.5)
    random = next(r for r in rows if (r["arm"], r["baseline"], r["metric"]) == ("a", "random", "tokens_to_target"))
    assert random["speedup"] == pytest.approx((8 * 4 * 2) ** (1 / 3))  # 800/100, 800/200, 800/400
    arms = adaptation_arms(runs, ["a", "random", "scratch"], [4], budget=800)
    assert arms["random"]["shots"]["4"]["tokens_to_target"]["n_reached"] == 0
    assert arms["a"]["shots"]["4"]["test"]["mean"] == pytest.approx(2.9) and arms["a"]["shots"]["4"]["n_done"] == 3


T_975_2 = 4.302652729911275  # Student's t quantile 0.975 with 2 degrees of freedom


def test_speed_up_intervals_are_t_intervals_of_the_log_ratios_exponentiated():
    """Three seeds, the arm 2x, 4x and 8x faster than from-scratch: the speed-up is their geometric
    mean 4, its interval exp(mean +- t * sd / sqrt 3) of ln 2, 2 ln 2, 3 ln 2 (sd ln 2)."""
    seeds = [0, 1, 2]
    runs = [_run("a", s, 8, 100.0) for s in seeds] + [_run("scratch", s, 8, t) for s, t in zip(seeds, (200.0, 400.0, 800.0), strict=True)]
    rows = adaptation_comparisons(runs, [("a", "scratch")], [8], seeds, budget=1000)
    speed = next(r for r in rows if r["metric"] == "tokens_to_target")
    half = T_975_2 * math.log(2) / math.sqrt(3)
    assert speed["n_pairs"] == 3 and speed["seeds"] == seeds and speed["shots"] == 8
    assert speed["speedup"] == pytest.approx(4.0)
    assert speed["speedup_ci_low"] == pytest.approx(4.0 * math.exp(-half))
    assert speed["speedup_ci_high"] == pytest.approx(4.0 * math.exp(half))
    assert speed["speedup_rmst"] == pytest.approx(1400 / 300)
    diffs = np.array([-100.0, -300.0, -700.0])  # arm minus scratch, tokens
    half_diff = T_975_2 * diffs.std(ddof=1) / math.sqrt(3)
    assert speed["diff"] == pytest.approx(diffs.mean())
    assert (speed["diff_ci_low"], speed["diff_ci_high"]) == pytest.approx((diffs.mean() - half_diff, diffs.mean() + half_diff))
    assert math.isnan(speed["p_value"]) and speed["too_few_for_p"]  # p-values only from 5 seeds
    # a seed missing for either model drops out of the pairs: two pairs left
    rows = adaptation_comparisons(runs[1:], [("a", "scratch")], [8], seeds, budget=1000)
    assert next(r for r in rows if r["metric"] == "tokens_to_target")["seeds"] == [1, 2]


def test_a_model_at_the_target_before_adapting_has_no_ratio_but_a_difference():
    runs = [_run("a", s, 4, 0.0) for s in range(3)] + [_run("scratch", s, 4, 300.0) for s in range(3)]
    rows = adaptation_comparisons(runs, [("a", "scratch")], [4], [0, 1, 2], budget=400)
    speed = next(r for r in rows if r["metric"] == "tokens_to_target")
    assert math.isnan(speed["speedup"]) and speed["n_at_start"] == 3 and speed["n_control_at_start"] == 0
    assert speed["diff"] == -300.0


# ---- the report ----------------------------------------------------------------------------------


def test_the_report_section_and_figures_of_the_phase():
    from curricmusic.reporting.adaptation import adaptation_figures, adaptation_lines

    assert adaptation_lines({"adaptation": None}) == [] and adaptation_figures({}) == []
    runs = [_run(m, s, k, 100.0) for m in ("a", "scratch") for s in range(3) for k in (4, 8)]
    adaptation = {
        "style": {"stage": "folk", "config": {"collection": "essen_folksong"}, "n_pieces": {"train": 30, "val": 9, "test": 4}},
        "shots": [4, 8], "budget_tokens": 200.0, "lr": 1e-3, "lr_schedule": "constant", "early_steps": 4,
        "target": {"loss": 5.0, "rule": "a rule"}, "models": ["a", "scratch"], "runs": runs,
        "arms": adaptation_arms(runs, ["a", "scratch"], [4, 8], 200.0),
        "comparisons": adaptation_comparisons(runs, [("a", "scratch")], [4, 8], [0, 1, 2], 200.0),
    }  # fmt: skip
    text = "\n".join(adaptation_lines({"adaptation": adaptation}))
    assert "## Adaptation to a new style" in text and "(essen_folksong: 30 train, 9 val, 4 test pieces" in text
    assert "| a | 4 | 3 | 4.00 [4.00, 4.00] |" in text and "| a | scratch | 8 | 3 | 1.00x [1.00, 1.00] |" in text
    figures = adaptation_figures({"adaptation": adaptation})
    assert len(figures) == 2 and all(png.startswith(b"\x89PNG") for png, _ in figures)
    # the shot-size plot: beside from-scratch, a second panel with the pretrained models alone
    from curricmusic.reporting.adapt_plots import shot_size_plot

    def width(png: bytes) -> int:  # the PNG header's IHDR width
        return int.from_bytes(png[16:20], "big")

    alone = {"adaptation": {**adaptation, "models": ["a"]}}
    assert width(shot_size_plot({"adaptation": adaptation})) > 1.8 * width(shot_size_plot(alone))  # tight bbox


def test_against_random_the_arms_race_to_randoms_own_target():
    """A pretrained model starts below from-scratch's target, so the race against ``random`` is to
    the level random itself reaches at half the budget (``tokens_to_random_target``)."""
    seeds = [0, 1, 2]
    runs = [_run(m, s, 4, 0.0) for m in ("a", "random") for s in seeds]  # both below scratch's target at once
    for run in runs:
        fast = run["model"] == "a"
        run["summary"] |= {"tokens_to_random_target": 100.0 if fast else 200.0 * (run["seed"] + 1), "reached_random_target": True}
    target = adaptation_target(None, runs, budget=200, shots=4, model="random")
    assert target["per_seed"] == [5.0, 5.0, 5.0] and "the 'random' arm with 4 pieces" in target["rule"]
    rows = adaptation_comparisons(runs, [("a", "random")], [4], seeds, budget=800)
    speed = next(r for r in rows if r["metric"] == "tokens_to_target")
    assert speed["target"] == "random" and speed["n_at_start"] == 0
    assert speed["speedup"] == pytest.approx((2 * 4 * 6) ** (1 / 3))  # 200/100, 400/100, 600/100
    # without the second target (no random arm, or a user target) the race is to from-scratch's
    for run in runs:
        del run["summary"]["tokens_to_random_target"], run["summary"]["reached_random_target"]
    speed = next(r for r in adaptation_comparisons(runs, [("a", "random")], [4], seeds, 800) if r["metric"] == "tokens_to_target")
    assert speed["target"] == "scratch" and math.isnan(speed["speedup"]) and speed["n_at_start"] == 3
