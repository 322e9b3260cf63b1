"""Tune fingerprints and tune-group splits: a melody in another key or rhythm is the same tune."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curricmusic.config import load_curriculum
from curricmusic.data.prepare import prepare
from curricmusic.data.sources import parts_rule
from curricmusic.data.splits import assign_split, group_keys, group_splits
from curricmusic.data.tunes import (
    jaccard,
    melody_intervals,
    shingles,
    top_line,
    tune_fingerprint,
    tune_groups,
)
from curricmusic.music.notes import make_notes, notes_to_score


def _melody(seed: int, n: int = 24):
    """(onsets, durations, pitches) of a seeded random-walk melody."""
    rng = np.random.default_rng(seed)
    pitches = 60 + np.cumsum(rng.choice([-4, -2, -1, 1, 2, 3, 5], size=n))
    durations = rng.choice([0.5, 1.0], size=n)
    onsets = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    return onsets, durations, pitches


def _harmonised(seed: int, transpose: int = 0, retime: bool = False):
    """The melody with a lower voice under it; optionally transposed and re-timed."""
    onsets, durations, pitches = _melody(seed)
    pitches = pitches + transpose
    if retime:  # slower, and every other note split into two repeated notes
        on, du, pi = [], [], []
        for k, (o, d, p) in enumerate(zip(onsets * 1.5, durations * 1.5, pitches, strict=True)):
            parts = 2 if k % 2 else 1
            for j in range(parts):
                on.append(o + j * d / parts)
                du.append(d / parts)
                pi.append(p)
        onsets, durations, pitches = np.array(on), np.array(du), np.array(pi)
    bass = pitches - 12 - (np.arange(pitches.shape[0]) % 3)
    return make_notes(
        np.concatenate([onsets, onsets]),
        np.concatenate([durations, durations]),
        np.concatenate([pitches, bass]),
    )


def test_top_line_skips_inner_voices_under_a_held_note():
    # soprano 72 held for 2 beats; alto 60 -> 62 -> 64 moves under it; then soprano 71, alto 67
    notes = make_notes([0, 0, 1, 2, 2, 3], [2, 1, 1, 1, 1, 1], [72, 60, 62, 71, 64, 67])
    assert top_line(notes).tolist() == [72, 71, 67]
    assert top_line(make_notes([], [], [])).tolist() == []


def test_intervals_merge_repeats_and_shingles_forget_the_key():
    assert melody_intervals(np.array([60, 60, 62, 62, 62, 59, 64])).tolist() == [2, -3, 5]
    line = np.array([60, 62, 64, 65, 67, 69, 71, 72])
    a = shingles(melody_intervals(line), 5)
    assert a.shape == (3,)  # 7 intervals -> 3 five-grams, all different
    np.testing.assert_array_equal(a, shingles(melody_intervals(line + 7), 5))
    assert shingles(np.array([2, 2]), 5).shape == (1,)  # short line: one shingle of itself
    assert shingles(np.array([], dtype=np.int64), 5).shape == (0,)
    assert not np.array_equal(a, shingles(melody_intervals(line[::-1]), 5))


def test_fingerprint_is_the_same_in_any_key_and_rhythm():
    original = tune_fingerprint(_harmonised(3))
    assert original.shape[0] > 10
    np.testing.assert_array_equal(original, tune_fingerprint(_harmonised(3, transpose=5, retime=True)))
    assert jaccard(original, tune_fingerprint(_harmonised(4))) < 0.1


def test_jaccard_exact_values():
    a = np.array([1, 2, 3, 4], dtype=np.uint64)
    assert jaccard(a, np.array([3, 4, 5], dtype=np.uint64)) == pytest.approx(2 / 5)
    assert jaccard(a, a) == 1.0
    empty = np.zeros(0, dtype=np.uint64)
    assert jaccard(empty, empty) == 0.0


def test_groups_link_at_the_threshold_and_chain():
    f = lambda *v: np.array(v, dtype=np.uint64)  # noqa: E731
    fingerprints = [
        f(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),  # 0
        f(1, 2, 3, 11, 12, 13, 14, 15, 16, 17),  # 1: J(0,1) = 3/17 < 0.3
        f(1, 2, 3, 4, 5, 6, 20, 21, 22, 23, 24, 25),  # 2: J(0,2) = 6/16 = 0.375 >= 0.3
        f(20, 21, 22, 23, 24, 25, 30, 31),  # 3: J(2,3) = 6/14 -> joins 0 through 2
        f(),  # 4: no melody, alone
        f(40, 41, 42),  # 5
        f(40, 41, 42, 43, 44, 45, 46, 47, 48, 49),  # 6: J(5,6) = 3/10 = 0.3 exactly: linked
    ]
    assert tune_groups(fingerprints, 0.3).tolist() == [0, 1, 0, 0, 4, 5, 5]
    assert tune_groups(fingerprints, 0.31).tolist() == [0, 1, 0, 0, 4, 5, 6]
    assert tune_groups([], 0.3).tolist() == []
    with pytest.raises(ValueError, match="threshold"):
        tune_groups(fingerprints, 0.0)


def test_a_group_goes_to_one_split_from_a_uniform_key():
    keys = [f"{i:020x}" for i in range(1, 9)]
    groups = np.array([0, 0, 0, 3, 4, 5, 5, 7])
    named = group_keys(keys, groups)
    assert named[0] == named[1] == named[2] != keys[0]  # merged: hashed again
    assert named[3] == keys[3]  # a group of one keeps its content hash
    splits = group_splits(["s"] * 8, keys, groups, 0.2, 0.2)
    assert splits[0] == splits[1] == splits[2] and splits[5] == splits[6]
    assert splits[0] == assign_split(named[0], 0.2, 0.2)
    # across stages: a group spanning two stages has one split in both
    stages = ["a", "a", "b", "a", "b", "a", "b", "b"]
    spanning = group_splits(stages, keys, groups, 0.2, 0.2)
    assert spanning[0] == spanning[2] and spanning[5] == spanning[6]


def test_a_stage_without_val_gets_its_smallest_own_group():
    keys = ["f" * 20, "e" * 20, "d" * 20, "c" * 20, "b" * 20]  # u >= 0.73: all train by hash
    groups = np.array([0, 0, 2, 3, 4])
    splits = group_splits(["s"] * 5, keys, groups, 0.1, 0.1)
    assert splits[:2] == ["train", "train"]  # the two-piece group stays in training
    assert sorted(splits[2:]) == ["test", "train", "val"]


def test_parts_rule_keeps_four_and_five_part_chorales():
    def midi(parts: int) -> bytes:
        score = notes_to_score(make_notes([0, 1], [1, 1], [60, 62]))
        for _ in range(parts - 1):
            score.tracks.append(score.tracks[0].copy())
        return score.dumps_midi()

    assert parts_rule("bach_chorales", midi(4)) is None
    assert parts_rule("bach_chorales", midi(5)) is None
    assert parts_rule("bach_chorales", midi(2)) == "bach_chorales keeps 4-5 parts (2 parts)"
    assert parts_rule("bach_chorales", midi(8)) == "bach_chorales keeps 4-5 parts (8 parts)"
    assert parts_rule("essen_folksong", midi(1)) is None


def _write(folder: Path, name: str, notes: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(notes_to_score(notes).dumps_midi())


def test_a_transposed_copy_of_a_held_out_tune_never_lands_in_training(tmp_path):
    originals, copies = tmp_path / "originals", tmp_path / "copies"
    for seed in range(40):
        _write(originals, f"t{seed:02d}.mid", _harmonised(seed))
        _write(copies, f"t{seed:02d}.mid", _harmonised(seed, transpose=(seed % 5 + 1) * (-1) ** seed, retime=seed % 2 == 0))
        _write(originals, f"t{seed:02d}-up.mid", _harmonised(seed, transpose=7))
    curriculum = tmp_path / "c.toml"
    curriculum.write_text(
        'name = "tunes"\n[split]\nval = 0.2\ntest = 0.2\n'
        '[[stages]]\nname = "originals"\nsource = "midi_dir"\npath = "originals"\n'
        '[[stages]]\nname = "copies"\nsource = "midi_dir"\npath = "copies"\n'
    )
    data = prepare(load_curriculum(curriculum), tmp_path / "prep", show_progress=False).data
    split_of = {}
    for stage in data.stage_names:
        for split in ("train", "val", "test"):
            for piece in data.pieces(stage, split):
                split_of[piece["id"]] = split
    held_out = 0
    for seed in range(40):
        versions = {split_of[f"originals/t{seed:02d}"], split_of[f"originals/t{seed:02d}-up"], split_of[f"copies/t{seed:02d}"]}
        assert len(versions) == 1, f"tune {seed} is split across {versions}"
        held_out += versions != {"train"}
    assert 5 <= held_out <= 30  # both held-out splits are used, most tunes train
    tunes = data.manifest["tunes"]
    assert tunes["n_groups"] == 40 and tunes["n_pieces_merged"] == 120
    assert all(len(group["pieces"]) == 3 for group in tunes["merged_groups"])
    assert data.pieces("copies", split_of["copies/t00"])[0]["tune_group"] in {g["key"] for g in tunes["merged_groups"]}
