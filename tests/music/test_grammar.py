"""The token grammar of every tokenizer kind: what it allows, what it tracks, how it counts bars."""

from __future__ import annotations

import numpy as np
import pytest
from miditok import TokSequence

from curricmusic.common.errors import UserError
from curricmusic.config import TokenizerSettings
from curricmusic.music.grammar import (
    Grammar,
    Kind,
    Tracker,
    count_bars,
    supports_grammar,
    token_onsets,
)
from curricmusic.music.kinds import KINDS
from curricmusic.music.notes import make_notes, notes_to_score, score_notes
from curricmusic.music.tokenizers import build_tokenizer, decode_ids, encode_score

KIND_NAMES = list(KINDS)


@pytest.fixture(scope="module", params=KIND_NAMES)
def tokenizer(request):
    return build_tokenizer(TokenizerSettings(kind=request.param))


def random_walk(grammar: Grammar, batch: int, max_tokens: int, max_bars: int | None, seed: int = 0, start=None):
    """Rows drawn at random among the allowed tokens (EOS rarely, so that limits are met); returns
    (rows, dead ends met)."""
    rng = np.random.default_rng(seed)
    state = start if start is not None else grammar.start(batch)
    rows: list[list[int]] = [[] for _ in range(batch)]
    dead = 0
    for step in range(max_tokens):
        mask = grammar.allowed(state, max_bars, max_tokens - step)
        dead += int((~mask.any(axis=1) & ~state.done).sum())
        scores = np.where(mask, rng.gumbel(size=mask.shape), -np.inf)
        scores[:, grammar.eos] -= 4.0
        tokens = np.where(state.done, grammar.pad, scores.argmax(axis=1))
        grammar.advance(state, tokens)
        for row, token in zip(rows, tokens, strict=True):
            if token != grammar.pad:
                row.append(int(token))
        if state.done.all():
            break
    return rows, dead


def names(tokenizer, ids) -> list[str]:
    vocab = {index: token for token, index in tokenizer.vocab.items()}
    return [vocab[int(i)] for i in ids]


@pytest.mark.parametrize("max_bars", [2, 5])
def test_every_sequence_the_grammar_allows_is_valid_and_decodes(tokenizer, max_bars):
    grammar = Grammar(tokenizer)
    rows, dead = random_walk(grammar, batch=24, max_tokens=240, max_bars=max_bars)
    assert dead == 0  # the grammar never leaves a row with nothing to emit
    bos = tokenizer.vocab["BOS_None"]
    for row in rows:
        assert row[-1] == grammar.eos and len(row) <= 240
        body = row[:-1]
        assert tokenizer.tokens_errors(TokSequence(tokens=names(tokenizer, body))) == 0.0, names(tokenizer, body)[:30]
        score = decode_ids(tokenizer, [bos, *body])
        assert score.note_num() == int(np.sum(grammar.table.kind[body] == Kind.PITCH))
        assert count_bars(tokenizer, [bos, *body]) <= max_bars
    assert max(count_bars(tokenizer, [bos, *row]) for row in rows) == max_bars  # the limit is reached


def test_the_token_budget_is_kept_even_with_notes_open(tokenizer):
    grammar = Grammar(tokenizer)
    for budget in (8, 13, 21):
        rows, dead = random_walk(grammar, batch=16, max_tokens=budget, max_bars=None, seed=budget)
        assert dead == 0
        for row in rows:
            assert len(row) <= budget and row[-1] == grammar.eos
            assert tokenizer.tokens_errors(TokSequence(tokens=names(tokenizer, row[:-1]))) == 0.0


