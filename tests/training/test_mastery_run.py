"""A small pedagogy run whose basics advance on the mastery criterion or at their cap, recorded in
run.json; the key share measured at every evaluation; resume across a boundary; and the
random-matched control that reads the mastery run's tokens per stage from its finished run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curricmusic.common.errors import UserError
from curricmusic.common.run_folder import read_metrics
from curricmusic.config import load_experiment
from curricmusic.training.loop import train_run
from tests.helpers import REPO

EXPERIMENT = f"""
name = "mastery-test"
curriculum = "{REPO / "curricula" / "debug.toml"}"
seeds = [0]
[model]
size = "tiny"
d_model = 32
n_layers = 1
n_heads = 2
dropout = 0.0
[train]
tokens = 16384          # 32 steps of 8 windows x 64 tokens
seq_len = 64
batch_size = 8
lr = 3e-3
eval_every = 4
eval_pieces = 3
log_every = 4
checkpoint_every = 4
[probe]
at_boundaries = true
[[arms]]
name = "pedagogy"
pacing = "mastery"
stages = ["scales", "hanon", "chorales"]
criterion = "key_share"
key_share = {{shares}}
cap_tokens = 4096       # 8 steps per basics stage at most
[[arms]]
name = "matched"
pacing = "random-matched"
match = "pedagogy"
[[arms]]
name = "mixed"
pacing = "mastery"
stages = ["scales", "hanon", "chorales"]
criterion = "key_share"
key_share = 1.0
cap_tokens = 4096
end = "matched"
[[arms]]
name = "basics"
pacing = "mastery"
stages = ["scales", "hanon"]
criterion = "key_share"
key_share = 1.0
cap_tokens = 4096
end = "pool"
"""


def experiment_with(tmp_path, shares: str):
    path = tmp_path / f"e-{len(list(tmp_path.glob('e-*.toml')))}.toml"
    path.write_text(EXPERIMENT.replace("{shares}", shares))
    return load_experiment(path)


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    """Thresholds no tiny model reaches: both basics stages end at their cap."""
    folder = tmp_path_factory.mktemp("capped")
    experiment = experiment_with(folder, "1.0")
    train_run(experiment, "pedagogy", 0, folder / "pedagogy-seed0", show_progress=False)
    return folder


def test_a_stage_that_never_meets_its_criterion_ends_at_its_cap_and_the_run_records_it(capped):
    info = json.loads((capped / "pedagogy-seed0" / "run.json").read_text())
    events = info["schedule"]["events"]
    assert [(e["stage"], e["mastered"], e["cap_hit"], e["end_step"]) for e in events] == [
        ("scales", False, True, 8),
        ("hanon", False, True, 16),
    ]
    assert [(b["from"], b["to"], b["step"], b["tokens_seen"]) for b in info["stage_boundaries"]] == [
        ("scales", "hanon", 8, 8 * 512),
        ("hanon", "chorales", 16, 16 * 512),
    ]
    rows = read_metrics(capped / "pedagogy-seed0")
    evals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in evals] == list(range(0, 33, 4))
    assert all(set(r["key_share"]) == {"scales", "hanon"} and all(0 < v < 1 for v in r["key_share"].values()) for r in evals)
    for boundary in info["stage_boundaries"]:  # the model where each stage ended, for the probe
        assert (capped / "pedagogy-seed0" / boundary["model"] / "model.safetensors").is_file()


def test_an_arm_of_basics_alone_records_where_its_last_stage_ended(tmp_path):
    """basics-only's last basics stage hands over to its end phase (the basics pooled) without a
    change of the stage being learned: that boundary is recorded (``to`` is ``end``) and its model
    saved, like every other stage's."""
    experiment = experiment_with(tmp_path, "1.0")
    train_run(experiment, "basics", 0, tmp_path / "basics-seed0", show_progress=False)
    info = json.loads((tmp_path / "basics-seed0" / "run.json").read_text())
    assert [(b["from"], b["to"], b["step"]) for b in info["stage_boundaries"]] == [("scales", "hanon", 8), ("hanon", "end", 16)]
    assert [(e["stage"], e["end_step"]) for e in info["schedule"]["events"]] == [("scales", 8), ("hanon", 16)]
    for boundary in info["stage_boundaries"]:
        assert (tmp_path / "basics-seed0" / boundary["model"] / "model.safetensors").is_file()


