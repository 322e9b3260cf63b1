"""Listening: piano rolls that show the notes, WAVs beside the samples, players with relative links."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curricmusic.experiment.listening import render_listening
from curricmusic.music.notes import make_notes
from curricmusic.reporting.links import listen_html
from curricmusic.reporting.listening import listening_html
from curricmusic.reporting.pianoroll import piano_roll_png, write_piano_roll
from tests.helpers import melody_midi


def blue(png: bytes) -> np.ndarray:
    """``(H, W)`` bool: the pixels of note bars (the Blues colormap; grid, axes and text are grey)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)  # (H, W, 3)
    return (rgb[..., 2] - rgb[..., 0] > 40) & (rgb[..., 2] > 100)


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def test_the_piano_roll_draws_each_note_at_its_time_length_and_pitch():
    # C4 for quarters [0, 1), nothing in [1, 2), C5 for [2, 4)
    png = piano_roll_png(make_notes([0.0, 2.0], [1.0, 2.0], [60, 72], velocities=[100, 100]), bar=4.0)
    width, height = Image.open(io.BytesIO(png)).size
    assert 300 <= width <= 520 and 80 <= height <= 180  # small: a card beside its audio
    notes = blue(png)
    columns = runs_of(notes.any(axis=0))
    assert len(columns) == 2  # two bars, a gap between
    (a0, a1), (b0, b1) = columns
    first, second, gap = a1 - a0, b1 - b0, b0 - a1
    assert abs(second - 2 * first) <= 3 and abs(gap - first) <= 3  # length in proportion to time
    low_rows = np.flatnonzero(notes[:, a0:a1].any(axis=1))
    high_rows = np.flatnonzero(notes[:, b0:b1].any(axis=1))
    assert high_rows.max() < low_rows.min()  # the octave above is drawn higher
    semitone = low_rows.size / 0.8  # a bar is 0.8 of a semitone high
    assert abs((low_rows.mean() - high_rows.mean()) / semitone - 12) < 1.5  # an octave apart


def test_velocity_shades_and_an_empty_piece_draws_no_note():
    quiet = blue(piano_roll_png(make_notes([0.0], [1.0], [60], velocities=[20])))
    loud = blue(piano_roll_png(make_notes([0.0], [1.0], [60], velocities=[127])))
    assert quiet.sum() > 0 and loud.sum() > 0
    rgb = lambda png: np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)  # noqa: E731
    quiet_rgb = rgb(piano_roll_png(make_notes([0.0], [1.0], [60], velocities=[20])))[quiet]
    loud_rgb = rgb(piano_roll_png(make_notes([0.0], [1.0], [60], velocities=[127])))[loud]
    assert loud_rgb.sum(axis=1).mean() < quiet_rgb.sum(axis=1).mean()  # louder is darker
    assert not blue(piano_roll_png(make_notes([], [], []))).any()


def test_write_piano_roll_reads_the_midi_file(tmp_path):
    midi = tmp_path / "tune.mid"
    midi.write_bytes(melody_midi(3, n_notes=16))
    path = write_piano_roll(midi, tmp_path / "tune.png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    notes = blue(path.read_bytes())
    columns = np.flatnonzero(notes.any(axis=0))
    rows = np.flatnonzero(notes.any(axis=1))
    assert columns.size and rows.size > 10  # a melody spans pitches and time


def samples_folder(root: Path, n: int, broken: int | None = None) -> Path:
    folder = root / "samples"
    folder.mkdir(parents=True)
    rows = []
    for i in range(n):
        name = f"sample_{i:03d}.mid"
        data = b"not midi" if i == broken else melody_midi(i, n_notes=8)
        (folder / name).write_bytes(data)
        rows.append({"file": name})
    (folder / "manifest.json").write_text(json.dumps({"samples": rows}))
    return folder


def test_render_listening_makes_a_wav_and_a_roll_for_the_first_samples_only(tmp_path):
    folder = samples_folder(tmp_path, 4, broken=1)
    kept = b"RIFF already rendered"
    (folder / "sample_000.wav").write_bytes(kept)
    rows = render_listening(folder, n=3, sample_rate=8000)
    assert [r["file"] for r in rows] == ["sample_000.mid", "sample_001.mid", "sample_002.mid"]
    assert (folder / "sample_000.wav").read_bytes() == kept  # the generator's own WAV is kept
    assert rows[0]["wav"] == "sample_000.wav" and rows[0]["png"] == "sample_000.png"
    assert rows[1]["wav"] is None and "error" in rows[1]  # a broken sample does not stop the others
    assert rows[2] == {"file": "sample_002.mid", "wav": "sample_002.wav", "png": "sample_002.png"}
    assert (folder / "sample_002.wav").read_bytes()[:4] == b"RIFF"
    assert not (folder / "sample_003.wav").exists() and not (folder / "sample_003.png").exists()
    assert render_listening(tmp_path / "nothing") == []


def test_players_link_relatively_and_only_to_files_that_exist(tmp_path):
    folder = tmp_path / "runs" / "a b" / "samples"
    folder.mkdir(parents=True)
    midi = folder / "it's #1.mid"
    assert listen_html(midi, tmp_path) == ""  # neither file
    midi.with_suffix(".wav").write_bytes(b"RIFF")
    page = listen_html(midi, tmp_path)
    assert '<audio controls preload="none" src="./runs/a%20b/samples/it%27s%20%231.wav">' in page and "<img" not in page
    midi.with_suffix(".png").write_bytes(b"\x89PNG")
    page = listen_html(midi, folder.parent / "novelty")
    assert 'src="../samples/it%27s%20%231.wav"' in page and 'src="../samples/it%27s%20%231.png"' in page


@pytest.mark.parametrize("with_audio", [True, False])
def test_the_listen_section_lists_each_arms_first_samples(tmp_path, with_audio):
    results = {"arms": {"fixed": {}, "random": {"lr": 1e-3}}, "runs": []}
    for arm in ("fixed", "random"):
        for seed in (0, 1, 2, 3):
            run_dir = f"runs/{arm}-seed{seed}"
            results["runs"].append({"arm": arm, "seed": seed, "status": "done", "run_dir": run_dir, "lr": 1e-3})
            folder = samples_folder(tmp_path / run_dir, 3)
            if with_audio:
                for name in ("sample_000", "sample_001", "sample_002"):
                    (folder / f"{name}.wav").write_bytes(b"RIFF")
                    (folder / f"{name}.png").write_bytes(b"\x89PNG")
    page = listening_html(results, tmp_path, per_seed=2, max_seeds=3)
    if not with_audio:
        assert page == ""
        return
    sources = [part.split('"', 1)[0] for part in page.split('src="')[1:]]
    assert len(sources) == 2 * 2 * 3 * 2  # arms x seeds x samples x (audio, roll)
    assert all((tmp_path / s).is_file() and s.startswith("./runs/") for s in sources)
    assert "seed3" not in page and "sample_002" not in page
    assert "http" not in page
