"""The preparation pipeline on real files: skips with reasons, stable splits, no leakage, caches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curricmusic.config import curriculum_from_midi_dir, load_curriculum
from curricmusic.data.prepare import assign_split, prepare
from curricmusic.music.tokenizers import encode_score
from tests.helpers import broken_midis, melody_midi


def write_curriculum(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_every_broken_file_is_skipped_with_its_reason(midi_folder, tmp_path):
    config = curriculum_from_midi_dir(midi_folder)
    data = prepare(config, tmp_path / "prep", show_progress=False).data
    skipped = {Path(s["path"]).name: s["reason"] for s in data.manifest["skipped"]}
    for name, (_, fragment) in broken_midis().items():
        assert name in skipped, f"{name} was not skipped"
        assert fragment in skipped[name], f"{name}: {skipped[name]!r} lacks {fragment!r}"
    kept = [p["id"] for split in ("train", "val", "test") for p in data.pieces(config.stages[0].name, split)]
    assert sorted(kept) == sorted(f"midis/{n}" for n in ["tune0", "tune1", "tune2", "tune3", "sub/tune4", "sub/tune5"])
    assert not any("notes.txt" in s["path"] for s in data.manifest["skipped"])  # not a .mid name


def test_splits_come_from_content_not_path(midi_folder, tmp_path):
    first = prepare(curriculum_from_midi_dir(midi_folder), tmp_path / "a", show_progress=False).data
    # the same music under other names and another folder layout
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for i in range(6):
        (renamed / f"zz_{5 - i}.midi").write_bytes(melody_midi(i))
    second = prepare(curriculum_from_midi_dir(renamed), tmp_path / "b", show_progress=False).data

    def split_by_hash(data):
        stage = data.stage_names[0]
        return {p["content_hash"]: split for split in ("train", "val", "test") for p in data.pieces(stage, split)}

    assert split_by_hash(first) == split_by_hash(second)
    for content, split in split_by_hash(first).items():
        assert split in ("train", "val", "test")
        if len(split_by_hash(first)) >= 3:
            assert split == assign_split(content, 0.1, 0.1) or split in ("val", "test")


def test_duplicates_across_stages_are_removed_before_splitting(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for i in range(8):
        (a / f"x{i}.mid").write_bytes(melody_midi(i))
    for i in range(4, 12):  # tunes 4..7 also in a, under another name and with other velocities
        (b / f"y{i}.mid").write_bytes(melody_midi(i))
    curriculum = write_curriculum(
        tmp_path / "c.toml",
        'name = "dups"\n[[stages]]\nname = "a"\nsource = "midi_dir"\npath = "a"\n'
        '[[stages]]\nname = "b"\nsource = "midi_dir"\npath = "b"\n',
    )
    data = prepare(load_curriculum(curriculum), tmp_path / "prep", show_progress=False).data
    duplicates = [s for s in data.manifest["skipped"] if "duplicate" in s["reason"]]
    assert sorted(s["id"] for s in duplicates) == [f"b/y{i}" for i in range(4, 8)]
    assert all(s["reason"] == f"exact duplicate of a/x{s['id'][-1]}" for s in duplicates)
    hashes = {split: set() for split in ("train", "val", "test")}
    for stage in data.stage_names:
        for split in hashes:
            hashes[split] |= {p["content_hash"] for p in data.pieces(stage, split)}
    assert not hashes["train"] & hashes["val"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["val"] & hashes["test"]


def test_token_cache_matches_tokenizer_and_difficulty_order(midi_folder, tmp_path):
    data = prepare(curriculum_from_midi_dir(midi_folder), tmp_path / "prep", show_progress=False).data
    stage = data.stage_names[0]
    for split in ("train", "val", "test"):
        pieces = data.pieces(stage, split)
        offsets = data.offsets(stage, split)
        assert offsets.shape == (len(pieces) + 1,)
        assert offsets[-1] == data.tokens(stage, split).shape[0] == data.n_tokens(stage, split)
        difficulties = [p["difficulty"] for p in pieces]
        assert difficulties == sorted(difficulties)
        notes = data.piece_notes(stage, split)
        for i, piece in enumerate(pieces):
            from symusic import Score

            score = Score(str(data.piece_path(piece)))
            from curricmusic.music.notes import piano_reduction

            expected = encode_score(data.tokenizer, piano_reduction(score))
            np.testing.assert_array_equal(data.piece_tokens(stage, split, i), expected)
            assert notes[i].shape[0] == piece["n_notes"]
    manifest = json.loads((data.root / "manifest.json").read_text())
    assert manifest["tokenizer"]["vocab_size"] == len(data.tokenizer)


def test_valid_cache_is_reused_and_stale_cache_rebuilt(midi_folder, tmp_path):
    config = curriculum_from_midi_dir(midi_folder)
    out = tmp_path / "prep"
    assert prepare(config, out, show_progress=False).reused is False
    assert prepare(config, out, show_progress=False).reused is True
    # another tokenizer: the old cache must not be reused
    other = config.model_copy(update={"tokenizer": config.tokenizer.model_copy(update={"num_velocities": 4})})
    rebuilt = prepare(other, out, show_progress=False)
    assert rebuilt.reused is False
    assert rebuilt.data.manifest["tokenizer"]["settings"]["num_velocities"] == 4
    # a changed source file: rebuilt too
    (midi_folder / "tune0.mid").write_bytes(melody_midi(99))
    assert prepare(other, out, show_progress=False).reused is False


def test_two_workers_give_the_same_folder_as_one(midi_folder, tmp_path):
    config = curriculum_from_midi_dir(midi_folder)
    one = prepare(config, tmp_path / "one", workers=1, show_progress=False).data
    two = prepare(config, tmp_path / "two", workers=2, show_progress=False).data
    stage = one.stage_names[0]
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(one.tokens(stage, split), two.tokens(stage, split))
        assert one.pieces(stage, split) == two.pieces(stage, split)
    assert one.manifest["skipped"] == two.manifest["skipped"]


def test_killed_rebuild_keeps_previous_folder(midi_folder, tmp_path, monkeypatch):
    config = curriculum_from_midi_dir(midi_folder)
    out = tmp_path / "prep"
    prepare(config, out, show_progress=False)
    before = (out / "manifest.json").read_text()

    import curricmusic.data.prepare as prepare_module

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module, "write_json", explode)
    with pytest.raises(KeyboardInterrupt):
        prepare(config, out, show_progress=False, force=True)
    assert (out / "manifest.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if ".build-" in p.name]


def test_folders_with_nothing_usable_are_clear_errors(tmp_path):
    from curricmusic.common.errors import UserError

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no midi here")
    with pytest.raises(UserError, match="no .mid or .midi files"):
        prepare(curriculum_from_midi_dir(empty), tmp_path / "p1", show_progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name, (data, _) in broken_midis().items():
        (broken / name).write_bytes(data)
    with pytest.raises(UserError, match="no usable piece in any stage"):
        prepare(curriculum_from_midi_dir(broken), tmp_path / "p2", show_progress=False)
