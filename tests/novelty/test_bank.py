"""Embedding banks in memory-mapped files: the bfloat16 screen gives the float32 answer, files are
written atomically, torn files are refused, and embed_bank reuses a cached bank."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curricmusic.novelty.bank import open_bank, write_bank
from curricmusic.novelty.embed import EmbeddingCache, embed_bank, embed_midi_files, embedding_key
from curricmusic.novelty.embedders.symbolic import SymbolicEmbedder
from curricmusic.novelty.score import nearest_neighbors
from tests.novelty.test_embed import Counting, midi_folder


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def crowded():
    """Queries, and a bank crowded with near-copies of them (cosines closer than bfloat16 can
    tell apart)."""
    rng = np.random.default_rng(0)
    queries = unit(rng.standard_normal((20, 48)))
    bank = unit(rng.standard_normal((9000, 48)))
    crowd = np.arange(0, 9000, 4)
    bank[crowd] = unit(queries[rng.integers(0, 20, crowd.size)] + 0.02 * bank[crowd])
    return queries, bank


def write(path, bank, block=1000, meta=None):
    with write_bank(path, bank.shape[1], meta) as rows:
        for start in range(0, bank.shape[0], block):
            rows.add(bank[start : start + block])
    return path


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_bank_file_gives_the_float32_brute_force_answer(tmp_path, crowded, precision):
    queries, bank = crowded
    mapped, meta = open_bank(write(tmp_path / "b.bank", bank, meta={"source": "fixture"}))
    assert meta == {"source": "fixture", "dim": 48, "rows": 9000}
    assert len(mapped) == 9000 and not mapped.vectors.flags.writeable
    idx, cos = nearest_neighbors(queries, mapped, 3, block=2048, precision=precision)
    scores = queries.astype(np.float64) @ bank.astype(np.float64).T
    best = np.argsort(-scores, axis=1)[:, :3]
    np.testing.assert_array_equal(idx[:, 0], best[:, 0])  # top-1 identical
    np.testing.assert_allclose(cos, np.take_along_axis(scores, best, 1), atol=1e-6)


def test_screen_holds_bfloat16_bits_of_the_rows(tmp_path, crowded):
    _, bank = crowded
    mapped, _ = open_bank(write(tmp_path / "b.bank", bank, block=777))
    screen = mapped._screen
    assert screen.dtype == np.uint16 and screen.shape == bank.shape and not screen.flags.writeable
    expected = torch.from_numpy(bank).bfloat16().view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(screen, expected)
    assert np.all(mapped._norms >= np.linalg.norm(bank, axis=1))


def test_bank_written_atomically_and_torn_files_refused(tmp_path, crowded):
    _, bank = crowded
    path = tmp_path / "b.bank"
    with pytest.raises(KeyError), write_bank(path, 48) as rows:
        rows.add(bank[:10])
        raise KeyError("stop")
    assert list(tmp_path.iterdir()) == []  # nothing at the path, no temporary left
    data = write(path, bank[:100]).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="incomplete"):
        open_bank(path)
    empty, _ = open_bank(write(tmp_path / "e.bank", bank[:0]))
    assert len(empty) == 0


def test_embed_bank_equals_embed_midi_files_and_is_reused(tmp_path):
    paths = midi_folder(tmp_path)
    embedder = SymbolicEmbedder()
    rows, skipped = embed_midi_files(paths, embedder, progress=False)
    counter = Counting(embedder, "embed_notes")
    directory = EmbeddingCache(embedding_key(embedder, "soundfont", None, None)).directory
    before = set(directory.glob("bank-*"))  # the cache is shared by the whole session: others wrote banks too
    bank, bank_skipped = embed_bank(paths, embedder, progress=False)
    assert bank_skipped == skipped
    np.testing.assert_array_equal(np.asarray(bank.vectors), rows)
    assert counter.calls == 0  # every row came from the per-file cache
    bank_files = sorted(set(directory.glob("bank-*")) - before)
    assert len(bank_files) == 1
    bank_files[0].write_bytes(bank_files[0].read_bytes()[:200])  # torn: written again
    again, again_skipped = embed_bank(paths, embedder, progress=False)
    np.testing.assert_array_equal(np.asarray(again.vectors), rows)
    assert again_skipped == skipped
    fresh, _ = embed_bank(paths, embedder, progress=False, use_cache=False)
    assert counter.calls == 1  # no cache: embedded once, in one batch
    np.testing.assert_allclose(np.asarray(fresh.vectors), rows, atol=1e-6)


def test_embed_bank_reopens_without_reading_files_and_follows_changes(tmp_path, monkeypatch):
    paths = midi_folder(tmp_path)
    embedder = SymbolicEmbedder()
    first, _ = embed_bank(paths, embedder, progress=False)
    from curricmusic.novelty import embed

    def no_reads(path):
        raise AssertionError(f"read {path}")

    monkeypatch.setattr(embed, "_read", no_reads)
    again, _ = embed_bank(paths, embedder, progress=False)  # the cached bank: stat only
    np.testing.assert_array_equal(np.asarray(again.vectors), np.asarray(first.vectors))
    monkeypatch.undo()
    paths[2].write_bytes(paths[4].read_bytes())  # piece1 now holds piece2's music
    changed, _ = embed_bank(paths, embedder, progress=False)
    np.testing.assert_array_equal(np.asarray(changed.vectors)[1], np.asarray(first.vectors)[2])


def test_bank_file_reads_rows_for_rescoring_without_mapping_them(tmp_path, crowded):
    _, bank = crowded
    mapped, _ = open_bank(write(tmp_path / "b.bank", bank))
    indices = np.array([5, 6, 7, 7, 0, 8999, 3, 6])  # runs, repeats, both ends
    np.testing.assert_array_equal(mapped.take(indices), bank[indices])
    assert mapped.take(np.zeros(0, np.int64)).shape == (0, 48)
