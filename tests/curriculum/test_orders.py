"""More ways to order: sequence-length warm-up, pedagogy as a pre-phase and growing-data random
order, each one pacing class.

Schedules are checked as pure functions (exact lengths, exact window counts), then trained on
the debug experiment: every step trains the same real tokens, and a killed run resumes exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from curricmusic.common.errors import UserError
from curricmusic.common.run_folder import read_metrics
from curricmusic.config import ArmConfig, load_experiment
from curricmusic.curriculum.allocation import allocate, step_windows
from curricmusic.curriculum.pacing import ScheduleContext, build_schedule, warmup_length
from curricmusic.curriculum.run_counts import window_counts
from curricmusic.training.loop import train_run
from tests.conftest import REPO
from tests.helpers import MINIMAL_EXPERIMENT

STAGES = ["scales", "hanon", "etudes", "chorales"]
TOKENS = {s: np.array([100 * (i + 1) for i in range(n)]) for s, n in zip(STAGES, (3, 4, 5, 6), strict=True)}
DIFFICULTY = {s: np.linspace(0.1, 0.2, t.shape[0]) + 0.2 * k for k, (s, t) in enumerate(TOKENS.items())}
BATCH, SEQ = 8, 64


def schedule(total_steps=100, matched=None, **arm):
    context = ScheduleContext(tuple(STAGES), "chorales", 0, total_steps, BATCH, SEQ, matched)
    return build_schedule(ArmConfig(name="a", **arm), context, DIFFICULTY, TOKENS)


# ---- sequence-length warm-up ---------------------------------------------------------------------


@pytest.mark.parametrize(("start", "seq_len", "steps"), [(8, 64, 40), (16, 64, 7), (3, 48, 30), (64, 64, 10)])
def test_warmup_lengths_grow_monotonically_through_divisors_to_the_full_context(start, seq_len, steps):
    lengths = [warmup_length(t, steps, start, seq_len) for t in range(steps + 5)]
    assert lengths[0] == start
    assert all(a <= b for a, b in zip(lengths, lengths[1:], strict=False))
    assert all(seq_len % n == 0 and start <= n <= seq_len for n in lengths)
    assert lengths[steps:] == [seq_len] * 5 and (steps == 0 or lengths[steps - 1] <= seq_len)
    # the staircase never runs ahead of the paper's linear ramp
    assert all(n <= start + (seq_len - start) * t / steps + 1e-9 for t, n in enumerate(lengths[:steps]))


def test_warmup_length_is_exact_on_a_small_case():
    assert [warmup_length(t, 8, 16, 64) for t in range(10)] == [16, 16, 16, 32, 32, 32, 32, 32, 64, 64]
    assert [warmup_length(t, 6, 4, 12) for t in range(7)] == [4, 4, 6, 6, 6, 6, 12]  # 12's divisors: 4, 6, 12
    with pytest.raises(ValueError, match="does not divide"):
        warmup_length(0, 8, 24, 64)


def test_the_warmup_arm_mixes_like_random_and_every_step_trains_the_same_real_tokens():
    warm = schedule(pacing="seq-warmup", start_len=8, warmup_fraction=0.5)
    plain = schedule(pacing="random")
    debt = np.zeros(len(STAGES))
    lengths, state = [], warm.initial_state()
    for step in range(warm.total_steps):
        mixture = warm.mixture(step, state)
        np.testing.assert_array_equal(mixture.weights, plain.mixture(step, {}).weights)
        windows, factor = step_windows(mixture.seq_len, BATCH, SEQ)
        counts, debt = allocate(mixture.weights, debt, windows)
        length = mixture.seq_len or SEQ
        assert counts.sum() * length == BATCH * SEQ and factor * length == SEQ
        lengths.append(length)
    assert lengths[0] == 8 and lengths[49] < SEQ and lengths[50:] == [SEQ] * 50
    assert lengths == sorted(lengths) and set(lengths) == {8, 16, 32, 64}
    # over the run, its stage tokens are the pool's mix, as random's are (to within a full window)
    warm_tokens = {k: v * SEQ for k, v in window_counts(warm, BATCH).items()}
    plain_tokens = {k: v * SEQ for k, v in window_counts(plain, BATCH).items()}
    assert sum(plain_tokens.values()) == 100 * BATCH * SEQ
    assert abs(sum(warm_tokens.values()) - 100 * BATCH * SEQ) <= len(STAGES) * SEQ / 2  # rounded to full windows
    assert all(abs(warm_tokens[s] - plain_tokens[s]) <= SEQ for s in STAGES)


def test_a_step_of_shorter_windows_holds_more_of_them():
    assert step_windows(None, 8, 64) == (8, 1)
    assert step_windows(16, 8, 64) == (32, 4)
    with pytest.raises(ValueError, match="must divide the context 64"):
        step_windows(24, 8, 64)


# ---- pedagogy as a pre-phase ---------------------------------------------------------------------


@pytest.mark.parametrize(("fraction", "steps"), [(0.35, 100), (0.5, 7), (0.1, 33)])
def test_the_pre_phase_gives_exactly_the_pedagogy_share_then_the_target_only(fraction, steps):
    s = schedule(total_steps=steps, pacing="pre-phase", pre_fraction=fraction)
    assert s.stages.names == tuple(STAGES)
    pre = round(fraction * steps)
    pedagogy = np.array([TOKENS[n].sum() for n in STAGES[:-1]], dtype=float)
    for step in range(steps):
        weights = s.mixture(step, {}).weights
        if step < pre:
            np.testing.assert_allclose(weights[:-1], pedagogy / pedagogy.sum(), rtol=1e-12)
            assert weights[-1] == 0 and STAGES[s.current_stage(step, {})] == "etudes"  # the largest pedagogy stage
        else:
            assert weights.tolist() == [0, 0, 0, 1] and s.current_stage(step, {}) == 3
    counts = window_counts(s, BATCH)
    assert sum(counts[n] for n in STAGES[:-1]) == pre * BATCH
    assert counts["chorales"] == (steps - pre) * BATCH
    # each pedagogy stage in proportion to its tokens, to within one window
    for name, share in zip(STAGES[:-1], pedagogy / pedagogy.sum(), strict=True):
        assert abs(counts[name] - share * pre * BATCH) <= 1


def test_the_pre_phase_needs_the_target_and_another_stage():
    with pytest.raises(UserError, match="needs the target stage 'chorales' and at least one other"):
        schedule(pacing="pre-phase", stages=["chorales"])
    with pytest.raises(UserError, match="needs the target stage"):
        schedule(pacing="pre-phase", stages=["scales", "hanon"])


# ---- random order with a growing data set (Wu et al. 2021) ---------------------------------------


def test_growing_random_grows_like_competence_over_a_seeded_random_ranking():
    grow = schedule(pacing="growing-random", c0=0.05, competence_fraction=1.0)
    curriculum = schedule(pacing="competence", c0=0.05, competence_fraction=1.0)
    shuffled = schedule(pacing="competence", c0=0.05, competence_fraction=1.0, order="shuffled")
    # the same growth of the eligible set c(t) x N as competence ...
    assert [grow.rank_limit(t) for t in range(101)] == [curriculum.rank_limit(t) for t in range(101)]
    # ... over a random ranking of every piece across stages: competence order = "shuffled", exactly
    ranks = np.concatenate(grow.stages.ranks)
    assert sorted(ranks.tolist()) == list(range(18))
    assert not np.array_equal(ranks, np.concatenate(curriculum.stages.ranks))
    np.testing.assert_array_equal(ranks, np.concatenate(shuffled.stages.ranks))
    for t in (0, 10, 50, 100):
        np.testing.assert_array_equal(grow.mixture(t, {}).weights, shuffled.mixture(t, {}).weights)
    # the first eligible piece is the lowest-ranked one, wherever its stage is; the end is random's mix
    first = int(np.argmax([r.min() == 0 for r in grow.stages.ranks]))
    assert grow.mixture(0, {}).weights.tolist() == np.eye(4)[first].tolist()
    total = np.array([TOKENS[s].sum() for s in STAGES], dtype=float)
    np.testing.assert_allclose(grow.mixture(100, {}).weights, total / total.sum())
    # another seed, another ranking
    other = build_schedule(
        ArmConfig(name="a", pacing="growing-random"),
        ScheduleContext(tuple(STAGES), "chorales", 1, 100, BATCH, SEQ, None), DIFFICULTY, TOKENS,
    )  # fmt: skip
    assert not np.array_equal(np.concatenate(other.stages.ranks), ranks)


# ---- options checked against [train] when the experiment loads -----------------------------------



@pytest.mark.parametrize(
    ("arm", "message"),
    [
        ('pacing = "seq-warmup"\nstart_len = 24\n', "arms.0.start_len: 24 does not divide train.seq_len 64"),
        ('pacing = "seq-warmup"\nstart_len = 128\n', "arms.0.start_len: 128 does not divide"),
        ('pacing = "seq-warmup"\nwarmup_fraction = 0\n', "warmup_fraction"),
        ('pacing = "pre-phase"\npre_fraction = 0.01\n', "arms.0.pre_fraction: 0.01 of 8 steps leaves no step"),
        ('pacing = "pre-phase"\nstart_len = 8\n', "start_len is not an option of pacing 'pre-phase' (it belongs to seq-warmup)"),
        ('pacing = "growing-random"\norder = "reverse"\n', "order is not an option of pacing 'growing-random'"),
        ('pacing = "growing-random"\nc0 = 0\n', "arms.0: c0: Input should be greater than 0"),
    ],
)
def test_bad_options_fail_with_one_clear_line(tmp_path, arm, message):
    path = tmp_path / "exp.toml"
    path.write_text(MINIMAL_EXPERIMENT + '[[arms]]\nname = "a"\n' + arm)
    with pytest.raises(UserError) as caught:
        load_experiment(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


# ---- trained: equal real tokens, the phases in the metrics, exact resume --------------------------

ARMS = """
[[arms]]
name = "warmup"
pacing = "seq-warmup"
start_len = 16
warmup_fraction = 0.5

