"""Generation: reproducible seeds, grammar-valid samples, key prior, copy-blocking, clear errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from miditok import TokSequence

from curricmusic.common.errors import UserError
from curricmusic.config import TokenizerSettings
from curricmusic.config.generation import GenerationSettings
from curricmusic.config.run_settings import settings_from
from curricmusic.generation.copy_blocking import index_n_for
from curricmusic.generation.filters import filter_logits, sample_rows
from curricmusic.generation.generate import prompt_ids, sample_tokens
from curricmusic.model.transformer import IGNORE_INDEX, ModelConfig, MusicTransformer
from curricmusic.music.keys import parse_key, scale_pitch_classes
from curricmusic.music.notes import make_notes, notes_to_score, score_notes
from curricmusic.music.tokenizers import build_tokenizer, decode_ids, encode_score
from curricmusic.novelty.copy_index import NGramIndex


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(TokenizerSettings())


@pytest.fixture(scope="module")
def untrained(tokenizer):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=2, max_seq_len=128)
    return MusicTransformer(config).eval()


BOS = np.array([1])


def test_same_seed_same_samples_other_seed_other_samples(untrained, tokenizer):
    settings = GenerationSettings(max_bars=2, max_tokens=80, copy_blocking=False)
    first = sample_tokens(untrained, tokenizer, settings, [11, 12, 13], BOS)
    again = sample_tokens(untrained, tokenizer, settings, [11, 12, 13], BOS)
    other = sample_tokens(untrained, tokenizer, settings, [14, 15, 16], BOS)
    for a, b in zip(first.tokens, again.tokens, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(first.tokens, other.tokens, strict=True))
    # a row depends on its own seed, not on the batch around it
    alone = sample_tokens(untrained, tokenizer, settings, [12], BOS)
    np.testing.assert_array_equal(alone.tokens[0], first.tokens[1])


def test_every_grammar_constrained_sample_of_an_untrained_model_decodes(untrained, tokenizer):
    settings = GenerationSettings(max_bars=6, max_tokens=300, top_p=1.0, copy_blocking=False)
    batch = sample_tokens(untrained, tokenizer, settings, list(range(24)), BOS)
    vocab = {index: token for token, index in tokenizer.vocab.items()}
    for row in batch.tokens:
        body = [vocab[int(t)] for t in row if vocab[int(t)] not in ("EOS_None", "PAD_None")]
        assert tokenizer.tokens_errors(TokSequence(tokens=body)) == 0.0, body[:40]
        score = decode_ids(tokenizer, np.concatenate([BOS, row]))
        assert sum(int(t.startswith("Bar")) for t in body) <= 6
        assert score.note_num() == sum(int(t.startswith("Pitch")) for t in body)
    # without the grammar the same untrained model writes broken token sequences
    free = sample_tokens(untrained, tokenizer, settings.model_copy(update={"grammar": False}), list(range(8)), BOS)
    errors = [tokenizer.tokens_errors(TokSequence(tokens=[vocab[int(t)] for t in row])) for row in free.tokens]
    assert max(errors) > 0.1


def test_key_prior_keeps_every_pitch_in_key(untrained, tokenizer):
    settings = GenerationSettings(max_bars=4, max_tokens=200, key="Eb major", chromatic_allowance=0.0, copy_blocking=False)
    batch = sample_tokens(untrained, tokenizer, settings, list(range(8)), BOS)
    scale = set(scale_pitch_classes(parse_key("Eb major"), "natural"))
    pitches = np.concatenate([score_notes(decode_ids(tokenizer, np.concatenate([BOS, r])))["pitch"] for r in batch.tokens])
    assert pitches.size > 20
    assert {int(p) % 12 for p in pitches} <= scale


def memorizing_model(tokenizer, pieces, max_steps=400):
    """A tiny model trained until it reproduces ``pieces`` almost exactly."""
    torch.manual_seed(0)
    seqs = [encode_score(tokenizer, notes_to_score(p)).astype(np.int64) for p in pieces]
    length = max(len(s) for s in seqs)
    x = torch.zeros((len(seqs), length), dtype=torch.long)
    y = torch.full_like(x, IGNORE_INDEX)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.from_numpy(s)
        y[i, : len(s) - 1] = torch.from_numpy(s[1:])
    config = ModelConfig(vocab_size=len(tokenizer), d_model=64, n_layers=2, n_heads=2, max_seq_len=length + 8)
    model = MusicTransformer(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(max_steps):
        _, loss = model(x, y)
        if loss.item() < 0.05:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    return model.eval()


def walk(seed: int, n: int = 36) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pitches = 60 + np.cumsum(rng.choice([-4, -3, -2, -1, 1, 2, 3, 4, 5], size=n)) % 24
    durations = rng.choice([0.5, 1.0], size=n)
    return make_notes(np.concatenate([[0.0], np.cumsum(durations)[:-1]]), durations, pitches)


def test_copy_blocking_bounds_the_longest_copied_span(tokenizer):
    corpus = [walk(1, 32)]
    model = memorizing_model(tokenizer, corpus)
    limit = 8
    index = NGramIndex.build(corpus, ["a"], n=(index_n_for(limit),))
    base = GenerationSettings(max_bars=40, max_tokens=400, temperature=0.7, max_copy_notes=limit)
    seeds = list(range(6))

    def spans(batch):
        return [index.longest_copied_span(score_notes(decode_ids(tokenizer, np.concatenate([BOS, r])))).notes for r in batch.tokens]

    free = spans(sample_tokens(model, tokenizer, base.model_copy(update={"copy_blocking": False}), seeds, BOS))
    guarded_batch = sample_tokens(model, tokenizer, base, seeds, BOS, index)
    guarded = spans(guarded_batch)
    assert max(free) >= 3 * limit, free  # the memorizing model copies the piece
    assert max(guarded) <= limit, guarded
    assert guarded_batch.copy_blocked.sum() > 0


def test_filters_and_sampler():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)[0, 2:]).all()
    kept = torch.isfinite(filter_logits(logits, top_p=0.8)[0]).tolist()
    assert kept == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    kept = torch.isfinite(filter_logits(logits, min_p=0.25)[0]).tolist()
    assert kept == [True, True, True, False]  # p >= 0.125
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.75]]).log()
    picks = [int(sample_rows(probs, np.array([u]))[0]) for u in (0.0, 0.2, 0.3, 0.999999)]
    assert picks == [1, 1, 3, 3]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"top_p": 2.0}, "--top-p: Input should be less than or equal to 1"),
        ({"key": "H major"}, "--key: unknown key 'H major'"),
        ({"temperature": 0}, "--temperature: Input should be greater than 0"),
    ],
)
def test_impossible_settings_are_one_line(values, message):
    with pytest.raises(UserError) as caught:
        settings_from(values)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_prompt_must_be_midi(tmp_path, tokenizer):
    text = tmp_path / "prompt.mid"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a MIDI file"):
        prompt_ids(tokenizer, text, 4)
    real = tmp_path / "real.mid"
    real.write_bytes(notes_to_score(walk(3, 40)).dumps_midi())
    ids = prompt_ids(tokenizer, real, 2)
    assert ids[0] == tokenizer.vocab["BOS_None"] and tokenizer.vocab["EOS_None"] not in ids
    assert int(np.sum(ids == tokenizer.vocab["Bar_None"])) == 2


def test_cli_generate_errors_are_one_line(tmp_path):
    missing = subprocess.run(
        [sys.executable, "-m", "curricmusic", "generate", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no such run folder" in missing.stderr and "Traceback" not in missing.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "curricmusic", "generate", str(tmp_path), "--top-p", "2"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--top-p" in bad.stderr and "Traceback" not in bad.stderr


def test_continuing_a_prompt_keeps_the_grammar_across_the_seam(untrained, tokenizer, tmp_path):
    path = tmp_path / "prompt.mid"
    path.write_bytes(notes_to_score(walk(5, 40)).dumps_midi())
    prompt = prompt_ids(tokenizer, path, 2)
    settings = GenerationSettings(max_bars=3, max_tokens=200, copy_blocking=False)
    batch = sample_tokens(untrained, tokenizer, settings, [1, 2, 3], prompt)
    vocab = {index: token for token, index in tokenizer.vocab.items()}
    for row in batch.tokens:
        whole = [vocab[int(t)] for t in np.concatenate([prompt[1:], row]) if vocab[int(t)] not in ("EOS_None", "PAD_None")]
        assert tokenizer.tokens_errors(TokSequence(tokens=whole)) == 0.0
        assert sum(t == "Bar_None" for t in whole) <= 2 + 3  # the prompt's bars, then at most max_bars
