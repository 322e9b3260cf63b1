"""The architecture pages' worked examples do what their pages say.

Each example is a file under docs/examples/ that its page includes verbatim; here each is loaded,
registered the way its page says, and run on a tiny input.
"""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
import pytest
from pydantic import ValidationError

from curricmusic.config import ArmConfig, TokenizerSettings
from curricmusic.config import arms as arm_config
from curricmusic.curriculum import pacing
from curricmusic.curriculum.allocation import allocate
from curricmusic.curriculum.pacing import ScheduleContext, build_schedule
from curricmusic.evaluation import metrics
from curricmusic.music import kinds
from curricmusic.music.grammar import Grammar, count_bars
from curricmusic.music.notes import make_notes, notes_to_score, score_notes
from curricmusic.music.tokenizers import build_tokenizer, decode_ids, encode_score, tokenizer_kind
from curricmusic.novelty import embedders
from tests.docs.handbook import DOCS, load
from tests.music.test_grammar import names, random_walk

EXAMPLES = {
    "add-a-pacing.md": "add_a_pacing.py",
    "add-an-embedder.md": "add_an_embedder.py",
    "add-a-metric.md": "add_a_metric.py",
    "add-a-tokenizer-kind.md": "add_a_tokenizer_kind.py",
}


@pytest.mark.parametrize("page, example", EXAMPLES.items())
def test_each_page_includes_its_example_whole(page, example):
    text = (DOCS / "architecture" / page).read_text(encoding="utf-8")
    assert f'--8<-- "{example}"' in text  # pymdownx.snippets includes the file as it is


# ---- a pacing ------------------------------------------------------------------------------------


@pytest.fixture
def blend(monkeypatch):
    example = load("examples/add_a_pacing.py")
    monkeypatch.setitem(arm_config.ARM_OPTIONS, "blend", example.BlendOptions)
    monkeypatch.setitem(pacing.PACINGS, "blend", example.BlendPacing)
    return example


