"""The mastery pacing as a pure function of the step and what the run measured: each basics stage
until its criterion holds or its cap is spent, events recorded, then the end phase; and pacings
that describe themselves (no layer tests a pacing's name)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from curricmusic.config import ARM_OPTIONS, ArmConfig
from curricmusic.curriculum.allocation import allocate
from curricmusic.curriculum.pacing import (
    KEY_SHARE,
    PACINGS,
    Pacing,
    ScheduleContext,
    build_schedule,
)
from tests.helpers import REPO

STAGES = ["scales", "hanon", "etudes", "chorales"]
TOKENS = {s: np.array([100 * (i + 1) for i in range(n)]) for s, n in zip(STAGES, (3, 4, 5, 6), strict=True)}
DIFFICULTY = {s: np.linspace(0.1, 0.2, t.shape[0]) + 0.2 * k for k, (s, t) in enumerate(TOKENS.items())}
BATCH, SEQ, STEPS = 8, 8, 100  # 64 tokens a step


def mastery(**options):
    arm = ArmConfig(name="m", pacing="mastery", **options)
    context = ScheduleContext(tuple(STAGES), "chorales", 0, STEPS, BATCH, SEQ)
    return build_schedule(arm, context, DIFFICULTY, TOKENS)


def run(schedule, losses=None, shares=None, every=5):
    """Step the schedule through its budget, evaluating every ``every`` steps: ``losses(step,
    stage)`` and ``shares(step, stage)`` give what the run would have measured."""
    state = schedule.initial_state()
    current = []
    for step in range(schedule.total_steps):
        current.append(schedule.current_stage(step, state))
        done = step + 1
        if done % every == 0:
            val = {s: losses(done, s) if losses else 1.0 for s in STAGES}
            measured = {KEY_SHARE: {s: shares(done, s) if shares else 0.5 for s in STAGES}}
            state = schedule.update(step, state, val, measured)
        else:
            state = schedule.update(step, state)
    return state, current


def test_a_stage_is_left_at_the_first_evaluation_where_its_key_share_reaches_the_threshold():
    s = mastery(criterion="key_share", key_share=0.7, cap_tokens=64 * 40)
    assert s.measured() == {KEY_SHARE: ("scales", "hanon", "etudes")}
    # the key share of a stage grows 0.04 per step spent on it: 0.7 is passed at the evaluation after 20 steps
    starts = {}

    def shares(step, stage):
        return 0.0 if stage not in starts else 0.04 * (step - starts[stage])

    state = s.initial_state()
    starts["scales"] = 0
    for step in range(STEPS):
        done = step + 1
        name = s.stages.names[s.current_stage(step, state)]
        starts.setdefault(name, step)
        measured = {KEY_SHARE: {n: shares(done, n) for n in STAGES}} if done % 5 == 0 else None
        state = s.update(step, state, {n: 1.0 for n in STAGES} if measured else None, measured)
    events = state["events"]
    assert [e["stage"] for e in events] == ["scales", "hanon", "etudes"]
    assert events[0] == {
        "stage": "scales", "criterion": "key_share", "mastered": True, "cap_hit": False, "steps": 20, "end_step": 20,
        "value": pytest.approx(0.8),
    }  # fmt: skip
    assert [e["end_step"] for e in events] == [20, 40, 60]
    assert all(e["mastered"] and not e["cap_hit"] for e in events)
    assert s.in_end_phase(state) and s.current_stage(99, state) == STAGES.index("chorales")


def test_a_stage_whose_criterion_never_holds_ends_at_its_cap_and_says_so():
    s = mastery(criterion="key_share", key_share=0.9, cap_tokens=[64 * 12, 64 * 7, 64 * 3])
    state, current = run(s, shares=lambda step, stage: 0.6)
    assert [(e["stage"], e["mastered"], e["cap_hit"], e["steps"], e["end_step"]) for e in state["events"]] == [
        ("scales", False, True, 12, 12),
        ("hanon", False, True, 7, 19),
        ("etudes", False, True, 3, 22),
    ]
    assert current[:12] == [0] * 12 and current[12:19] == [1] * 7 and current[19:22] == [2] * 3
    assert set(current[22:]) == {3}


def test_plateau_mastery_waits_for_patience_evaluations_without_improvement():
    s = mastery(criterion="plateau", patience=2, min_delta=0.01, cap_fraction=0.32)
    # every stage's loss falls until step 20 of the run, then stays flat
    state, _ = run(s, losses=lambda step, stage: max(1.0, 3.0 - 0.1 * step))
    first = state["events"][0]
    assert first["mastered"] and first["end_step"] == 30  # evaluations at 25 and 30 did not improve on 20's
    assert first["value"] == pytest.approx(1.0)


def test_criteria_per_stage_and_end_phases():
    s = mastery(criterion=["key_share", "plateau", "plateau"], key_share=0.55, cap_tokens=64 * 10, replay=0.2)
    assert s.measured() == {KEY_SHARE: ("scales",)}
    state, current = run(s)  # key share 0.5 < 0.55, flat losses: plateau after 3 evaluations, caps at 10 steps
    assert [e["mastered"] for e in state["events"]] == [False, False, False]
    end = s.mixture(99, state).weights
    assert end[3] == pytest.approx(0.8) and end[:3].sum() == pytest.approx(0.2)  # target with replay
    pool = mastery(end="pool", cap_tokens=64 * 10)
    state, _ = run(pool)
    sizes = pool.stages.tokens
    assert np.allclose(pool.mixture(99, state).weights, sizes / sizes.sum())


def test_the_matched_end_draws_the_whole_run_shares_of_the_same_boundaries_ending_on_the_target():
    target = mastery(criterion="key_share", key_share=0.9, cap_tokens=[64 * 12, 64 * 7, 64 * 3], replay=0.1)
    matched = mastery(criterion="key_share", key_share=0.9, cap_tokens=[64 * 12, 64 * 7, 64 * 3], replay=0.1, end="matched")
    counts = np.zeros(4, dtype=np.int64)
    state, debt = target.initial_state(), np.zeros(4)
    for step in range(STEPS):  # what random-matched to the end = "target" arm would take
        windows, debt = allocate(target.mixture(step, state).weights, debt, BATCH)
        counts += windows
        state = target.update(step, state, None)
    state, _ = run(matched, shares=lambda step, stage: 0.6)
    assert np.allclose(matched.mixture(99, state).weights, counts / counts.sum())
    assert np.allclose(state["end_weights"], counts / counts.sum())


def test_the_state_is_plain_and_updates_never_change_their_input():
    s = mastery(criterion="key_share", key_share=0.5, cap_tokens=64 * 10)
    state = s.initial_state()
    frozen = repr(state)
    new = s.update(4, state, {n: 1.0 for n in STAGES}, {KEY_SHARE: {n: 0.6 for n in STAGES}})
    assert repr(state) == frozen and new["stage"] == 1
    assert s.record(new)["events"][0]["stage"] == "scales"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"criterion": ["key_share", "plateau"]}, "criterion: 2 values for 3 basics stage"),
        ({"cap_tokens": [100, 100]}, "cap_tokens: 2 values for 3 basics stage"),
        ({"cap_fraction": 0.4}, "the caps add up to"),
        ({"key_share": 1.5}, "key_share must be in"),
    ],
)
def test_bad_mastery_options_are_one_line(tmp_path, options, message):
    from curricmusic.common.errors import UserError
    from curricmusic.config import load_experiment
    from tests.helpers import MINIMAL_EXPERIMENT

    extra = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in options.items())
    path = tmp_path / "e.toml"
    path.write_text(MINIMAL_EXPERIMENT + f'[[arms]]\nname = "m"\npacing = "mastery"\n{extra}\n')
    with pytest.raises(UserError, match=re.escape(message)):
        load_experiment(path)


def test_an_arm_may_match_an_adaptive_arm_listed_before_it_with_one_learning_rate(tmp_path):
    from curricmusic.common.errors import UserError
    from curricmusic.config import load_experiment
    from tests.helpers import MINIMAL_EXPERIMENT

    mastery_arm = '[[arms]]\nname = "m"\npacing = "mastery"\n'
    matched = '[[arms]]\nname = "rm"\npacing = "random-matched"\nmatch = "m"\n'
    path = tmp_path / "e.toml"
    path.write_text(MINIMAL_EXPERIMENT + mastery_arm + matched)
    assert load_experiment(path).config.arm("m").options.adaptive
    path.write_text(MINIMAL_EXPERIMENT + matched + mastery_arm)
    with pytest.raises(UserError, match="learns its stage boundaries while it trains, so its run must come first"):
        load_experiment(path)
    path.write_text(MINIMAL_EXPERIMENT + mastery_arm + "lr = [1e-3, 3e-3]\n" + matched)
    with pytest.raises(UserError, match="sweeps learning rates"):
        load_experiment(path)


def test_every_registered_pacing_has_one_behaviour_and_traits():
    assert set(PACINGS) == set(ARM_OPTIONS)
    for name, model in ARM_OPTIONS.items():
        assert PACINGS[name].options_model is model and issubclass(PACINGS[name], Pacing)
        assert set(model.traits()) == {"stages_from", "adaptive", "matchable", "baseline", "order_control", "target_only"}
    assert {n for n, m in ARM_OPTIONS.items() if m.adaptive} == {"plateau", "mastery"}
    assert {n for n, m in ARM_OPTIONS.items() if m.baseline} == {"random", "random-matched"}


def test_no_layer_asks_for_a_pacing_by_its_name():
    """Pacings describe themselves: outside the registry, code reads their traits, never
    compares an arm's pacing with a name."""
    pattern = re.compile(r"""\.pacing\s*(==|!=|\bin\b)|\.pacing\.startswith|\["pacing"\]\s*(==|!=)|\["pacing"\]\.startswith""")
    offenders = []
    for path in sorted((REPO / "src" / "curricmusic").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    assert math.isclose(sum(1 for _ in ARM_OPTIONS), len(PACINGS))
