"""Schedules are pure functions of the step: exact boundaries, monotone competence, plateau advance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curricmusic.config import ArmConfig
from curricmusic.curriculum.pacing import (
    arm_stage_order,
    build_schedule,
    competence,
    fixed_boundaries,
    piece_ranks,
    replay_weights,
    stage_at,
)

STAGES = ["scales", "hanon", "etudes", "chorales"]
# four stages of 3, 4, 5, 6 pieces; piece i of a stage has 100 * (i + 1) tokens
TOKENS = [np.array([100.0 * (i + 1) for i in range(n)]) for n in (3, 4, 5, 6)]
DIFFICULTY = [np.linspace(0.1, 0.2, t.shape[0]) + 0.2 * k for k, t in enumerate(TOKENS)]


def schedule(total_steps=100, **arm):
    config = ArmConfig(name="a", **arm)
    names = arm_stage_order(config, STAGES, "chorales", seed=0)
    index = [STAGES.index(n) for n in names]
    return build_schedule(
        config, names, [DIFFICULTY[i] for i in index], [TOKENS[i] for i in index], "chorales", total_steps, 64, seed=0
    )


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
    ],
)
def test_weights_are_a_distribution_at_every_step(arm):
    s = schedule(**arm)
    state = s.initial_state()
    for step in range(100):
        weights = s.mixture(step, state).weights
        assert weights.shape == (len(s.stages.names),)
        assert np.all(weights >= 0)
        assert math.isclose(weights.sum(), 1.0, abs_tol=1e-12)
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


def test_competence_unlocks_pieces_in_stage_then_difficulty_order():
    s = schedule(total_steps=100, pacing="competence", c0=0.05, competence_fraction=1.0)
    seen_limits = [s.rank_limit(t) for t in range(101)]
    assert seen_limits[0] == 1 and seen_limits[100] == 18  # 3 + 4 + 5 + 6 pieces
    early = s.mixture(0, s.initial_state())
    assert early.weights.tolist() == [1.0, 0.0, 0.0, 0.0]  # only the easiest scale
    # at c = 0.5, nine pieces: scales (3), hanon (4), two etudes, each drawn with probability 1/9
    step = next(t for t in range(101) if s.rank_limit(t) == 9)
    mixture = s.mixture(step, s.initial_state())
    np.testing.assert_allclose(mixture.weights, np.array([3.0, 4.0, 2.0, 0.0]) / 9)
    assert mixture.uniform_pieces and mixture.rank_limit == 9


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
        state = s.update(step, state, {"scales": loss})
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
    sizes = np.array([t.sum() for t in TOKENS])
    np.testing.assert_allclose(random_arm.mixture(0, {}).weights, sizes / sizes.sum())
    target = schedule(pacing="target-only")
    assert target.stages.names == ("chorales",)
    np.testing.assert_allclose(target.mixture(50, {}).weights, [1.0])
    anti = schedule(pacing="fixed", order="reverse")
    assert anti.stages.names == ("chorales", "etudes", "hanon", "scales")
    shuffled = arm_stage_order(ArmConfig(name="s", pacing="fixed", order="shuffled"), STAGES, "chorales", seed=3)
    assert sorted(shuffled) == sorted(STAGES)
    assert shuffled == arm_stage_order(ArmConfig(name="s", pacing="fixed", order="shuffled"), STAGES, "chorales", seed=3)


def test_piece_ranks_orders():
    counts = [np.zeros(2), np.zeros(3)]
    assert [r.tolist() for r in piece_ranks(counts, "curriculum", 0)] == [[0, 1], [2, 3, 4]]
    assert [r.tolist() for r in piece_ranks(counts, "reverse", 0)] == [[4, 3], [2, 1, 0]]
    shuffled = np.concatenate(piece_ranks(counts, "shuffled", 0))
    assert sorted(shuffled.tolist()) == [0, 1, 2, 3, 4]


def test_arm_options_are_validated():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="replay only applies"):
        ArmConfig(name="x", pacing="competence", replay=0.1)
    with pytest.raises(ValidationError, match="only applies to pacing 'fixed'"):
        ArmConfig(name="x", pacing="plateau", stage_steps=[1, 2])
    with pytest.raises(ValidationError, match="sum to"):
        ArmConfig(name="x", pacing="fixed", stage_fractions=[0.6, 0.6])
