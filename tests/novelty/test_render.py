"""MIDI -> audio: length, loudness, silence, determinism, scheduling, errors."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
import soundfile
from symusic import ControlChange, Note, Score, Tempo, Track

from curricmusic.common.errors import UserError
from curricmusic.music.notes import make_notes, notes_to_score
from curricmusic.novelty.render import (
    PEAK,
    TAIL_S,
    default_soundfont,
    render,
    renderer_spec,
    write_wav,
)

SR = 48000


def c_major_scale() -> Score:
    """Eight quarter notes at 120 qpm: 4.0 s of notes."""
    return notes_to_score(make_notes(range(8), [1.0] * 8, [60, 62, 64, 65, 67, 69, 71, 72]))


def expected_length(end_s: float, sample_rate: int = SR) -> int:
    return int(np.ceil((end_s + TAIL_S) * sample_rate))


@pytest.mark.parametrize("renderer", ["soundfont", "sine"])
def test_scale_renders_loud_enough_at_the_right_length(renderer):
    audio = render(c_major_scale(), renderer=renderer)
    samples = audio.samples
    assert audio.sample_rate == SR
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.shape[0] == expected_length(4.0)
    assert np.isfinite(samples).all()
    assert np.sqrt(np.mean(samples**2)) > 0.02
    assert np.max(np.abs(samples)) <= 1.0
    assert np.max(np.abs(samples)) == pytest.approx(PEAK, abs=1e-4)
    # The release tail is kept: the last second is not silent right after the last note-off.
    assert (
        np.max(np.abs(samples[expected_length(4.0) - SR : expected_length(4.0) - SR + 2400])) > 1e-3
    )


@pytest.mark.parametrize("renderer", ["soundfont", "sine"])
def test_empty_midi_renders_silence(renderer):
    audio = render(Score(480), renderer=renderer)
    assert audio.samples.shape[0] == expected_length(0.0)
    assert np.isfinite(audio.samples).all()
    assert not np.any(audio.samples)


@pytest.mark.parametrize("renderer", ["soundfont", "sine"])
def test_render_is_deterministic(renderer):
    first = render(c_major_scale(), renderer=renderer)
    second = render(c_major_scale(), renderer=renderer)
    assert np.array_equal(first.samples, second.samples)


def test_path_bytes_and_score_render_the_same(tmp_path):
    score = c_major_scale()
    path = tmp_path / "scale.mid"
    score.dump_midi(str(path))
    from_score = render(Score.from_midi(path.read_bytes())).samples
    assert np.array_equal(render(path).samples, from_score)
    assert np.array_equal(render(str(path)).samples, from_score)
    assert np.array_equal(render(path.read_bytes()).samples, from_score)


def test_notes_start_at_their_sample():
    """A note at 1.0 s: silence before it, sound right after it."""
    score = notes_to_score(make_notes([2.0], [1.0], [69]))  # 120 qpm: onset 1.0 s
    samples = render(score).samples
    assert np.max(np.abs(samples[: SR - 1])) == 0.0
    assert np.max(np.abs(samples[SR : SR + 4800])) > 0.1


def test_sample_rate_is_a_parameter():
    audio = render(c_major_scale(), sample_rate=22050)
    assert audio.sample_rate == 22050
    assert audio.samples.shape[0] == expected_length(4.0, 22050)
    assert audio.renderer["sample_rate"] == 22050


def test_sustain_pedal_extends_notes():
    score = Score(480)
    score.tempos.append(Tempo(0, qpm=120))
    track = Track(name="piano", program=0, is_drum=False)
    track.notes.append(Note(0, 480, 60, 90))  # 0.5 s
    track.controls.append(ControlChange(0, 64, 127))
    track.controls.append(ControlChange(1920, 64, 0))  # pedal up at 2.0 s
    score.tracks.append(track)
    reloaded = Score.from_midi(score.dumps_midi())  # symusic derives pedals when parsing
    audio = render(reloaded)
    assert audio.samples.shape[0] == expected_length(2.0)
    assert np.max(np.abs(audio.samples[int(1.5 * SR) : int(1.6 * SR)])) > 1e-3


def test_drums_and_several_programs_render():
    score = c_major_scale()
    drums = Track(name="drums", program=0, is_drum=True)
    strings = Track(name="strings", program=48, is_drum=False)
    for i in range(8):
        drums.notes.append(Note(i * 480, 240, 36 if i % 2 == 0 else 38, 100))
        strings.notes.append(Note(i * 480, 480, 48, 70))
    score.tracks.append(drums)
    score.tracks.append(strings)
    audio = render(score)
    assert np.sqrt(np.mean(audio.samples**2)) > 0.02
    assert not np.array_equal(audio.samples, render(c_major_scale()).samples)


def test_renderer_spec_identifies_the_soundfont():
    spec = renderer_spec()
    path = default_soundfont()
    assert spec["name"] == "soundfont"
    assert spec["soundfont"] == str(path)
    assert spec["soundfont_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert spec["sample_rate"] == SR
    assert render(c_major_scale()).renderer == spec
    assert renderer_spec("sine", sample_rate=22050) == {
        "name": "sine",
        "version": 1,
        "sample_rate": 22050,
    }


def test_write_wav_is_pcm16_and_atomic(tmp_path):
    audio = render(c_major_scale())
    target = write_wav(tmp_path / "scale.wav", audio)
    info = soundfile.info(str(target))
    assert (
        info.samplerate == SR and info.subtype == "PCM_16" and info.frames == audio.samples.shape[0]
    )
    data, _ = soundfile.read(str(target), dtype="float32")
    assert np.max(np.abs(data - audio.samples)) < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["scale.wav"]


def test_missing_soundfont_names_the_path(tmp_path):
    missing = tmp_path / "nope.sf2"
    with pytest.raises(UserError, match="nope.sf2"):
        render(c_major_scale(), soundfont=missing)


def test_unknown_renderer_and_corrupt_midi_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown renderer"):
        render(c_major_scale(), renderer="fluidsynth")
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd not really")
    with pytest.raises(UserError, match="bad.mid"):
        render(bad)
    with pytest.raises(UserError, match="not found"):
        render(tmp_path / "missing.mid")


def test_missing_tinysoundfont_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tinysoundfont", None)
    with pytest.raises(UserError, match="pip install --no-deps tinysoundfont"):
        render(c_major_scale())
    assert render(c_major_scale(), renderer="sine").samples.size  # the sine renderer still works


def test_overlong_scores_are_refused_before_rendering(tmp_path):
    with pytest.raises(UserError, match="render limit"):
        render(c_major_scale(), max_seconds=2.0)
    far = tmp_path / "far.mid"
    notes_to_score(make_notes([0.0, 8000.0], [1.0, 1.0], [60, 62])).dump_midi(str(far))  # 4000 s
    with pytest.raises(UserError, match="far.mid"):
        render(far, renderer="sine")