[[arms]]
name = "pre"
pacing = "pre-phase"
pre_fraction = 0.25

[[arms]]
name = "warmup-matched"
pacing = "random-matched"
match = "warmup"
"""


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    folder = tmp_path_factory.mktemp("orders")
    text = (REPO / "experiments" / "debug.toml").read_text().split("[[arms]]")[0]
    text = text.replace('curriculum = "../curricula/debug.toml"', f'curriculum = "{REPO / "curricula" / "debug.toml"}"')
    (folder / "orders.toml").write_text(text + ARMS)
    return load_experiment(folder / "orders.toml")


@pytest.fixture(scope="module")
def trained(experiment, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    for arm in ("warmup", "pre"):
        train_run(experiment, arm, 0, folder / arm, show_progress=False)
    return folder


def _losses(rows):
    return [(r["step"], r["train_loss"], r.get("val_loss"), r["stage_tokens"], r.get("window_len"), r["lr"]) for r in rows]


def test_warmup_trains_the_same_real_tokens_every_step_with_growing_windows(experiment, trained):
    train = experiment.config.train
    rows = read_metrics(trained / "warmup")
    assert all(r["tokens_seen"] == r["step"] * train.tokens_per_step for r in rows)
    assert rows[-1]["tokens_seen"] == train.total_steps * train.tokens_per_step
    lengths = [r["window_len"] for r in rows if "window_len" in r]
    assert lengths == sorted(lengths) and lengths[0] == 16 and lengths[-1] == train.seq_len
    assert set(lengths) == {16, 32, 64}
    assert rows[-1]["train_loss"] < rows[1]["train_loss"]


def test_pre_phase_trains_exactly_its_pedagogy_share_then_the_target(experiment, trained):
    train = experiment.config.train
    rows = read_metrics(trained / "pre")
    pre = round(0.25 * train.total_steps)
    final = rows[-1]["stage_tokens"]
    assert sum(v for k, v in final.items() if k != "chorales") == pre * train.tokens_per_step
    assert final["chorales"] == (train.total_steps - pre) * train.tokens_per_step == rows[-1]["target_tokens_seen"]
    for row in rows[1:]:
        target = row["stage_tokens"]["chorales"]
        assert target == max(0, row["step"] - pre) * train.tokens_per_step, row["step"]


def test_random_matched_can_match_the_warmup_arm(experiment):
    from curricmusic.training.setup import plan_run

    plan = plan_run(experiment, "warmup-matched", 0, show_progress=False)
    warm = plan_run(experiment, "warmup", 0, show_progress=False)
    np.testing.assert_allclose(plan.schedule.mixture(0, {}).weights, warm.schedule.mixture(0, {}).weights, atol=0.02)
    assert plan.schedule.mixture(0, {}).seq_len is None  # it matches the tokens, not the window lengths
    assert math.isclose(plan.schedule.mixture(0, {}).weights.sum(), 1.0)


@pytest.mark.parametrize("arm", ["warmup", "pre"])
def test_both_resume_exactly(experiment, trained, tmp_path, arm):
    train_run(experiment, arm, 0, tmp_path, show_progress=False, stop_after=20)
    result = train_run(experiment, arm, 0, tmp_path, resume=True, show_progress=False)
    assert result.resumed_from == 12
    assert _losses(read_metrics(tmp_path)) == _losses(read_metrics(trained / arm))
