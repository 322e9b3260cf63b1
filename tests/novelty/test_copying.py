"""The transposition- and tempo-invariant copy index: symbols, spans, hit rates, blocking, cache."""

from __future__ import annotations

import numpy as np
import pytest

from curricmusic.music.notes import make_notes
from curricmusic.novelty.copy_index import (
    CHORD,
    MAX_INTERVAL,
    N_RHYTHM,
    START,
    CopiedSpan,
    NGramIndex,
    note_symbols,
    symbol_for,
)


def sym(interval: int, rhythm: int) -> int:
    return (interval + MAX_INTERVAL) * N_RHYTHM + rhythm


def random_walk(seed: int, n: int = 60, chords: bool = True) -> np.ndarray:
    """A seeded random-walk melody in eighths, quarters and dotted quarters, some notes doubled
    by a simultaneous third (so pieces are polyphonic)."""
    rng = np.random.default_rng(seed)
    pitches = 60 + np.cumsum(rng.integers(-4, 5, n))
    durations = rng.choice([0.5, 1.0, 1.5], n)
    onsets = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    notes = make_notes(onsets, durations, pitches)
    if chords:
        pick = rng.random(n) < 0.15
        extra = make_notes(onsets[pick], durations[pick], pitches[pick] + 3)
        notes = np.sort(np.concatenate([notes, extra]), order=("onset", "pitch"))
    return notes


@pytest.fixture(scope="module")
def corpus() -> tuple[list[np.ndarray], list[str]]:
    pieces = [random_walk(seed) for seed in range(20)]
    return pieces, [f"p{i}" for i in range(20)]


@pytest.fixture(scope="module")
def index(corpus) -> NGramIndex:
    return NGramIndex.build(*corpus, n=(4, 8, 16, 6))


# -- symbols --------------------------------------------------------------------------------------


def test_symbols_encode_interval_and_ioi_ratio_exactly():
    # C4 and E4 quarters, G4 + B4 eighths together, then C5, then D5 a dotted quarter later.
    notes = make_notes([0, 1, 2, 2, 2.5, 4], [1, 1, 0.5, 0.5, 1.5, 1], [60, 64, 67, 71, 72, 74])
    assert note_symbols(notes).tolist() == [
        sym(4, START),  # no earlier inter-onset interval to compare with
        sym(3, 36),  # 1 / 1: 0 steps
        sym(4, CHORD),  # same onset
        sym(1, 36 - 12),  # 0.5 / 1 = 2**-1: -12 steps (the chord's 0 is no reference)
        sym(2, 36 + 19),  # 1.5 / 0.5 = 3: 12 log2(3) = 19.02 steps
    ]
    assert note_symbols(notes[:1]).size == 0
    assert note_symbols(notes).dtype == np.int32


def test_symbols_are_transposition_and_tempo_invariant(corpus):
    notes = corpus[0][0]
    moved = notes.copy()
    moved["pitch"] += 7
    moved["onset"] = moved["onset"] * 1.5 + 3.0
    assert np.array_equal(note_symbols(moved), note_symbols(notes))
    assert note_symbols(notes).size == notes.size - 1


def test_symbol_for_matches_note_symbols_over_candidate_pitches():
    notes = make_notes([0, 1, 1.5, 1.5, 3], [1, 0.5, 1, 1, 1], [60, 62, 59, 67, 65])
    symbols = note_symbols(notes)
    # Transition 3 -> 4: previous pitch 67, ioi 1.5, reference ioi 0.5 (the one before the chord).
    candidates = symbol_for(67, np.arange(128), 0.5, 1.5)
    assert candidates.shape == (128,)
    assert candidates[65] == symbols[3]
    assert symbol_for(60, 62, 0.0, 1.0) == symbols[0]  # no reference yet: START


# -- longest copied span --------------------------------------------------------------------------


def test_transposed_retimed_excerpt_is_found_whole(corpus, index):
    pieces, _ = corpus
    excerpt = pieces[7][20:32].copy()
    excerpt["onset"] = (excerpt["onset"] - excerpt["onset"][0]) * 2 + 10.0
    excerpt["duration"] *= 2
    excerpt["pitch"] += 5
    span = index.longest_copied_span(excerpt)
    assert span == CopiedSpan(12, span.bars, "p7", 20, 0)
    end = np.max(excerpt["onset"] + excerpt["duration"])
    assert span.bars == pytest.approx((end - excerpt["onset"][0]) / 4.0)


