"""The compiled decoding step: eager tokens under greedy decoding, reproducible seeds, every
constraint kept (grammar through its table or the additive input, copy-blocking)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from miditok import TokSequence

from curricmusic.config import TokenizerSettings
from curricmusic.config.generation import GenerationSettings
from curricmusic.generation.compiled import AUTO_MIN_STEPS, use_compiled
from curricmusic.generation.copy_blocking import index_n_for
from curricmusic.generation.generate import sample_tokens
from curricmusic.model.compile_check import compile_problem
from curricmusic.model.decode import keys_for
from curricmusic.model.transformer import ModelConfig, MusicTransformer
from curricmusic.music.notes import score_notes
from curricmusic.music.tokenizers import build_tokenizer, decode_ids
from curricmusic.novelty.copy_index import NGramIndex
from tests.generation.test_generate import BOS, memorizing_model, walk

SEEDS = [3, 4]  # every compiled call here has batch 2: one compiled batch size per model


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(TokenizerSettings())


@pytest.fixture(scope="module")
def trained(compile_cache, tokenizer):
    """A model trained to reproduce one piece (peaked distributions, as after training)."""
    if compile_problem() is not None:
        pytest.skip(f"this machine cannot compile: {compile_problem()}")
    corpus = [walk(1, 32)]
    return memorizing_model(tokenizer, corpus), corpus


def test_greedy_decoding_gives_the_eager_tokens_for_256_tokens(trained, tokenizer):
    model, _ = trained
    assert model.config.max_seq_len < 256  # the window is re-encoded on the way, as in eager decoding
    settings = GenerationSettings(top_k=1, min_tokens=256, max_tokens=300, max_bars=10_000, copy_blocking=False)
    eager = sample_tokens(model, tokenizer, settings, SEEDS, BOS)
    compiled = sample_tokens(model, tokenizer, settings, SEEDS, BOS, compiled=True)
    for a, b in zip(eager.tokens, compiled.tokens, strict=True):
        assert len(a) >= 256
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(compiled.mean_logprob, eager.mean_logprob, rtol=0, atol=1e-5)


def test_compiled_sampling_is_reproducible_and_blocks_copies(trained, tokenizer):
    model, corpus = trained
    limit = 8
    index = NGramIndex.build(corpus, ["a"], n=(index_n_for(limit),))
    settings = GenerationSettings(max_bars=40, max_tokens=400, temperature=0.7, max_copy_notes=limit)
    first = sample_tokens(model, tokenizer, settings, SEEDS, BOS, index, compiled=True)
    again = sample_tokens(model, tokenizer, settings, SEEDS, BOS, index, compiled=True)
    for a, b in zip(first.tokens, again.tokens, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.copy_blocked, again.copy_blocked)
    assert first.copy_blocked.sum() > 0  # the memorizing model tried to copy, and was stopped
    spans = [index.longest_copied_span(score_notes(decode_ids(tokenizer, np.concatenate([BOS, r])))).notes for r in first.tokens]
    assert max(spans) <= limit, spans
    unblocked = sample_tokens(model, tokenizer, settings.model_copy(update={"copy_blocking": False}), SEEDS, BOS, compiled=True)
    assert max(index.longest_copied_span(score_notes(decode_ids(tokenizer, np.concatenate([BOS, r])))).notes for r in unblocked.tokens) > limit


def test_a_kind_without_a_grammar_table_is_masked_through_the_additive_input(compile_cache):
    if compile_problem() is not None:
        pytest.skip(f"this machine cannot compile: {compile_problem()}")
    tokenizer = build_tokenizer(TokenizerSettings(kind="MIDILike"))
    torch.manual_seed(0)
    model = MusicTransformer(ModelConfig(vocab_size=len(tokenizer), d_model=32, n_layers=1, n_heads=2, max_seq_len=64)).eval()
    settings = GenerationSettings(max_bars=3, max_tokens=120, top_p=1.0, copy_blocking=False)
    batch = sample_tokens(model, tokenizer, settings, SEEDS, BOS, compiled=True)
    vocab = {index: token for token, index in tokenizer.vocab.items()}
    for row in batch.tokens:
        assert row[-1] == tokenizer.vocab["EOS_None"]  # every note closed, the budget kept
        body = [vocab[int(t)] for t in row[:-1]]
        assert tokenizer.tokens_errors(TokSequence(tokens=body)) == 0.0, body[:40]


def test_attention_widths_and_the_auto_rule():
    assert [keys_for(s, 1024) for s in (0, 255, 256, 511, 512, 1023)] == [256, 256, 512, 512, 1024, 1024]
    assert keys_for(10, 140) == 140  # never past the cache: one width (one graph) for a small cache
    few = GenerationSettings(n=4, max_tokens=2048)
    assert use_compiled(few, 1) == (False, f"auto: at most 2048 steps, fewer than {AUTO_MIN_STEPS}")
    assert use_compiled(few.model_copy(update={"compile": False}), 100)[0] is False
    many = use_compiled(few, -(-AUTO_MIN_STEPS // 2048))
    assert many[0] is (compile_problem() is None)


def test_a_short_last_batch_is_padded_to_the_compiled_width_and_keeps_each_seeds_tokens(trained, tokenizer, monkeypatch):
    from types import SimpleNamespace

    from curricmusic.generation import generate

    model, _ = trained
    run = SimpleNamespace(model=model, tokenizer=tokenizer)
    settings = GenerationSettings(max_bars=8, max_tokens=120, temperature=0.9, batch_size=2, copy_blocking=False)
    seeds = [SEEDS[0], SEEDS[1], 11]  # two batches: the second holds one seed, padded to 2 rows
    widths: list[int] = []

    def counted(*args, **kwargs):
        widths.append(len(args[3]))
        return sample_tokens(*args, **kwargs)

    monkeypatch.setattr(generate, "sample_tokens", counted)
    drawn = generate._draw(run, settings, seeds, BOS, None, lambda _n: None, compiled_width=2)
    monkeypatch.undo()
    assert widths == [2, 2]  # one compiled batch size
    assert drawn.seeds == seeds and len(drawn.tokens) == 3  # the padding row is dropped
    alone = sample_tokens(model, tokenizer, settings, [11, SEEDS[0]], BOS, compiled=True)  # seed 11 in a full batch
    np.testing.assert_array_equal(drawn.tokens[2], alone.tokens[0])  # a row depends on its own seed only
    paired = sample_tokens(model, tokenizer, settings, SEEDS, BOS, compiled=True)
    for got, want in zip(drawn.tokens[:2], paired.tokens, strict=True):
        np.testing.assert_array_equal(got, want)
