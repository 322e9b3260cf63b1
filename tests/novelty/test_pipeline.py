"""`curricmusic novelty` end to end: copies are flagged with their source, new music is not,
corrupt files are skipped, scores are deterministic, C_T separates copies from held-out music."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from curricmusic.config import NoveltySection, curriculum_from_midi_dir
from curricmusic.data.prepare import prepare
from curricmusic.generation.rerank import pick
from curricmusic.music.notes import make_notes, notes_to_score
from curricmusic.novelty.pipeline import score_novelty


def walk(seed: int, n: int = 64, steps=(-3, -2, -1, 1, 2, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pitches = 55 + np.cumsum(rng.choice(steps, size=n)) % 30
    durations = rng.choice([0.5, 1.0, 1.5], size=n)
    return make_notes(np.concatenate([[0.0], np.cumsum(durations)[:-1]]), durations, pitches)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("novelty")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(40):
        (corpus / f"tune{i:02d}.mid").write_bytes(notes_to_score(walk(i)).dumps_midi())
    data = prepare(curriculum_from_midi_dir(corpus), root / "prep", show_progress=False).data
    return root, data


def samples_folder(root, data):
    """A transposed, re-timed excerpt of a training piece; a new melody; a corrupt file."""
    stage = data.stage_names[0]
    source = data.pieces(stage, "train")[3]
    notes = data.piece_notes(stage, "train")[3][10:50].copy()
    notes["pitch"] += 5
    notes["onset"] = (notes["onset"] - notes["onset"][0]) * 2.0
    notes["duration"] *= 2.0
    folder = root / "samples"
    folder.mkdir(exist_ok=True)
    (folder / "copy.mid").write_bytes(notes_to_score(notes).dumps_midi())
    (folder / "fresh.mid").write_bytes(notes_to_score(walk(999, steps=(-5, -4, 4, 5, 7))).dumps_midi())
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    return folder, source


def test_copies_are_flagged_with_their_source_and_new_music_is_not(prepared):
    root, data = prepared
    folder, source = samples_folder(root, data)
    settings = NoveltySection(embedder="symbolic", max_copied_bars=4.0)
    report = score_novelty(folder, data.root, root / "out", settings, show_progress=False)
    rows = {row["file"]: row for row in report["samples"]}
    assert set(rows) == {"copy.mid", "fresh.mid"}
    copy, fresh = rows["copy.mid"], rows["fresh.mid"]
    assert copy["flagged"] and copy["copied_span"]["piece_id"] == source["id"]
    assert copy["copied_span"]["notes"] == 40 and copy["copied_span"]["bars"] >= 4.0
    assert not fresh["flagged"] and fresh["copied_span"]["notes"] < 8
    assert [s["path"].endswith("broken.mid") for s in report["skipped"]] == [True]
    assert report["summary"]["n"] == 2 and report["summary"]["copy_rate"] == 0.5
    assert report["embedder"]["spec"] == "symbolic"
    page = (root / "out" / "novelty.html").read_text()
    assert "copy.mid" in page and source["id"] in page and "broken.mid" in page


def test_scores_are_deterministic(prepared, tmp_path):
    root, data = prepared
    folder, _ = samples_folder(root, data)
    settings = NoveltySection(embedder="audio-features")
    first = score_novelty(folder, data.root, tmp_path / "a", settings, show_progress=False)
    second = score_novelty(folder, data.root, tmp_path / "b", settings, show_progress=False)
    assert first["samples"] == second["samples"] and first["summary"] == second["summary"]


def test_an_identical_copy_has_cosine_one_and_distance_ratio_zero(prepared, tmp_path):
    root, data = prepared
    stage = data.stage_names[0]
    piece = data.pieces(stage, "train")[5]
    folder = tmp_path / "same"
    folder.mkdir()
    shutil.copyfile(data.piece_path(piece), folder / "same.mid")
    report = score_novelty(folder, data.root, tmp_path / "out", NoveltySection(embedder="audio-features"), show_progress=False)
    row = report["samples"][0]
    assert row["nearest"]["id"] == piece["id"]
    assert row["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert row["rho"] == pytest.approx(0.0, abs=1e-3) and row["flagged"] and row["penalty"] == pytest.approx(1.0, abs=1e-3)


def test_data_copying_statistic_is_negative_for_copies_and_near_zero_for_held_out(prepared, tmp_path):
    root, data = prepared
    stage = data.stage_names[0]
    copies, heldout = tmp_path / "copies", tmp_path / "heldout"
    copies.mkdir(), heldout.mkdir()
    for i, piece in enumerate(data.pieces(stage, "train")[:12]):
        shutil.copyfile(data.piece_path(piece), copies / f"c{i}.mid")
    for i in range(12):  # new pieces from the training distribution, never seen
        (heldout / f"h{i}.mid").write_bytes(notes_to_score(walk(1000 + i)).dumps_midi())
    settings = NoveltySection(embedder="symbolic")
    copied = score_novelty(copies, data.root, tmp_path / "o1", settings, show_progress=False)["summary"]
    fresh = score_novelty(heldout, data.root, tmp_path / "o2", settings, show_progress=False)["summary"]
    assert copied["data_copying_C_T"] < -3
    assert abs(fresh["data_copying_C_T"]) < 2
    assert copied["copy_rate"] == 1.0 and fresh["copy_rate"] <= 0.25


def test_reranking_never_keeps_a_flagged_candidate_while_an_unflagged_one_exists():
    rng = np.random.default_rng(0)
    for _ in range(500):
        k = int(rng.integers(1, 6))
        logprob = list(rng.normal(-2, 1, k))
        penalty = list(rng.random(k))
        flagged = list(rng.random(k) < 0.5)
        weight = float(rng.random() * 3)
        chosen = pick(logprob, penalty, flagged, weight)
        pool = [i for i in range(k) if not flagged[i]] or list(range(k))
        assert chosen in pool  # flagged only when every candidate is flagged
        scores = [logprob[i] - weight * penalty[i] for i in pool]
        assert logprob[chosen] - weight * penalty[chosen] == max(scores)


def test_cli_novelty_and_compare(prepared, tmp_path):
    root, data = prepared
    folder, _ = samples_folder(root, data)
    run = [sys.executable, "-m", "curricmusic"]
    done = subprocess.run([*run, "novelty", str(folder), "--against", str(data.root), "--embedder", "symbolic", "--out", str(tmp_path / "n1")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "1 flagged" in done.stdout
    compared = subprocess.run([*run, "compare", str(tmp_path / "n1"), str(tmp_path / "n1" / "novelty.json"), "--out", str(tmp_path / "cmp")], capture_output=True, text=True)
    assert compared.returncode == 0, compared.stderr
    summary = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert len(summary) == 2 and all(v["copy_rate"] == 0.5 for v in summary.values())
    bad = subprocess.run([*run, "novelty", str(folder), "--against", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "--against needs a run folder" in bad.stderr and "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory):
    """A bank of two styles with very different distance scales: generated scales (held-out scales
    sit very close to training ones) and random-walk tunes."""
    root = tmp_path_factory.mktemp("styles")
    (root / "tunes").mkdir()
    for i in range(40):
        (root / "tunes" / f"tune{i:02d}.mid").write_bytes(notes_to_score(walk(i), qpm=100).dumps_midi())
    (root / "c.toml").write_text(
        'name = "styles"\nkeys = ["C", "G", "a", "d"]\n[split]\nval = 0.2\ntest = 0.2\n'
        '[[stages]]\nname = "scales"\nsource = "generated"\ngenerator = "scales"\noptions = { max_pieces = 24 }\n'
        '[[stages]]\nname = "tunes"\nsource = "midi_dir"\npath = "tunes"\n'
    )
    from curricmusic.config import load_curriculum

    return root, prepare(load_curriculum(root / "c.toml"), root / "prep", show_progress=False).data


def test_fresh_music_is_not_flagged_and_transposed_retimed_copies_are(two_styles):
    root, data = two_styles
    folder = root / "mixed"
    folder.mkdir(exist_ok=True)
    for i in range(5):  # new tunes in the bank's style, and melodies in no style of the bank
        (folder / f"fresh-in-{i}.mid").write_bytes(notes_to_score(walk(5000 + i), qpm=100).dumps_midi())
        (folder / f"fresh-out-{i}.mid").write_bytes(notes_to_score(walk(6000 + i, steps=(-7, -5, 4, 5, 7, 12)), qpm=140).dumps_midi())
    train = data.piece_notes("tunes", "train")
    for i in range(5):  # training tunes, transposed and re-timed
        notes = train[i].copy()
        notes["pitch"] += 4 if i % 2 else -3
        factor = 1.5 if i % 2 else 0.75
        notes["onset"] *= factor
        notes["duration"] *= factor
        (folder / f"copy-{i}.mid").write_bytes(notes_to_score(notes, qpm=80).dumps_midi())
    settings = NoveltySection(embedder="audio-features", max_seconds=20)
    report = score_novelty(folder, data.root, root / "out", settings, show_progress=False)
    flagged = {row["file"]: row for row in report["samples"] if row["flagged"]}
    assert sorted(flagged) == [f"copy-{i}.mid" for i in range(5)]
    assert all("copied" in "; ".join(row["flag_reasons"]) for row in flagged.values())
    calibration = report["calibration"]
    # the audio features place transposed, re-timed copies no closer than held-out music: the
    # distance ratio does not flag, and the report says why
    assert not calibration["rho_flag"] and "cannot tell" in calibration["rho_flag_reason"]
    assert calibration["separation_auc"] < 0.9
    assert set(calibration["rho_scale"]["by_nearest_stage"]) >= {"*"}
    assert calibration["probe"]["copies"]["flagged"] == 1.0
    assert calibration["probe"]["fresh_out_of_style"]["flagged"] == 0.0
    assert report["summary"]["fresh_false_flag_rate"] <= 0.1
    assert "Calibration of the flag" in (root / "out" / "novelty.html").read_text()


def test_stratified_rho_keeps_new_melodies_near_scales_from_looking_like_copies(two_styles):
    # the scales stage holds pieces that sit very close to each other; a pooled median would give
    # every new melody whose nearest neighbour is a scale a tiny rho
    root, data = two_styles
    folder = root / "near-scales"
    folder.mkdir(exist_ok=True)
    for i in range(6):
        (folder / f"m{i}.mid").write_bytes(notes_to_score(walk(7000 + i, n=32, steps=(-2, -1, 1, 2)), qpm=120).dumps_midi())
    report = score_novelty(folder, data.root, root / "out2", NoveltySection(embedder="audio-features", max_seconds=20), show_progress=False)
    assert not any(row["flagged"] for row in report["samples"])
    near_scale = [row["rho"] for row in report["samples"] if row["nearest"]["stage"] == "scales"]
    assert all(rho > calibrated for rho, calibrated in zip(near_scale, [report["calibration"]["rho_threshold"]] * len(near_scale), strict=True))
