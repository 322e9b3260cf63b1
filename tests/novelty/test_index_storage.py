"""How the copy index is stored: the suffix-array order, chunked building, memory-mapped files,
int32 positions, and stale or torn files rebuilt instead of trusted."""

from __future__ import annotations

import numpy as np
import pytest

from curricmusic.novelty import _ngram_store, _suffixarray
from curricmusic.novelty._arrayfile import ArrayWriter, open_array_file
from curricmusic.novelty.copy_index import NGramIndex, note_symbols, training_index
from tests.novelty.test_copying import random_walk


def text_of(pieces) -> np.ndarray:
    """The text: symbol + 1, END after each piece."""
    vals, _ = _ngram_store.assemble_text(pieces, 1 << 15, lambda: None)
    return vals


def naive_suffix_array(pieces) -> list[int]:
    """Suffixes cut after their piece's end, sorted with the end above every symbol; ties (equal
    up to the end) by position."""
    text = np.concatenate([np.append(np.asarray(p) + 1, 1 << 20) for p in pieces]).tolist()
    keys = []
    for i, value in enumerate(text):
        if value == 1 << 20:
            continue
        end = text.index(1 << 20, i)
        keys.append((text[i : end + 1], i))
    return [i for _, i in sorted(keys)]


@pytest.mark.parametrize("seed", range(5))
def test_suffix_array_order_equals_the_definition(seed):
    rng = np.random.default_rng(seed)
    alphabet = int(rng.integers(1, 4))
    pieces = [rng.integers(0, alphabet, int(rng.integers(0, 12))) for _ in range(int(rng.integers(1, 8)))]
    pieces.append(pieces[0].copy())  # a duplicate piece: suffixes tie up to the end
    sa = _suffixarray.build_suffix_array(text_of(pieces))
    assert sa.dtype == np.int32
    assert sa.tolist() == naive_suffix_array(pieces)


def test_many_pieces_use_four_byte_words(monkeypatch):
    """Past 2**24 - 2**16 sentinels the words widen; the order is the same."""
    pieces = [np.array([1, 0]), np.array([1]), np.array([1, 0, 2])] * 3
    monkeypatch.setattr(_suffixarray, "_WORD3", 0)
    vals = text_of(pieces)
    assert _suffixarray._word_text(vals, 4).size == 4 * vals.size
    assert _suffixarray.build_suffix_array(vals).tolist() == naive_suffix_array(pieces)


def test_chunked_build_equals_one_chunk(monkeypatch):
    pieces = [random_walk(seed, n=50) for seed in range(12)]
    ids = [f"p{i}" for i in range(12)]
    whole = NGramIndex.build(pieces, ids, n=(3, 8))
    monkeypatch.setattr(_ngram_store, "_CHUNK", 7)
    monkeypatch.setattr(_suffixarray, "_CHUNK", 5)
    monkeypatch.setattr(_ngram_store, "_BLOCK", 11)
    chunked = NGramIndex.build(pieces, ids, n=(3, 8))
    for name in ("_packed", "_sa", "_starts", "_lengths"):
        assert np.array_equal(getattr(chunked, name), getattr(whole, name)), name
    for mine, theirs in zip(chunked._level0, whole._level0, strict=True):
        assert np.array_equal(mine, theirs)
    # level 0: the sorted windows at the suffix-array rows, one entry per run
    keys, rows = chunked._level0
    level0 = whole._packed[whole._sa]
    assert np.all(level0[1:] >= level0[:-1]) and np.all(keys[1:] > keys[:-1])
    assert np.array_equal(np.repeat(keys, np.diff(rows)), level0)
    # the text is the packed keys' top field
    assert np.array_equal(_ngram_store.text_of(whole._packed), text_of([note_symbols(p) for p in pieces]))
    for n in (3, 8):
        assert np.array_equal(chunked._hashes[n], whole._hashes[n])
        hashes = _ngram_store.ngram_hashes(_ngram_store.text_of(whole._packed), n)
        assert chunked._hashes[n].tolist() == sorted(set(hashes.tolist()))


def test_memory_mapped_load_answers_like_the_build(tmp_path):
    pieces = [random_walk(seed, n=80) for seed in range(15)]
    index = NGramIndex.build(pieces, [f"p{i}" for i in range(15)], n=(4, 8, 16, 6), path=tmp_path / "x.index")
    loaded = NGramIndex.load(tmp_path / "x.index")
    for array in (loaded._packed, loaded._sa, *loaded._level0, loaded._hashes[6]):
        assert not array.flags.writeable  # a read-only map of the file, not a copy
    assert loaded._sa.dtype == np.int32  # int32 positions below 2**31 symbols
    queries = [random_walk(700 + i, n=60) for i in range(4)] + [pieces[3][5:40]]
    assert loaded.analyze(queries) == index.analyze(queries)
    assert loaded.stats == index.stats
    symbols = note_symbols(pieces[2])
    assert loaded.blocked(symbols[:5], np.arange(0, 7000, 13), 6).tolist() == index.blocked(
        symbols[:5], np.arange(0, 7000, 13), 6
    ).tolist()
    copy = tmp_path / "copy.index"
    loaded.save(copy)
    assert copy.read_bytes() == (tmp_path / "x.index").read_bytes()