def test_excerpt_pasted_into_new_material_reports_where(corpus, index):
    pieces, _ = corpus
    head = random_walk(1000, n=10, chords=False)
    excerpt = pieces[3][30:45].copy()
    excerpt["onset"] = (excerpt["onset"] - excerpt["onset"][0]) * 0.5 + head["onset"][-1] + 0.75
    excerpt["pitch"] -= 2
    query = np.sort(np.concatenate([head, excerpt]), order=("onset", "pitch"))
    span = index.longest_copied_span(query, bar_len=3.0)
    assert span == CopiedSpan(15, span.bars, "p3", 30, 10)


def test_unrelated_random_walk_copies_little(index):
    span = index.longest_copied_span(random_walk(12345, n=200))
    assert 2 <= span.notes <= 6


def test_degenerate_queries(index):
    empty = make_notes([], [], [])
    assert index.longest_copied_span(empty) == CopiedSpan(0, 0.0, None, -1, -1)
    one = make_notes([0], [1], [60])
    assert index.longest_copied_span(one) == CopiedSpan(1, 0.0, None, -1, -1)
    report = index.analyze([one])[0]
    assert all(np.isnan(rate) for rate in report.hit_rates.values())


def test_span_never_crosses_pieces():
    index = NGramIndex.from_symbols([[1, 2, 3], [4, 5, 6]], ["a", "b"], n=(2,))
    assert index.longest_match(np.array([1, 2, 3, 4, 5, 6])) == (3, 0, 0, 0)
    assert index.hit_rate(np.array([2, 3, 4, 5]), 2) == pytest.approx(2 / 3)


def test_repetitive_corpus_builds_and_answers():
    up = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81, 83, 84]
    pitches = up + up[-2::-1]  # two octaves up and down: 29 notes
    scale = make_notes(np.arange(29) * 0.25, [0.25] * 29, pitches)
    index = NGramIndex.build([scale] * 1000, [f"s{i}" for i in range(1000)])
    assert index.stats["pieces"] == 1000 and index.stats["symbols"] == 28_000
    query = scale.copy()
    query["pitch"] -= 12
    query["onset"] *= 4
    report = index.analyze([query])[0]
    assert report.span.notes == 29
    assert report.span.piece_id == "s0"
    assert report.hit_rates == {4: 1.0, 8: 1.0, 16: 1.0}
    assert index.longest_copied_span(query[5:20]).notes == 15


# -- matching statistics and hit rates --------------------------------------------------------------


def _naive_matching(query, pieces):
    out = np.zeros(len(query), dtype=int)
    for p in range(len(query)):
        for text in pieces:
            for s in range(len(text)):
                n = 0
                while p + n < len(query) and s + n < len(text) and query[p + n] == text[s + n]:
                    n += 1
                out[p] = max(out[p], n)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_matching_statistics_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    alphabet = int(rng.integers(2, 5))
    pieces = [rng.integers(0, alphabet, int(rng.integers(0, 40))) for _ in range(4)]
    pieces.append(np.tile([0, 1], 20))  # a long periodic piece: deep suffix array levels
    index = NGramIndex.from_symbols(pieces, [str(i) for i in range(5)], n=(1, 3))
    queries = [rng.integers(0, alphabet, int(rng.integers(0, 30))) for _ in range(3)]
    queries.append(np.tile([1, 0], 12))
    for query, (length, where) in zip(queries, index.matching_statistics(queries), strict=True):
        assert length.tolist() == _naive_matching(query, pieces).tolist()
        text = np.concatenate([np.append(p, -1) for p in pieces])
        for p in np.flatnonzero(length):
            assert np.array_equal(text[where[p] : where[p] + length[p]], query[p : p + length[p]])
        for n in (1, 2, 3, 5):
            expected = np.mean(length[: len(query) - n + 1] >= n) if len(query) >= n else np.nan
            assert index.hit_rate(query, n) == pytest.approx(expected, nan_ok=True)