def test_a_mixed_end_is_recorded_as_the_end_not_as_the_target_stage(tmp_path):
    """pedagogy-mixed-end's last basics stage hands over to every stage in random-matched's
    shares, not to the chorales: its boundary says ``end``, where pedagogy's says ``chorales``."""
    experiment = experiment_with(tmp_path, "1.0")
    train_run(experiment, "mixed", 0, tmp_path / "mixed-seed0", show_progress=False)
    info = json.loads((tmp_path / "mixed-seed0" / "run.json").read_text())
    assert [(b["from"], b["to"], b["step"]) for b in info["stage_boundaries"]] == [("scales", "hanon", 8), ("hanon", "end", 16)]
    shares = info["schedule"]["end_weights"]
    assert len(shares) == 3 and all(share > 0 for share in shares)  # the end draws every stage


def test_a_stage_advances_at_the_first_evaluation_where_its_criterion_holds(capped, tmp_path):
    """The same run with the scales' threshold set to the key share the capped run measured at
    step 4 (the same seed trains the same model until then): the scales are mastered at step 4,
    with that value recorded, and the hanon stage still ends at its cap."""
    measured = next(r for r in read_metrics(capped / "pedagogy-seed0") if r["step"] == 4)["key_share"]["scales"]
    experiment = experiment_with(tmp_path, f"[{measured - 1e-9!r}, 1.0]")
    train_run(experiment, "pedagogy", 0, tmp_path / "pedagogy-seed0", show_progress=False)
    events = json.loads((tmp_path / "pedagogy-seed0" / "run.json").read_text())["schedule"]["events"]
    assert events[0] | {"value": None} == {
        "stage": "scales", "criterion": "key_share", "mastered": True, "cap_hit": False, "steps": 4, "end_step": 4, "value": None,
    }  # fmt: skip
    assert events[0]["value"] == pytest.approx(measured)
    assert (events[1]["stage"], events[1]["mastered"], events[1]["cap_hit"], events[1]["end_step"]) == ("hanon", False, True, 12)


def test_a_run_killed_after_a_boundary_resumes_exactly(capped, tmp_path):
    experiment = experiment_with(tmp_path, "1.0")
    run_dir = tmp_path / "pedagogy-seed0"
    train_run(experiment, "pedagogy", 0, run_dir, show_progress=False, stop_after=10)  # last checkpoint: step 8
    train_run(experiment, "pedagogy", 0, run_dir, show_progress=False, resume=True)
    ours, theirs = read_metrics(run_dir), read_metrics(capped / "pedagogy-seed0")
    assert [r["train_loss"] for r in ours] == [r["train_loss"] for r in theirs]
    assert [r.get("key_share") for r in ours] == [r.get("key_share") for r in theirs]
    mine, reference = (json.loads((d / "run.json").read_text()) for d in (run_dir, capped / "pedagogy-seed0"))
    assert mine["schedule"] == reference["schedule"]


def test_random_matched_reads_the_mastery_runs_tokens_per_stage_from_its_finished_run(capped):
    experiment = load_experiment(next(capped.glob("e-*.toml")))
    train_run(experiment, "matched", 0, capped / "matched-seed0", show_progress=False)  # beside pedagogy-seed0
    theirs = json.loads((capped / "pedagogy-seed0" / "run.json").read_text())["stage_tokens"]
    ours = json.loads((capped / "matched-seed0" / "run.json").read_text())["stage_tokens"]
    assert set(ours) == set(theirs)
    assert all(abs(ours[s] - theirs[s]) <= 64 for s in theirs)  # within one window per stage
    weights = [r["stage_weights"] for r in read_metrics(capped / "matched-seed0")]
    assert len({json.dumps(w) for w in weights}) == 1  # random order: the same mix every step
    assert np.isclose(sum(weights[0].values()), 1.0)


def test_without_the_matched_run_the_control_refuses_to_start(capped, tmp_path):
    experiment = load_experiment(next(capped.glob("e-*.toml")))
    with pytest.raises(UserError, match="no run here; arm 'matched' matches 'pedagogy'"):
        train_run(experiment, "matched", 0, tmp_path / "matched-seed0", show_progress=False)