def test_torn_and_foreign_index_files_are_refused(tmp_path):
    pieces = [random_walk(seed, n=40) for seed in range(5)]
    path = tmp_path / "x.index"
    NGramIndex.build(pieces, list("abcde"), path=path)
    data = path.read_bytes()
    for cut in (0, 10, 64, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not an n-gram index"):
            NGramIndex.load(path)
    np.savez(path, encoding=np.arange(6), text=np.zeros(3, np.int32))  # the format-1 cache
    with pytest.raises(ValueError, match="not an n-gram index"):
        NGramIndex.load(path)


class FakePrepared:
    """What training_index reads from a prepared folder."""

    fingerprint = "fake-fingerprint"
    stage_names = ["a", "b"]

    def __init__(self):
        self.notes = {"a": [random_walk(s, n=50) for s in range(4)], "b": [random_walk(9, n=30)]}
        self.reads = 0

    def pieces(self, stage, split):
        return [{"id": f"{stage}{i}"} for i in range(len(self.notes[stage]))]

    def piece_notes(self, stage, split):
        self.reads += 1
        return self.notes[stage]


def test_training_index_is_cached_and_rebuilt_when_torn_or_old(tmp_path, monkeypatch):
    monkeypatch.setenv("CURRICMUSIC_CACHE", str(tmp_path))
    data = FakePrepared()
    index = training_index(data, (6,), show_progress=False)
    assert index.piece_ids == ["a0", "a1", "a2", "a3", "b0"] and index.ns == (6,)
    query = data.notes["a"][2][10:30]
    expected = index.analyze([query])
    reads = data.reads
    again = training_index(data, (6,), show_progress=False)
    assert data.reads == reads  # served from the cache
    assert again.analyze([query]) == expected
    folder = tmp_path / "ngram"
    assert sorted(p.name for p in folder.iterdir()) == ["fake-fingerprint-6.table", "fake-fingerprint.index"]
    good = {p.name: p.read_bytes() for p in folder.iterdir()}
    for name, damaged in (
        ("fake-fingerprint.index", good["fake-fingerprint.index"][:-20]),  # torn
        ("fake-fingerprint.index", b"PK\x03\x04 an old .npz cache"),  # format 1
        ("fake-fingerprint-6.table", good["fake-fingerprint-6.table"][:100]),  # torn table
    ):
        (folder / name).write_bytes(damaged)
        rebuilt = training_index(data, (6,), show_progress=False)
        assert rebuilt.analyze([query]) == expected
        assert (folder / name).read_bytes() == good[name]


def test_a_table_of_another_index_is_not_trusted(tmp_path):
    small = NGramIndex.build([random_walk(1, n=30)], ["s"], n=())
    big = NGramIndex.build([random_walk(2, n=60)], ["b"], n=())
    small.with_table(5, tmp_path / "t.table")
    before = (tmp_path / "t.table").read_bytes()
    big.with_table(5, tmp_path / "t.table")  # sizes differ: rebuilt for big
    assert (tmp_path / "t.table").read_bytes() != before
    context = note_symbols(random_walk(2, n=60))[:4]
    assert big.blocked(context, note_symbols(random_walk(2, n=60))[4:5], 5).tolist() == [True]


def test_array_file_round_trip_and_streaming(tmp_path):
    path = tmp_path / "f.bin"
    with open(path, "wb") as handle:
        writer = ArrayWriter(handle, "test-kind")
        writer.add("a", np.arange(5, dtype=np.int32))
        writer.begin("b", np.float32, (3,))
        writer.append(np.ones((2, 3)))
        writer.append(np.zeros((1, 3)))
        writer.end()
        writer.add("empty", np.zeros(0, np.uint64))
        writer.finish({"x": [1, "y"]})
    meta, arrays = open_array_file(path, "test-kind")
    assert meta == {"x": [1, "y"]}
    assert arrays["a"].tolist() == [0, 1, 2, 3, 4]
    assert arrays["b"].tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0]]
    assert arrays["empty"].shape == (0,)
    with pytest.raises(ValueError, match="not a other-kind file"):
        open_array_file(path, "other-kind")


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 8, 15, 16, 17])
def test_ngram_hashes_equal_the_polynomial(n):
    rng = np.random.default_rng(n)
    vals = rng.integers(1, 7000, 60).astype(np.uint16)
    vals[[9, 10, 31, 59]] = _suffixarray.END
    expected = []
    for i in range(vals.size - n + 1):
        window = vals[i : i + n].astype(object)
        if any(v == _suffixarray.END for v in window):
            continue
        expected.append(sum(int(v) * int(_ngram_store.HASH_BASE) ** (n - 1 - k) for k, v in enumerate(window)) % 2**64)
    assert _ngram_store.ngram_hashes(vals, n).tolist() == expected
