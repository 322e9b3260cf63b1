"""Musical metrics: hand-computed values on tiny pieces, degenerate input, and MusPy's numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from symusic import Score

from curricmusic.data.difficulty import difficulty_features
from curricmusic.evaluation import metrics as M
from curricmusic.music.keys import ALL_KEYS, KK_MAJOR, KK_MINOR, Key
from curricmusic.music.notes import NOTE_DTYPE, make_notes, notes_to_score, score_notes

EMPTY = np.empty(0, dtype=NOTE_DTYPE)

# At resolution 4 (sixteenth-note steps) the notes cover these steps [start, end):
#   A  onset 0     dur 1    pitch 60   [0, 4)
#   B  onset 0     dur 2    pitch 64   [0, 8)
#   C  onset 0.5   dur 1    pitch 67   [2, 6)
#   D  onset 1     dur 1    pitch 60   [4, 8)    same pitch as A, right after it
#   E  onset 0.75  dur 0.5  pitch 64   [3, 5)    same pitch as B, inside it: counts once
#   F  onset 4     dur 0.5  pitch 72   [16, 18)
# Distinct pitches on per step: 2 2 3 3 3 3 2 2, then 0 x 8, then 1 1; length = 18 steps.
PIECE = make_notes([0, 0, 0.5, 1, 0.75, 4], [1, 2, 1, 1, 0.5, 0.5], [60, 64, 67, 60, 64, 72])

WHOLE_TONES = make_notes(range(5), [1] * 5, [60, 62, 64, 66, 68])  # C D E F# G#


# --- pitch metrics ------------------------------------------------------------------------------


def test_pitch_counts():
    assert M.pitch_range(PIECE) == 12.0  # 72 - 60
    assert M.n_pitches_used(PIECE) == 4.0  # 60 64 67 72
    assert M.n_pitch_classes_used(PIECE) == 3.0  # C E G


def test_pitch_entropies():
    # pitches 60 x2, 64 x2, 67, 72 -> P = 1/3, 1/3, 1/6, 1/6
    # H = 2 * (1/3) log2 3 + 2 * (1/6) log2 6
    assert M.pitch_entropy(PIECE) == pytest.approx(2 / 3 * math.log2(3) + 1 / 3 * math.log2(6))
    # classes C x3 (60 60 72), E x2, G x1 -> P = 1/2, 1/3, 1/6
    # H = 1/2 * 1 + 1/3 log2 3 + 1/6 log2 6
    assert M.pitch_class_entropy(PIECE) == pytest.approx(0.5 + math.log2(3) / 3 + math.log2(6) / 6)


def test_scale_consistency():
    assert M.scale_consistency(PIECE) == 1.0  # C E G lie in C major
    # C D E F# G#: G major holds C D E F# (4 of 5); no diatonic scale holds all five
    assert M.scale_consistency(WHOLE_TONES) == pytest.approx(0.8)


def test_in_key_rate():
    assert M.in_key_rate(WHOLE_TONES, Key(0, "major")) == pytest.approx(3 / 5)  # C D E
    assert M.in_key_rate(WHOLE_TONES, Key(7, "major")) == pytest.approx(4 / 5)  # C D E F#
    assert M.in_key_rate(WHOLE_TONES, Key(9, "minor")) == pytest.approx(3 / 5)  # natural: C D E
    assert M.in_key_rate(WHOLE_TONES, Key(9, "minor"), "harmonic") == pytest.approx(4 / 5)  # + G#
    assert M.in_key_rate(WHOLE_TONES, {0, 2, 4, 6, 8}) == 1.0  # a plain pitch-class set


@pytest.mark.parametrize("key", ALL_KEYS, ids=str)
def test_estimate_key_recovers_profile_shaped_pieces(key):
    # one note per pitch class, its duration the Krumhansl-Kessler weight of that class in `key`:
    # the histogram *is* the key's profile, so its correlation with that key is exactly 1
    profile = KK_MAJOR if key.mode == "major" else KK_MINOR
    pcs = np.arange(12)
    notes = make_notes(pcs * 8.0, profile[(pcs - key.tonic_pc) % 12], 60 + pcs)
    assert M.estimate_key(notes) == (key.tonic_pc, key.mode)


def test_estimate_key_of_plain_music():
    c_major_scale = make_notes(range(8), [1] * 8, [60, 62, 64, 65, 67, 69, 71, 72])
    assert M.estimate_key(c_major_scale) == (0, "major")
    # A minor: tonic triad held long, the rest of the natural minor scale in passing
    a_minor = make_notes(
        [0, 0, 0, 4, 4.5, 5, 5.5, 6, 8, 8, 8],
        [4, 4, 4, 0.5, 0.5, 0.5, 0.5, 2, 4, 4, 4],
        [57, 60, 64, 62, 65, 67, 71, 69, 57, 60, 64],
    )
    assert M.estimate_key(a_minor) == (9, "minor")
    chromatic = make_notes(range(12), [1] * 12, range(60, 72))  # every key equally likely
    assert M.estimate_key(chromatic) == (0, "major")
    with pytest.raises(ValueError, match="without notes"):
        M.estimate_key(EMPTY)


# --- time metrics -------------------------------------------------------------------------------


def test_time_steps_round_half_to_even_like_muspy():
    notes = make_notes([0.125, 0.375, 0.3], [0.25, 0.25, 0.2], [60, 60, 60])
    start, end = M.time_steps(notes, 4)
    # sorted onsets 0.125 0.3 0.375 -> 0.5 1.2 1.5 steps -> 0 1 2 (half to even)
    assert start.tolist() == [0, 1, 2]
    # offsets 0.375 0.5 0.625 -> 1.5 2.0 2.5 steps -> 2 2 2
    assert end.tolist() == [2, 2, 2]


def test_note_density():
    assert M.note_density(PIECE) == pytest.approx(6 / 4.5)  # 6 notes, last offset 4 + 0.5
    assert M.note_density(PIECE) == difficulty_features(PIECE)["note_density"]


def test_polyphony():
    # pitches on per active step: 2 2 3 3 3 3 2 2 1 1 -> 22 / 10
    assert M.polyphony(PIECE, resolution=4) == pytest.approx(2.2)


def test_polyphony_rate():
    # MusPy counts steps with MORE than `threshold` (2) pitches: steps 2-5 -> 4 / 18 steps
    assert M.polyphony_rate(PIECE, resolution=4) == pytest.approx(4 / 18)
    # more than 1 pitch: steps 0-7 -> 8 / 18
    assert M.polyphony_rate(PIECE, resolution=4, threshold=1) == pytest.approx(8 / 18)


def test_empty_beat_rate():
    # beats 0 .. 18 // 4 = 4 (5 beats). A note touches beats start // 4 .. end // 4 inclusive:
    # A 0-1, B 0-2 (it ends on step 8, the first step of beat 2), C 0-1, D 1-2, E 0-1, F 4-4.
    # Only beat 3 is empty -> 1 / 5
    assert M.empty_beat_rate(PIECE, resolution=4) == pytest.approx(0.2)


def test_groove_consistency():
    # measures of 8 steps (2 quarters): 18 // 8 + 1 = 3 measures; onset steps 0 0 2 3 4 | - | 16
    # onset vectors: {0, 2, 3, 4}, {}, {0} -> Hamming 4 + 1 = 5 -> 1 - 5 / (8 * 2)
    assert M.groove_consistency(PIECE, 8, resolution=4) == pytest.approx(1 - 5 / 16)
    # measures of 16 steps: 2 measures {0, 2, 3, 4}, {0} -> Hamming 3 -> 1 - 3 / 16
    assert M.groove_consistency(PIECE, 16, resolution=4) == pytest.approx(1 - 3 / 16)
    with pytest.raises(ValueError, match="measure_resolution"):
        M.groove_consistency(PIECE, 0)


def test_degenerate_pieces_give_nan():
    zero_length = make_notes([0, 0], [0, 0], [60, 64])
    assert math.isnan(M.polyphony(zero_length))
    assert math.isnan(M.polyphony_rate(zero_length))
    assert math.isnan(M.empty_beat_rate(zero_length))
    assert math.isnan(M.note_density(zero_length))
    one_bar = make_notes([0, 1], [1, 1], [60, 62])  # ends at step 48 of a 96-step measure
    assert math.isnan(M.groove_consistency(one_bar, 96))


def test_empty_piece():
    values = M.compute_all(EMPTY)
    assert values.pop("n_pitches_used") == 0.0
    assert values.pop("n_pitch_classes_used") == 0.0
    assert all(math.isnan(v) for v in values.values()), values


# --- the registry -------------------------------------------------------------------------------


def test_compute_all_uses_the_registry_and_its_arguments():
    values = M.compute_all(PIECE, bar_len=2.0, resolution=4)
    assert list(values) == list(M.PIECE_METRICS)
    assert values["groove_consistency"] == pytest.approx(1 - 5 / 16)  # 8-step measures
    assert values["polyphony"] == pytest.approx(2.2)
    assert values["in_key_rate"] == 1.0  # estimated key C major holds C E G
    assert M.compute_all(WHOLE_TONES, key=Key(0, "major"))["in_key_rate"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="whole number"):
        M.compute_all(PIECE, bar_len=4.1, resolution=4)
    with pytest.raises(TypeError):
        M.PIECE_METRICS["extra"] = M.pitch_range  # type: ignore[index]


# --- MusPy on the same files --------------------------------------------------------------------


def _etude() -> np.ndarray:
    """4/4: chords, triplets, dotted notes, rests of 4.5 quarters, a sixteenth-triplet figure."""
    onsets, durations, pitches = [], [], []
    t = 0.0
    for k in range(32):
        step = (1.0, 0.5, 1 / 3, 0.25, 1.5, 2 / 3)[(k * 7) % 6]
        pitch = 48 + (k * 11) % 30
        onsets.append(t)
        durations.append(step * (1 + (k % 3) / 2))
        pitches.append(pitch)
        if k % 4 == 0:  # a chord under every fourth note
            onsets += [t, t]
            durations += [2.0, 1.0]
            pitches += [pitch - 12, pitch - 5]
        t += step
        if k % 9 == 8:  # a rest
            t += 4.5
    onsets += [t + i / 6 for i in range(6)]
    durations += [1 / 6] * 6
    pitches += [72, 74, 76, 77, 79, 81]
    return make_notes(onsets, durations, pitches)


def _waltz() -> np.ndarray:
    """3/4: melody over a bass note per bar; bars 4 and 9 are silent."""
    onsets, durations, pitches = [], [], []
    for bar in range(12):
        if bar in (4, 9):
            continue
        base = 3.0 * bar
        for j, (on, dur) in enumerate(((0, 0.75), (0.75, 0.25), (1, 1), (2, 0.5), (2.5, 0.5))):
            if (bar + j) % 5 == 3:
                continue
            onsets.append(base + on)
            durations.append(dur)
            pitches.append(67 + (3 * bar + 2 * j) % 9)
        onsets.append(base)
        durations.append(3.0 if bar % 2 else 1.5)
        pitches.append(43 + bar % 5)
    return make_notes(onsets, durations, pitches)


# Obtained with MusPy 0.5.0 on the files this test writes (notes_to_score(...).dump_midi, 480
# ticks per quarter): music = muspy.read_midi(path); music.adjust_resolution(resolution); then
# muspy.<metric>(music), and muspy.groove_consistency(music, bar_len * resolution). Metrics that
# do not depend on time are given once. (A 400-piece random comparison, ties at half a step, zero-
# length and overlapping same-pitch notes included, agreed to 1e-9 on every value.)
_MUSPY_PITCH = {
    "etude": {
        "pitch_range": 45,
        "n_pitches_used": 36,
        "n_pitch_classes_used": 12,
        "pitch_entropy": 5.074241437308589,
        "pitch_class_entropy": 3.4935331699698624,
        "scale_consistency": 0.7222222222222222,
    },
    "waltz": {
        "pitch_range": 32,
        "n_pitches_used": 13,
        "n_pitch_classes_used": 9,
        "pitch_entropy": 3.565588129810026,
        "pitch_class_entropy": 3.048047190938307,
        "scale_consistency": 0.76,
    },
}
_MUSPY_TIME = {
    ("etude", 24): {
        "polyphony": 2.195583596214511,
        "polyphony_rate": 0.2796420581655481,
        "empty_beat_rate": 0.21052631578947367,
        "groove_consistency": 0.9305555555555556,
    },
    ("etude", 4): {
        "polyphony": 2.2149532710280373,
        "polyphony_rate": 0.28187919463087246,
        "empty_beat_rate": 0.1842105263157895,
        "groove_consistency": 0.6527777777777778,
    },
    ("waltz", 24): {
        "polyphony": 1.6140350877192982,
        "polyphony_rate": 0.0,
        "empty_beat_rate": 0.10810810810810811,
        "groove_consistency": 0.9606481481481481,
    },
    ("waltz", 4): {
        "polyphony": 1.6140350877192982,
        "polyphony_rate": 0.0,
        "empty_beat_rate": 0.10810810810810811,
        "groove_consistency": 0.7638888888888888,
    },
}
_PIECES = {"etude": (_etude, (4, 4)), "waltz": (_waltz, (3, 4))}


@pytest.mark.parametrize(("name", "resolution"), sorted(_MUSPY_TIME))
def test_matches_muspy_on_the_same_midi_file(tmp_path, name, resolution):
    make, (numerator, denominator) = _PIECES[name]
    path = tmp_path / f"{name}.mid"
    notes_to_score(make(), time_signature=(numerator, denominator)).dump_midi(path)
    notes = score_notes(Score(path))
    bar_len = 4.0 * numerator / denominator
    ours = M.compute_all(notes, bar_len=bar_len, resolution=resolution)
    expected = {**_MUSPY_PITCH[name], **_MUSPY_TIME[(name, resolution)]}
    for metric, value in expected.items():
        assert ours[metric] == pytest.approx(value, rel=1e-12, abs=1e-12), metric


def _quartet() -> Score:
    """Four tracks in 3/4 (480 ticks per quarter), a unison passage between the two violins, rests,
    and a pedal-off and a volume change 5 and 7 quarters after the last note."""
    from symusic import ControlChange, Note, Tempo, TimeSignature, Track

    tpq = 480
    score = Score(tpq)
    score.tempos.append(Tempo(0, qpm=100))
    score.time_signatures.append(TimeSignature(0, 3, 4))
    rng = np.random.default_rng(7)
    for v, (low, program) in enumerate(((67, 40), (60, 40), (55, 41), (43, 42))):
        track = Track(name=f"v{v}", program=program, is_drum=False)
        time = 0
        while time < 30 * tpq:
            duration = int(rng.choice([0.5, 1, 1.5, 2]) * tpq)
            pitch = int(low + rng.integers(0, 8))
            if rng.random() < 0.15:
                time += duration
                continue
            track.notes.append(Note(time, duration, pitch, 70))
            time += duration
        if v == 1:
            for note in list(score.tracks[0].notes)[:6]:
                track.notes.append(Note(note.time, note.duration, note.pitch, 60))
        track.notes.sort()
        if v == 3:
            last = max(n.time + n.duration for n in track.notes)
            track.controls.append(ControlChange(last + 5 * tpq + 37, 64, 0))
            track.controls.append(ControlChange(last + 7 * tpq, 7, 90))
        score.tracks.append(track)
    return score


# MusPy 0.5.0 on the file _quartet() writes: muspy.read_midi(path); adjust_resolution(r); metric.
# The pitch metrics and polyphony do not depend on the end; the others run to the last control.
_MUSPY_QUARTET = {
    "pitch_range": 31,
    "n_pitches_used": 28,
    "n_pitch_classes_used": 12,
    "pitch_entropy": 4.6091138088376535,
    "pitch_class_entropy": 3.3711362828972824,
    "scale_consistency": 0.6966292134831461,
    "polyphony": 3.3225806451612905,
    "polyphony_rate": 0.8028169014084507,
    "empty_beat_rate": 0.11111111111111116,
}
_MUSPY_QUARTET_GROOVE = {24: 0.9734848484848485, 4: 0.8409090909090909}


@pytest.mark.parametrize("resolution", [24, 4])
def test_matches_muspy_on_a_multitrack_piece_with_trailing_controls(tmp_path, resolution):
    path = tmp_path / "quartet.mid"
    _quartet().dump_midi(path)
    score = Score(path)
    assert M.piece_end(score) == pytest.approx((max(n.time + n.duration for n in score.tracks[3].notes) + 7 * 480) / 480)
    ours = M.compute_all(score_notes(score), bar_len=3.0, resolution=resolution, end=M.piece_end(score))
    for metric, value in {**_MUSPY_QUARTET, "groove_consistency": _MUSPY_QUARTET_GROOVE[resolution]}.items():
        assert ours[metric] == pytest.approx(value, rel=1e-12, abs=1e-12), metric
    # without the end, the silence after the last note is not measured (what MusPy would not do)
    plain = M.compute_all(score_notes(score), bar_len=3.0, resolution=resolution)
    assert plain["empty_beat_rate"] == 0.0 and plain["polyphony_rate"] > ours["polyphony_rate"]
    assert plain["polyphony"] == ours["polyphony"]


def test_matches_muspy_itself_on_random_multitrack_pieces(tmp_path):
    muspy = pytest.importorskip("muspy")
    rng = np.random.default_rng(0)
    for trial in range(25):
        from symusic import ControlChange, Note, Track

        score = Score(480)
        for _ in range(int(rng.integers(1, 5))):
            track = Track(program=int(rng.integers(0, 80)))
            for _ in range(int(rng.integers(1, 40))):
                track.notes.append(Note(int(rng.integers(0, 9600)), int(rng.integers(1, 1500)), int(rng.integers(40, 90)), 64))
            if rng.random() < 0.5:
                track.controls.append(ControlChange(int(rng.integers(0, 14000)), 64, 0))
            score.tracks.append(track)
        path = tmp_path / f"r{trial}.mid"
        score.dump_midi(path)
        read = Score(path)
        ours = M.compute_all(score_notes(read), bar_len=4.0, resolution=12, end=M.piece_end(read))
        music = muspy.read_midi(str(path))
        music.adjust_resolution(12)
        for metric in ("pitch_entropy", "scale_consistency", "polyphony", "polyphony_rate", "empty_beat_rate"):
            assert ours[metric] == pytest.approx(getattr(muspy, metric)(music), abs=1e-12), (trial, metric)
        assert ours["groove_consistency"] == pytest.approx(muspy.groove_consistency(music, 48), abs=1e-12), trial


def _midi_with_a_hanging_note() -> bytes:
    """One track, 480 ticks per quarter: C4 for a quarter, E4 switched on at 0 and never off, G4
    for a quarter, then end of track two quarters later (hand-written MIDI bytes)."""
    events = bytes(
        [0x00, 0x90, 60, 80, 0x00, 0x90, 64, 80,  # C4 and E4 on at 0
         0x83, 0x60, 0x80, 60, 0,  # +480: C4 off
         0x00, 0x90, 67, 80,  # G4 on
         0x83, 0x60, 0x80, 67, 0,  # +480: G4 off
         0x87, 0x40, 0xFF, 0x2F, 0x00]  # +960: end of track
    )  # fmt: skip
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + (480).to_bytes(2, "big")
    return header + b"MTrk" + len(events).to_bytes(4, "big") + events


def test_a_note_never_switched_off_is_dropped_where_muspy_closes_it():
    # Deliberate difference (module docstring): symusic drops the hanging E4; MusPy's mido reader
    # would hold it to the end of the track (tick 1920), which changes polyphony and its rate.
    score = Score.from_midi(_midi_with_a_hanging_note())
    notes = score_notes(score)
    assert notes["pitch"].tolist() == [60, 67] and notes["duration"].tolist() == [1.0, 1.0]
    assert M.polyphony(notes, 4) == 1.0
    # MusPy 0.5.0 on the same bytes holds E4 over steps 0-16: (4 + 4 + 16) / 16 = 1.5
    held = make_notes([0, 0, 1], [1, 4, 1], [60, 64, 67])
    assert M.polyphony(held, 4) == 1.5


# --- distribution comparison --------------------------------------------------------------------


def _normal(n: int, mean: float = 0.0) -> np.ndarray:
    """A deterministic sample of N(mean, 1): its quantiles at (i + 0.5) / n."""
    from scipy.stats import norm

    return mean + norm.ppf((np.arange(n) + 0.5) / n)


def test_kde_overlap_of_a_sample_with_itself_is_one():
    a = _normal(200)
    assert M.kde_overlap(a, a) == pytest.approx(1.0, abs=1e-6)
    skewed = np.array([0.0, 0.1, 0.1, 0.3, 2.0, 9.0, 9.5])  # narrow kernels, wide span
    assert M.kde_overlap(skewed, skewed) == pytest.approx(1.0, abs=1e-6)


def test_kde_overlap_of_far_apart_samples_is_near_zero():
    assert M.kde_overlap(_normal(100), _normal(100, mean=100.0)) < 1e-6


def test_kde_overlap_of_two_normals():
    # N(0, 1) vs N(1, 1): the true overlap is 2 Phi(-1/2) = 0.617. Scott's kernels on 2000
    # points widen each density to sd sqrt(1 + 2000^-0.4) = 1.0235 -> 2 Phi(-0.5 / 1.0235) = 0.625
    a, b = _normal(2000), _normal(2000, mean=1.0)
    assert M.kde_overlap(a, b) == pytest.approx(0.625, abs=0.005)
    assert M.kde_overlap(a, b) == pytest.approx(M.kde_overlap(b, a), abs=1e-9)


def test_kde_kl_divergence():
    a = _normal(2000)
    assert M.kde_kl_divergence(a, a) == 0.0
    far = M.kde_kl_divergence(_normal(100), _normal(100, mean=100.0))
    assert 10 < far < math.inf  # large, but the density floor keeps it finite


def test_kde_measures_agree_with_adaptive_quadrature():
    from scipy.integrate import quad
    from scipy.stats import gaussian_kde

    a, b = _normal(200), _normal(200, mean=1.0)
    pa, pb = gaussian_kde(a), gaussian_kde(b)
    kl, _ = quad(lambda x: pa(x)[0] * math.log(pa(x)[0] / pb(x)[0]), -8, 9, limit=200)
    overlap, _ = quad(lambda x: min(pa(x)[0], pb(x)[0]), -12, 13, limit=200, points=[0.5])
    # about 1 / (2 s^2) = 0.48 for two unit normals one apart, the kernels widening s a little
    assert M.kde_kl_divergence(a, b) == pytest.approx(kl, abs=1e-3)
    assert M.kde_overlap(a, b) == pytest.approx(overlap, abs=1e-5)


def test_kde_grid_resolves_kernels_of_very_different_widths():
    narrow, wide = 1e-3 * _normal(100), 1e3 * _normal(100, mean=0.5)
    grid, pa, pb = M._kde_pair(narrow, wide)
    assert M._integrate(pa, grid) == pytest.approx(1.0, abs=1e-6)
    assert M._integrate(pb, grid) == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < M.kde_overlap(narrow, wide) < 0.01


def test_kde_degenerate_samples():
    assert math.isnan(M.kde_overlap([1.0, math.nan], [1.0, 2.0]))  # one finite value
    assert math.isnan(M.kde_overlap([], [1.0, 2.0]))
    assert math.isnan(M.kde_overlap([3.0, 3.0], [5.0, 5.0]))  # zero variance on both sides
    assert math.isnan(M.kde_kl_divergence([3.0, 3.0], [5.0, 5.0]))
    # one constant side becomes a Gaussian with the other side's kernel width
    one_sided = M.kde_overlap([0.0, 0.0, 0.0], _normal(50))
    assert 0.0 < one_sided < 1.0
    assert M.kde_overlap([0.0, 0.0], [0.0, 0.0, math.inf, 1.0]) > 0.0  # inf dropped