def test_the_blend_pacing_fades_the_target_in(blend):
    # ArmConfig's pacing names are read from ARM_OPTIONS when the module loads, so an arm of a
    # pacing registered at run time is built without that check; its options are still validated.
    arm = ArmConfig.model_construct(
        name="blend", pacing="blend", curriculum=None, stages=None, lr=None, options=blend.BlendOptions(blend_fraction=0.5)
    )
    context = ScheduleContext(
        stage_names=("scales", "etudes", "chorales"), target="chorales", seed=0, total_steps=100, batch_size=8, seq_len=16
    )
    difficulties = {name: np.arange(n, dtype=float) for name, n in (("scales", 4), ("etudes", 2), ("chorales", 5))}
    tokens = {"scales": np.full(4, 300), "etudes": np.full(2, 300), "chorales": np.full(5, 100)}
    schedule = build_schedule(arm, context, difficulties, tokens)
    assert isinstance(schedule, blend.BlendPacing)
    state = schedule.initial_state()
    at = {step: schedule.mixture(step, state).weights for step in (0, 25, 50, 99)}
    np.testing.assert_allclose(at[0], [2 / 3, 1 / 3, 0.0])  # the others in proportion to their tokens
    np.testing.assert_allclose(at[25], [1 / 3, 1 / 6, 0.5])
    np.testing.assert_allclose(at[50], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(at[99], [0.0, 0.0, 1.0])
    for weights in at.values():
        assert math.isclose(float(weights.sum()), 1.0)
    np.testing.assert_array_equal(schedule.mixture(25, state).weights, at[25])  # a pure function of the step
    assert [schedule.current_stage(s, state) for s in (0, 24, 25)] == [0, 0, 2]
    windows, _ = allocate(at[25], np.zeros(3), 12)  # the sampler's whole windows per stage
    assert windows.tolist() == [4, 2, 6]


def test_the_blend_options_are_checked(blend):
    with pytest.raises(ValidationError):
        blend.BlendOptions(blend_fraction=0.0)
    with pytest.raises(ValidationError):
        blend.BlendOptions(blend_fractoin=0.5)


# ---- an embedder ---------------------------------------------------------------------------------


def test_the_pitch_class_embedder_is_found_by_its_spec(monkeypatch):
    example = load("examples/add_an_embedder.py")
    monkeypatch.setitem(embedders.EMBEDDERS, "pitch-classes", example.PitchClassEmbedder)
    assert embedders.check_spec("pitch-classes") == ("pitch-classes", None)
    embedder = embedders.load_embedder("pitch-classes")
    assert embedder.describe()["kind"] == "no-weights" and embedder.input == "notes"
    triad = make_notes([0, 0, 0], [1, 1, 1], [60, 64, 67])  # C E G, a quarter each
    fifth = make_notes([0, 1], [2, 1], [62, 69])  # D twice as long as A
    rows = embedder.embed_notes([triad, fifth, make_notes([], [], [])])
    assert rows.shape == (3, 12) and rows.dtype == np.float32
    third = 1 / math.sqrt(3)
    np.testing.assert_allclose(rows[0], np.eye(12)[[0, 4, 7]].sum(axis=0) * third, rtol=1e-6)
    np.testing.assert_allclose(rows[1, [2, 9]], [2 / math.sqrt(5), 1 / math.sqrt(5)], rtol=1e-6)
    np.testing.assert_array_equal(rows[2], np.zeros(12))
    with pytest.raises(Exception, match="takes no argument"):
        embedders.load_embedder("pitch-classes:weights.pt")


# ---- a metric ------------------------------------------------------------------------------------


def test_the_stepwise_motion_metric_is_reported_by_compute_all(monkeypatch):
    example = load("examples/add_a_metric.py")
    registry = {**metrics.PIECE_METRICS, "stepwise_motion": lambda notes, ctx: example.stepwise_motion(notes)}
    monkeypatch.setattr(metrics, "PIECE_METRICS", MappingProxyType(registry))
    # top line C D E G E E: moves +2 +2 +3 -3 (the repeated E is no move): two steps of four
    melody = make_notes([0, 1, 2, 3, 4, 5, 0], [1] * 7, [60, 62, 64, 67, 64, 64, 48])
    values = metrics.compute_all(melody)
    assert values["stepwise_motion"] == 0.5
    assert "pitch_range" in values  # the others still there
    assert math.isnan(example.stepwise_motion(make_notes([0, 1], [1, 1], [60, 60])))
    assert math.isnan(example.stepwise_motion(make_notes([], [], [])))


# ---- a tokenizer kind -----------------------------------------------------------------------------


@pytest.fixture
def no_velocity(monkeypatch):
    example = load("examples/add_a_tokenizer_kind.py")
    monkeypatch.setitem(kinds.KINDS, example.REMI_NO_VELOCITY.name, example.REMI_NO_VELOCITY)
    return build_tokenizer(TokenizerSettings(kind="REMINoVelocity"))


def test_a_real_piece_encodes_without_velocities_and_follows_the_grammar(no_velocity):
    tokenizer = no_velocity
    assert tokenizer_kind(tokenizer).name == "REMINoVelocity"
    assert not any(token.startswith("Velocity") for token in tokenizer.vocab)
    notes = make_notes([0, 0, 1, 2, 2.5, 4, 6, 9], [1, 1, 1, 0.5, 1.5, 2, 1, 1], [60, 64, 62, 64, 65, 67, 60, 72])
    ids = encode_score(tokenizer, notes_to_score(notes))
    grammar = Grammar(tokenizer)
    state = grammar.start(1)
    for token in ids[1:]:  # after BOS: every token MidiTok wrote is one the grammar allows
        assert grammar.allowed(state)[0, token], names(tokenizer, [token])
        grammar.advance(state, np.array([token]))
    assert count_bars(tokenizer, ids) == 3
    back = score_notes(decode_ids(tokenizer, ids))
    assert back["pitch"].tolist() == notes["pitch"].tolist()
    assert back["onset"].tolist() == notes["onset"].tolist()


def test_every_sequence_the_new_grammar_allows_decodes(no_velocity):
    grammar = Grammar(no_velocity)
    rows, dead = random_walk(grammar, batch=8, max_tokens=120, max_bars=3)
    assert dead == 0
    bos = no_velocity.vocab["BOS_None"]
    for row in rows:
        body = row[:-1]
        score = decode_ids(no_velocity, [bos, *body])
        assert score.note_num() == sum(name.startswith("Pitch") for name in names(no_velocity, body))
        assert count_bars(no_velocity, [bos, *body]) <= 3