@pytest.mark.parametrize("meter", [(4, 4), (3, 4), (6, 8)])
def test_the_tracker_follows_onsets_and_counts_bars_from_the_kinds_own_tokens(tokenizer, meter):
    notes = make_notes([0, 0, 1, 2.5, 3, 4, 7, 9.5], [1, 2, 1, 0.5, 1, 3, 1, 1], [60, 64, 62, 65, 67, 72, 60, 61])
    ids = encode_score(tokenizer, notes_to_score(notes, qpm=72, time_signature=meter)).astype(np.int64)
    kinds = Tracker(tokenizer).table.kind[ids]
    onsets = token_onsets(tokenizer, ids)[kinds == Kind.PITCH]
    np.testing.assert_allclose(onsets, score_notes(notes_to_score(notes))["onset"])
    kept = meter if KINDS[type(tokenizer).__name__].time_signatures else (4, 4)
    bar = 4 * kept[0] / kept[1]  # quarters per bar
    assert count_bars(tokenizer, ids) == int(9.5 // bar) + 1  # the bar of the last onset
    if KINDS[type(tokenizer).__name__].bar_tokens:
        assert count_bars(tokenizer, ids) == int(np.sum(kinds == Kind.BAR))


def test_a_prompts_meter_and_tempo_hold(tokenizer):
    kind = KINDS[type(tokenizer).__name__]
    if not kind.time_signatures:
        pytest.skip(f"{kind.name} writes no time signatures")
    notes = make_notes(np.arange(12) * 1.0, [1.0] * 12, 60 + np.arange(12))
    prompt = encode_score(tokenizer, notes_to_score(notes, qpm=72, time_signature=(3, 4)))[:-1].astype(np.int64)
    grammar = Grammar(tokenizer)
    state = grammar.replay(prompt, batch=16)
    rows, dead = random_walk(grammar, batch=16, max_tokens=300, max_bars=count_bars(tokenizer, prompt) + 4, start=state)
    assert dead == 0
    for row in rows:
        written = names(tokenizer, row)
        assert not any(t.startswith("Tempo") for t in written)  # the prompt's tempo holds
        if kind.bar_tokens:  # REMI repeats the time signature after each Bar: always the prompt's
            assert {t for t in written if t.startswith("TimeSig")} <= {"TimeSig_3/4"}
        else:
            assert not any(t.startswith("TimeSig") for t in written)
        score = decode_ids(tokenizer, np.concatenate([prompt, row]))
        assert [(ts.numerator, ts.denominator) for ts in score.time_signatures] == [(3, 4)]
        assert [round(t.qpm) for t in score.tempos] == [72]


def test_positions_stay_inside_the_bar_of_the_time_signature():
    tokenizer = build_tokenizer(TokenizerSettings(kind="REMI"))
    grammar = Grammar(tokenizer)
    vocab = tokenizer.vocab
    state = grammar.start(2)
    grammar.advance(state, np.array([vocab["Bar_None"]] * 2))
    grammar.advance(state, np.array([vocab["TimeSig_3/4"], vocab["TimeSig_6/8"]]))
    mask = grammar.allowed(state)
    positions = {int(t.split("_")[1]): i for t, i in vocab.items() if t.startswith("Position_")}
    assert mask[0, positions[71]] and not mask[0, positions[72]]  # 3 beats of 24 positions
    assert mask[1, positions[143]] and not mask[1, positions[144]]  # 6 eighths of 24 positions
    # the meter, once set, holds: the next bar takes the same time signature
    grammar.advance(state, np.array([positions[24]] * 2))
    grammar.advance(state, np.array([vocab["Pitch_60"]] * 2))
    grammar.advance(state, np.array([vocab["Velocity_79"]] * 2))
    grammar.advance(state, np.array([vocab["Duration_1.0.24"]] * 2))
    grammar.advance(state, np.array([vocab["Bar_None"]] * 2))
    mask = grammar.allowed(state)
    signatures = [t for t, i in vocab.items() if t.startswith("TimeSig") and mask[0, i]]
    assert signatures == ["TimeSig_3/4"]
    np.testing.assert_allclose(grammar.quarters(state), [3.0, 3.0])  # a 6/8 bar is 3 quarters too


def test_midilike_notes_close_after_they_open_and_eos_waits_for_them():
    tokenizer = build_tokenizer(TokenizerSettings(kind="MIDILike"))
    grammar = Grammar(tokenizer)
    vocab = tokenizer.vocab
    state = grammar.start(1)
    for token in ("NoteOn_60", "Velocity_79", "NoteOn_64", "Velocity_79"):
        grammar.advance(state, np.array([vocab[token]]))
    mask = grammar.allowed(state)[0]
    assert not mask[vocab["NoteOff_60"]]  # no zero-length note
    assert not mask[vocab["NoteOn_62"]]  # pitches ascend at one onset
    assert not mask[vocab["EOS_None"]]
    grammar.advance(state, np.array([vocab["TimeShift_1.0.24"]]))
    mask = grammar.allowed(state)[0]
    assert mask[vocab["NoteOff_60"]] and mask[vocab["NoteOff_64"]] and not mask[vocab["NoteOff_62"]]
    assert not mask[vocab["NoteOn_60"]]  # already sounding
    assert not mask[vocab["EOS_None"]]
    for token in ("NoteOff_60", "NoteOff_64"):
        grammar.advance(state, np.array([vocab[token]]))
    assert grammar.allowed(state)[0, vocab["EOS_None"]]
    # with 3 tokens left and one note open, only what closes it in time remains
    grammar.advance(state, np.array([vocab["NoteOn_67"]]))
    grammar.advance(state, np.array([vocab["Velocity_79"]]))
    mask = grammar.allowed(state, tokens_left=3)[0]
    allowed = {t.split("_")[0] for t, i in vocab.items() if mask[i]}
    assert allowed == {"TimeShift"}


def test_time_based_kinds_stop_at_the_bar_line_of_max_bars():
    tokenizer = build_tokenizer(TokenizerSettings(kind="TSD"))
    grammar = Grammar(tokenizer)
    vocab = tokenizer.vocab
    state = grammar.start(1)
    for token in ("Pitch_60", "Velocity_79", "Duration_1.0.24", "TimeShift_3.0.24"):
        grammar.advance(state, np.array([vocab[token]]))
    mask = grammar.allowed(state, max_bars=1)[0]
    assert mask[vocab["TimeShift_0.12.24"]] and mask[vocab["TimeShift_1.0.24"]]  # up to the bar line
    assert not mask[vocab["TimeShift_1.1.24"]]
    grammar.advance(state, np.array([vocab["TimeShift_1.0.24"]]))
    mask = grammar.allowed(state, max_bars=1)[0]
    assert not mask[vocab["Pitch_72"]] and mask[vocab["EOS_None"]]  # no note in bar 2


def test_kinds_the_grammar_does_not_cover_say_why():
    tokenizer = build_tokenizer(TokenizerSettings(kind="TSD", use_rests=True))
    ok, why = supports_grammar(tokenizer)
    assert not ok and "rests" in why
    with pytest.raises(ValueError, match="rests"):
        Grammar(tokenizer)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"kind": "CPWord"}, "unknown tokenizer kind 'CPWord'"),
        ({"kind": "Structured", "use_tempos": True}, "Structured tokenizer has no tempo tokens"),
        ({"kind": "Structured", "use_time_signatures": True}, "Structured tokenizer has no time signatures"),
    ],
)
def test_tokenizer_settings_refuse_what_a_kind_cannot_write(values, fragment):
    from curricmusic.common.frozen import validate

    with pytest.raises(UserError, match=fragment):
        validate(TokenizerSettings, values, "curriculum.toml: tokenizer")


def test_tempos_and_time_signatures_are_on_by_default_where_the_kind_has_them():
    for name, kind in KINDS.items():
        settings = TokenizerSettings(kind=name)
        assert settings.use_tempos == kind.tempos and settings.use_time_signatures == kind.time_signatures
    tokenizer = build_tokenizer(TokenizerSettings())
    assert "Tempo_72.0" in tokenizer.vocab and "Tempo_120.0" in tokenizer.vocab  # every whole qpm
