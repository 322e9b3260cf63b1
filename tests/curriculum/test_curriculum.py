"""Schedules are pure functions of the step: exact boundaries, monotone competence, plateau advance,
deterministic window allocation, and baselines that match a curriculum's per-stage tokens."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curricmusic.config import ARM_OPTIONS, PACING_NAMES, ArmConfig
from curricmusic.curriculum.allocation import allocate
from curricmusic.curriculum.pacing import (
    PACINGS,
    Mixture,
    Pacing,
    ScheduleContext,
    build_schedule,
    competence,
    fixed_boundaries,
    piece_ranks,
    replay_weights,
    stage_at,
)
from curricmusic.curriculum.run_counts import window_counts

STAGES = ["scales", "hanon", "etudes", "chorales"]
# four stages of 3, 4, 5, 6 pieces; piece i of a stage has 100 * (i + 1) tokens
TOKENS = {s: np.array([100 * (i + 1) for i in range(n)]) for s, n in zip(STAGES, (3, 4, 5, 6), strict=True)}
DIFFICULTY = {s: np.linspace(0.1, 0.2, t.shape[0]) + 0.2 * k for k, (s, t) in enumerate(TOKENS.items())}
BATCH = 8


def context(total_steps=100, matched=None, seed=0):
    return ScheduleContext(tuple(STAGES), "chorales", seed, total_steps, BATCH, 8, matched)


def schedule(total_steps=100, matched=None, **arm):
    return build_schedule(ArmConfig(name="a", **arm), context(total_steps, matched), DIFFICULTY, TOKENS)


def test_the_config_and_the_behaviour_registries_name_the_same_pacings():
    assert set(PACINGS) == set(ARM_OPTIONS) == set(PACING_NAMES)
    assert all(issubclass(cls, Pacing) for cls in PACINGS.values())


MATCHED = {"scales": 100, "hanon": 100, "etudes": 200, "chorales": 400}


@pytest.mark.parametrize(
    "arm",
    [
        {"pacing": "fixed"},
        {"pacing": "fixed", "replay": 0.2, "stage_fractions": [0.1, 0.2, 0.3]},
        {"pacing": "competence"},
        {"pacing": "competence", "competence": "linear", "order": "shuffled"},
        {"pacing": "plateau", "replay": 0.3},
        {"pacing": "random"},
        {"pacing": "target-only"},
        {"pacing": "fixed", "order": "reverse"},
        {"pacing": "random-matched", "match": "x"},
        {"pacing": "target-only", "match": "x"},
    ],
)
def test_weights_are_a_distribution_and_allocations_fill_the_batch(arm):
    s = schedule(matched=MATCHED, **arm)
    state = s.initial_state()
    debt = np.zeros(len(s.stages.names))
    for step in range(s.total_steps):
        mixture = s.mixture(step, state)
        assert mixture.weights.shape == (len(s.stages.names),)
        assert np.all(mixture.weights >= 0)
        assert math.isclose(mixture.weights.sum(), 1.0, abs_tol=1e-12)
        counts, debt = allocate(mixture.weights, debt, BATCH)
        assert counts.sum() == BATCH and np.all(counts[mixture.weights == 0] == 0)
        state = s.update(step, state, {name: 2.0 for name in STAGES})


@pytest.mark.parametrize("form", ["sqrt", "linear"])
def test_competence_is_monotone_from_c0_and_reaches_one_at_T(form):
    values = [competence(t, 200, 0.1, form) for t in range(0, 260)]
    assert values[0] == pytest.approx(0.1)
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert values[199] < 1.0
    assert all(v == 1.0 for v in values[200:])
    assert competence(50, 200, 0.1, "sqrt") == pytest.approx(math.sqrt(50 * (1 - 0.01) / 200 + 0.01))
    assert competence(50, 200, 0.1, "linear") == pytest.approx(50 * 0.9 / 200 + 0.1)


def test_competence_unlocks_pieces_in_stage_then_difficulty_order_uniform_over_tokens():
    s = schedule(total_steps=100, pacing="competence", c0=0.05, competence_fraction=1.0)
    seen_limits = [s.rank_limit(t) for t in range(101)]
    assert seen_limits[0] == 1 and seen_limits[100] == 18  # 3 + 4 + 5 + 6 pieces
    early = s.mixture(0, s.initial_state())
    assert early.weights.tolist() == [1.0, 0.0, 0.0, 0.0]  # only the easiest scale
    # nine pieces eligible: the 3 scales (600 tokens), the 4 hanon (1000), 2 etudes (300):
    # every eligible token equally likely, so stages in proportion to their eligible tokens
    step = next(t for t in range(101) if s.rank_limit(t) == 9)
    mixture = s.mixture(step, s.initial_state())
    np.testing.assert_allclose(mixture.weights, np.array([600.0, 1000.0, 300.0, 0.0]) / 1900)
    assert mixture.rank_limit == 9 and s.current_stage(step, {}) == 2


def test_fixed_boundaries_are_exact():
    np.testing.assert_array_equal(fixed_boundaries(3, 100, fractions=[0.25, 0.25]), [25, 50, 100])
    np.testing.assert_array_equal(fixed_boundaries(3, 100, steps=[10, 30, 60]), [10, 40, 100])
    # tokens are converted with a ceiling: 1000 tokens at 64 per step is 16 steps
    np.testing.assert_array_equal(fixed_boundaries(2, 50, tokens=[1000], tokens_per_step=64), [16, 50])
    np.testing.assert_array_equal(fixed_boundaries(4, 100), [25, 50, 75, 100])
    bounds = fixed_boundaries(3, 100, fractions=[0.25, 0.25])
    assert [stage_at(t, bounds) for t in (0, 24, 25, 49, 50, 99, 150)] == [0, 0, 1, 1, 2, 2, 2]
    s = schedule(pacing="fixed", stage_fractions=[0.1, 0.2, 0.3, 0.4])
    assert [int(np.argmax(s.mixture(t, {}).weights)) for t in (9, 10, 29, 30, 59, 60, 99)] == [0, 1, 1, 2, 2, 3, 3]


def test_replay_keeps_a_share_on_earlier_stages_in_proportion_to_size():
    sizes = np.array([600.0, 1000.0, 1500.0, 2100.0])
    np.testing.assert_allclose(replay_weights(0, sizes, 0.2), [1, 0, 0, 0])
    np.testing.assert_allclose(replay_weights(2, sizes, 0.2), [0.2 * 600 / 1600, 0.2 * 1000 / 1600, 0.8, 0])
    s = schedule(pacing="fixed", stage_fractions=[0.25, 0.25, 0.25], replay=0.2)
    np.testing.assert_allclose(s.mixture(80, {}).weights, replay_weights(3, sizes, 0.2))


def test_plateau_advances_when_validation_stops_improving():
    s = schedule(total_steps=1000, pacing="plateau", patience=2, min_delta=0.05, max_stage_fraction=1.0)
    state = s.initial_state()
    curve = [3.0, 2.5, 2.2, 2.15, 2.14, 2.13]  # improvements of 17%, 12%, then under 5% twice
    stages = []
    for step, loss in enumerate(curve):
        before = dict(state)
        state = s.update(step, state, {"scales": loss})
        assert s.update(step, before, {"scales": loss}) == state  # pure: the given dict is untouched
        stages.append(state["stage"])
    assert stages == [0, 0, 0, 0, 1, 1]
    assert state["stage_start"] == 5 and state["best"] is None
    # no evaluation: only the time limit can advance
    assert s.update(6, state, None) == state


def test_plateau_time_limit_advances_without_evaluations():
    s = schedule(total_steps=100, pacing="plateau", patience=5, max_stage_fraction=0.2)
    state = s.initial_state()
    stages = []
    for step in range(100):
        stages.append(int(np.argmax(s.mixture(step, state).weights)))
        state = s.update(step, state, None)
    assert stages[:20] == [0] * 20 and stages[20:40] == [1] * 20 and stages[40:60] == [2] * 20
    assert stages[60:] == [3] * 40  # the last stage keeps the rest of the budget


def test_baselines_random_target_only_anti_and_shuffled():
    random_arm = schedule(pacing="random")
    sizes = np.array([t.sum() for t in TOKENS.values()], dtype=float)
    np.testing.assert_allclose(random_arm.mixture(0, {}).weights, sizes / sizes.sum())
    target = schedule(pacing="target-only")
    assert target.stages.names == ("chorales",) and target.total_steps == 100
    np.testing.assert_allclose(target.mixture(50, {}).weights, [1.0])
    anti = schedule(pacing="fixed", order="reverse", replay=0.1)
    assert anti.stages.names == ("chorales", "etudes", "hanon", "scales")
    assert anti.mixture(99, {}).weights[0] > 0  # the anti arm replays, as the fixed one does
    shuffled = schedule(pacing="fixed", order="shuffled").stages.names
    assert sorted(shuffled) == sorted(STAGES)
    assert shuffled == schedule(pacing="fixed", order="shuffled").stages.names


def test_piece_ranks_orders():
    counts = [np.zeros(2), np.zeros(3)]
    assert [r.tolist() for r in piece_ranks(counts, "curriculum", 0)] == [[0, 1], [2, 3, 4]]
    assert [r.tolist() for r in piece_ranks(counts, "reverse", 0)] == [[4, 3], [2, 1, 0]]
    shuffled = np.concatenate(piece_ranks(counts, "shuffled", 0))
    assert sorted(shuffled.tolist()) == [0, 1, 2, 3, 4]


def test_allocation_keeps_every_stage_within_one_window_of_its_share():
    rng = np.random.default_rng(0)
    debt = np.zeros(4)
    expected = np.zeros(4)
    given = np.zeros(4, dtype=np.int64)
    for _ in range(500):
        weights = rng.dirichlet(np.ones(4)) * (rng.random(4) > 0.3)
        if weights.sum() == 0:
            weights[0] = 1.0
        weights /= weights.sum()
        counts, debt = allocate(weights, debt, 7)
        assert counts.sum() == 7 and np.all(counts >= 0) and np.all(counts[weights == 0] == 0)
        expected += weights * 7
        given += counts
        assert np.all(np.abs(expected - given) < 4)  # bounded: stages switched off keep their remainder
    # constant shares: exact to within one window at every step
    debt, given = np.zeros(3), np.zeros(3, dtype=np.int64)
    for step in range(1, 200):
        counts, debt = allocate(np.array([0.1, 0.25, 0.65]), debt, 16)
        given += counts
        assert np.all(np.abs(given - np.array([0.1, 0.25, 0.65]) * 16 * step) < 1 + 1e-9)


def test_random_matched_sees_the_same_windows_of_every_stage_as_its_curriculum():
    for arm in (
        {"pacing": "fixed", "stage_fractions": [0.1, 0.1, 0.15], "replay": 0.1},
        {"pacing": "competence", "c0": 0.1, "competence_fraction": 0.5},
    ):
        curriculum = schedule(total_steps=90, **arm)
        counts = window_counts(curriculum, BATCH)
        assert sum(counts.values()) == 90 * BATCH
        matched = schedule(total_steps=90, matched=counts, pacing="random-matched", match="c")
        assert matched.stages.names == tuple(STAGES)
        # constant shares: random order, the curriculum's whole-run token mix
        np.testing.assert_allclose(matched.mixture(0, {}).weights, matched.mixture(89, {}).weights)
        assert window_counts(matched, BATCH) == counts  # exactly, not only in expectation


def test_target_only_at_equal_target_tokens_runs_as_many_steps_as_it_needs():
    counts = window_counts(schedule(total_steps=90, pacing="fixed", stage_fractions=[0.1, 0.1, 0.15]), BATCH)
    assert counts["chorales"] == round(0.65 * 90) * BATCH
    short = schedule(total_steps=90, matched=counts, pacing="target-only", match="c")
    assert short.total_steps == math.ceil(counts["chorales"] / BATCH)
    assert window_counts(short, BATCH) == {"chorales": short.total_steps * BATCH}


def test_a_pacing_can_set_the_window_length_of_a_step():
    class Warmup(Pacing):  # the seam for sequence-length warm-up: one class, no loop change
        def mixture(self, step, state):
            return Mixture(np.ones(len(self.stages.names)) / len(self.stages.names), seq_len=4 if step < 10 else None)

    warm = Warmup(ArmConfig(name="w", pacing="random"), schedule(pacing="random").stages, context())
    assert warm.mixture(0, {}).seq_len == 4 and warm.mixture(10, {}).seq_len is None


def test_arm_options_are_validated():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="replay is not an option of pacing 'competence'"):
        ArmConfig(name="x", pacing="competence", replay=0.1)
    with pytest.raises(ValidationError, match="stage_steps is not an option of pacing 'plateau'"):
        ArmConfig(name="x", pacing="plateau", stage_steps=[1, 2])
    with pytest.raises(ValidationError, match="sum to"):
        ArmConfig(name="x", pacing="fixed", stage_fractions=[0.6, 0.6])
    with pytest.raises(ValidationError, match="match: required key is missing"):
        ArmConfig(name="x", pacing="random-matched")
    with pytest.raises(ValidationError, match="takes its stages from the arm it matches"):
        ArmConfig(name="x", pacing="random-matched", match="y", stages=["scales"])
    with pytest.raises(ValidationError, match="lr values must be distinct"):
        ArmConfig(name="x", pacing="random", lr=[1e-3, 1e-3])
    arm = ArmConfig(name="x", pacing="fixed", replay=0.1, stage_fractions=[0.5])
    dumped = arm.model_dump(mode="json")
    assert dumped["replay"] == 0.1 and "options" not in dumped  # flat, as in the file
    assert ArmConfig.model_validate(dumped) == arm