def test_hit_rates_exact_on_tiny_fixture():
    index = NGramIndex.from_symbols([[1, 2, 3, 4, 5], [2, 3, 4, 9]], ["a", "b"], n=(2, 3))
    query = np.array([1, 2, 3, 4, 9, 9])
    # hashed sizes and the suffix-array path agree
    assert index.hit_rate(query, 2) == pytest.approx(4 / 5)
    assert index.hit_rate(query, 3) == pytest.approx(3 / 4)
    assert index.hit_rate(query, 4) == pytest.approx(2 / 3)
    assert index.hit_rate(query, 5) == 0.0
    assert np.isnan(index.hit_rate(query, 7))
    assert index.longest_match(query) == (4, 0, 0, 0)
    assert index.longest_matches([query], loose_start=False)[0] == (4, 0, 0, 0)


# -- copy blocking --------------------------------------------------------------------------------


def test_blocked_true_only_for_the_continuing_candidate():
    index = NGramIndex.from_symbols([[1, 2, 3, 4, 5]], ["a"], n=(3,))
    candidates = np.array([4, 5, 9, 3])
    assert index.blocked([7, 2, 3], candidates, max_span=3).tolist() == [True, False, False, False]
    assert index.blocked([3], candidates, max_span=3).tolist() == [False] * 4  # short context
    with pytest.raises(ValueError, match="max_span 5 not indexed"):
        index.blocked([1, 2, 3, 4], candidates, max_span=5)


def test_blocked_over_all_pitches_with_symbol_for():
    melody = random_walk(77, n=30, chords=False)
    index = NGramIndex.build([melody], ["m"], n=(6,))
    context = melody[:8].copy()
    context["pitch"] += 3
    context_symbols = note_symbols(context)
    ioi = melody["onset"][8] - melody["onset"][7]
    ref = melody["onset"][7] - melody["onset"][6]
    candidates = symbol_for(context["pitch"][-1], np.arange(128), ref, ioi)
    blocked = index.blocked(context_symbols, candidates, max_span=6)
    assert np.flatnonzero(blocked).tolist() == [melody["pitch"][8] + 3]


# -- cache ----------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path, corpus, index):
    path = index.save(tmp_path / "cache" / "ngrams.npz")
    assert sorted(p.name for p in path.parent.iterdir()) == ["ngrams.npz"]  # no temp file left
    loaded = NGramIndex.load(path)
    assert loaded.stats == index.stats and loaded.piece_ids == index.piece_ids
    queries = [random_walk(500 + i, n=40) for i in range(3)] + [corpus[0][5][10:30]]
    assert loaded.analyze(queries) == index.analyze(queries)
    assert (
        loaded.blocked([1] * 5, np.arange(5), 6).tolist()
        == index.blocked([1] * 5, np.arange(5), 6).tolist()
    )


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.arange(3))
    with pytest.raises(ValueError, match="not an n-gram index"):
        NGramIndex.load(path)


def test_build_validates_input():
    with pytest.raises(ValueError, match="piece ids"):
        NGramIndex.from_symbols([[1, 2]], ["a", "b"])
    with pytest.raises(ValueError, match="symbols must lie"):
        NGramIndex.from_symbols([[1, -3]], ["a"])
    with pytest.raises(ValueError, match="n-gram sizes"):
        NGramIndex.from_symbols([[1, 2]], ["a"], n=0)
    assert len(NGramIndex.from_symbols([], [])) == 0


def test_scalar_symbol_matches_the_vectorised_one():
    from curricmusic.novelty.copy_index import symbol_for, symbol_of

    rng = np.random.default_rng(7)
    prev_pitch = rng.integers(0, 128, 2000)
    pitch = rng.integers(0, 128, 2000)
    # chords (0), exact ratios (half steps land on rounding ties), no reference (0) and random gaps
    choices = np.array([0.0, 1e-4, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 1 / 3, 1e-3])
    prev_ioi = np.where(rng.random(2000) < 0.5, rng.choice(choices, 2000), rng.random(2000) * 4)
    ioi = np.where(rng.random(2000) < 0.5, rng.choice(choices, 2000), rng.random(2000) * 40)
    vector = symbol_for(prev_pitch, pitch, prev_ioi, ioi)
    scalar = [symbol_of(int(a), int(b), float(c), float(d)) for a, b, c, d in zip(prev_pitch, pitch, prev_ioi, ioi, strict=True)]
    assert vector.tolist() == scalar
