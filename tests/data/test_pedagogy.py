"""Pedagogy generators: determinism, music-theory properties of every piece, and MIDI validity."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError
from symusic import Score

from curricmusic.common.errors import UserError
from curricmusic.data.pedagogy import (
    GENERATORS,
    EtudesOptions,
    GeneratedPiece,
    HanonOptions,
    ScalesOptions,
    generate,
)
from curricmusic.data.pedagogy.hanon import FIGURES
from curricmusic.music.keys import (
    ALL_KEYS,
    Key,
    diatonic_chord,
    midi_key_signature,
    parse_key,
    scale_pitch_classes,
)

KINDS = ("scales", "hanon", "etudes")


@pytest.fixture(scope="module")
def defaults() -> dict[str, list[GeneratedPiece]]:
    """Every generator with default options over the 24 keys, seed 0."""
    return {kind: generate(kind, ALL_KEYS, seed=0) for kind in KINDS}


def hand(piece: GeneratedPiece, name: str) -> np.ndarray:
    """The notes of one hand as a structured array (time, duration, pitch, velocity), in order."""
    track = next(t for t in piece.score.tracks if t.name == name)
    notes = track.notes.numpy()
    order = np.lexsort((notes["pitch"], notes["time"]))
    return np.rec.fromarrays(
        [notes[f][order].astype(np.int64) for f in ("time", "duration", "pitch", "velocity")],
        names="time,duration,pitch,velocity",
    )


def key_of(piece: GeneratedPiece) -> Key:
    return parse_key(piece.meta["key"])


# --------------------------------------------------------------------------------------------
# API, counts, determinism


def test_generators_registry_and_default_counts(defaults):
    assert set(GENERATORS) == set(KINDS)
    counts = {kind: len(pieces) for kind, pieces in defaults.items()}
    assert 200 <= counts["scales"] <= 600, counts
    assert 100 <= counts["hanon"] <= 200, counts
    assert 100 <= counts["etudes"] <= 200, counts
    for kind, pieces in defaults.items():
        names = [p.name for p in pieces]
        assert len(set(names)) == len(names), kind
        assert all(name.startswith(kind + "/") for name in names)
        assert {p.meta["key"] for p in pieces} == {k.name for k in ALL_KEYS}
        for piece in pieces:
            assert piece.meta["generator"] == kind
            json.dumps(piece.meta)  # JSON-serialisable


def test_same_seed_same_bytes_different_seed_changes_etudes():
    keys = [parse_key("C"), parse_key("f#")]
    for kind in KINDS:
        first = [p.score.dumps_midi() for p in generate(kind, keys, 7)]
        second = [p.score.dumps_midi() for p in generate(kind, keys, 7)]
        assert first == second, kind
    etudes_a = [p.score.dumps_midi() for p in generate("etudes", keys, 7)]
    etudes_b = [p.score.dumps_midi() for p in generate("etudes", keys, 8)]
    assert sum(a != b for a, b in zip(etudes_a, etudes_b, strict=True)) >= len(etudes_a) - 1


def _digest(seed: int) -> str:
    sha = hashlib.sha256()
    for kind in KINDS:
        for piece in generate(kind, [parse_key("Eb"), parse_key("g#")], seed):
            sha.update(piece.name.encode() + piece.score.dumps_midi())
    return sha.hexdigest()


def test_bytes_do_not_depend_on_the_process_hash_seed():
    code = "from tests.data.test_pedagogy import _digest; print(_digest(3))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert out.stdout.strip() == _digest(3)


def test_generate_errors_are_one_line_user_errors():
    with pytest.raises(
        UserError, match="unknown generator 'hannon'; expected one of: etudes, hanon, scales"
    ):
        generate("hannon", ALL_KEYS, 0)
    with pytest.raises(UserError) as info:
        generate("scales", ALL_KEYS, 0, {"octaves": [5]})
    assert "octaves.0" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="unknown_option"):
        generate("hanon", ALL_KEYS, 0, {"unknown_option": 1})
    with pytest.raises(UserError, match="HanonOptions"):
        generate("hanon", ALL_KEYS, 0, EtudesOptions())
    with pytest.raises(ValidationError):
        HanonOptions.model_validate({"figures": ["no-such-figure"]})
    with pytest.raises(ValidationError):
        ScalesOptions.model_validate({"variants": "2"})  # strict types
    with pytest.raises(ValidationError, match="needs 12 or 16 bars"):
        EtudesOptions.model_validate({"progressions": ["I-IV-vii-iii-vi-ii-V-I"], "bars": [8]})


def test_options_model_instance_string_keys_and_duplicates():
    model = HanonOptions(figures_per_key=2)
    by_model = generate("hanon", ["C", "C major", parse_key("a")], 1, model)
    by_dict = generate("hanon", [Key(0), Key(9, "minor")], 1, {"figures_per_key": 2})
    assert [p.name for p in by_model] == [p.name for p in by_dict]
    assert len(by_model) == 4


def test_max_pieces_keeps_a_seeded_subset_in_order(defaults):
    full = [p.name for p in defaults["etudes"]]
    subset = [p.name for p in generate("etudes", ALL_KEYS, 0, {"max_pieces": 20})]
    assert len(subset) == 20 and len(set(subset)) == 20
    positions = [full.index(name) for name in subset]
    assert positions == sorted(positions)
    again = [p.name for p in generate("etudes", ALL_KEYS, 0, {"max_pieces": 20})]
    assert subset == again
    assert subset != [p.name for p in generate("etudes", ALL_KEYS, 1, {"max_pieces": 20})]


# --------------------------------------------------------------------------------------------
# MIDI validity


def test_midi_round_trip_and_note_sanity(defaults):
    for pieces in defaults.values():
        for piece in pieces:
            score = piece.score
            assert score.tpq == 480
            back = Score.from_midi(score.dumps_midi())
            assert [t.name for t in back.tracks] == [t.name for t in score.tracks]
            assert [t.note_num() for t in back.tracks] == [t.note_num() for t in score.tracks]
            assert all(t.program == 0 for t in back.tracks)
            assert [t.mspq for t in back.tempos] == [t.mspq for t in score.tempos]
            assert [(t.numerator, t.denominator) for t in back.time_signatures] == [
                (t.numerator, t.denominator) for t in score.time_signatures
            ]
            assert [(k.key, k.tonality) for k in back.key_signatures] == [
                (k.key, k.tonality) for k in score.key_signatures
            ]
            for track in score.tracks:
                notes = track.notes.numpy()
                assert (notes["time"] >= 0).all() and (notes["duration"] > 0).all()
                assert ((notes["velocity"] >= 60) & (notes["velocity"] <= 100)).all()
                assert ((notes["pitch"] >= 21) & (notes["pitch"] <= 108)).all()
                assert len(set(notes["velocity"].tolist())) > 1  # dynamics vary


def test_key_signature_and_tracks_match_the_key(defaults):
    for pieces in defaults.values():
        for piece in pieces[::7]:
            key = key_of(piece)
            signature = piece.score.key_signatures[0]
            assert (signature.key, signature.tonality) == midi_key_signature(key)
            assert [t.name for t in piece.score.tracks] == ["RH", "LH"]


# --------------------------------------------------------------------------------------------
# scales


def _scale_sets(key: Key, form: str) -> tuple[set[int], set[int]]:
    """Pitch classes allowed (ascending, descending) for a scale form."""
    if key.mode == "major":
        pcs = set(scale_pitch_classes(key))
        return pcs, pcs
    up = set(scale_pitch_classes(key, form))
    down = set(scale_pitch_classes(key, "natural")) if form == "melodic" else up
    return up, down


def test_scale_notes_belong_to_their_key_and_form(defaults):
    checked = 0
    for piece in defaults["scales"]:
        if piece.meta["kind"] != "scale":
            continue
        up, down = _scale_sets(key_of(piece), piece.meta["form"])
        for name in ("RH", "LH"):
            pitches = hand(piece, name).pitch
            assert pitches[0] % 12 == key_of(piece).tonic_pc and pitches[-1] == pitches[0]
            for before, pitch in zip(pitches[:-1], pitches[1:], strict=True):
                allowed = up if pitch > before else down
                assert pitch % 12 in allowed, (piece.name, pitch)
                assert 1 <= abs(int(pitch) - int(before)) <= 3  # stepwise
            checked += 1
    assert checked > 100


def test_chromatic_scale_covers_all_pitch_classes_by_semitones(defaults):
    pieces = [p for p in defaults["scales"] if p.meta["kind"] == "chromatic"]
    assert len({key_of(p).tonic_pc for p in pieces}) == 12
    for piece in pieces:
        pitches = hand(piece, "RH").pitch
        assert {int(p) % 12 for p in pitches} == set(range(12))
        assert set(np.abs(np.diff(pitches)).tolist()) == {1}


def test_arpeggios_play_the_right_chords(defaults):
    expected = {
        "tonic": lambda k: diatonic_chord(k, 1),
        "dominant7": lambda k: diatonic_chord(k, 5, seventh=True),
        "diminished7": lambda k: tuple(((k.tonic_pc + 11) + 3 * i) % 12 for i in range(4)),
    }
    seen = set()
    for piece in defaults["scales"]:
        if piece.meta["kind"] != "arpeggio":
            continue
        key, kind = key_of(piece), piece.meta["arpeggio"]
        chord = expected[kind](key)
        assert tuple(piece.meta["chord_pitch_classes"]) == chord
        for name in ("RH", "LH"):
            pitches = hand(piece, name).pitch
            assert {int(p) % 12 for p in pitches} == set(chord), piece.name
            assert pitches[0] % 12 == chord[0]
        seen.add(kind)
    assert seen == set(expected)


def test_span_in_octaves_matches_the_option(defaults):
    for piece in defaults["scales"]:
        for name in ("RH", "LH"):
            pitches = hand(piece, name).pitch
            assert pitches.max() - pitches.min() == 12 * piece.meta["octaves"], piece.name
    assert {p.meta["octaves"] for p in defaults["scales"]} == {1, 2, 3, 4}
    assert {p.meta["rhythm"] for p in defaults["scales"]} == {
        "quarters",
        "eighths",
        "triplets",
        "sixteenths",
    }
    for span in (1, 3, 4):
        pieces = generate("scales", [parse_key("Ab"), parse_key("b")], 5, {"octaves": [span]})
        for piece in pieces:
            want = min(span, 2) if piece.meta["motion"] == "contrary" else span
            assert piece.meta["octaves"] == want
            rh = hand(piece, "RH").pitch
            assert rh.max() - rh.min() == 12 * want


def test_motions_and_note_values(defaults):
    motions = set()
    for piece in defaults["scales"]:
        rh, lh = hand(piece, "RH"), hand(piece, "LH")
        motion = piece.meta["motion"]
        motions.add(motion)
        if motion == "contrary":
            assert (rh.time == lh.time).all()
            product = np.diff(rh.pitch) * np.diff(lh.pitch)
            assert (product < 0).all(), piece.name  # opposite directions at every step
            assert rh.pitch[0] - lh.pitch[0] == 12
        elif motion == "parallel":
            assert (rh.time == lh.time).all() and (rh.pitch - lh.pitch == 12).all()
        else:
            assert lh.time.min() >= (rh.time + rh.duration).max()  # the left hand after the right
        meter = piece.score.time_signatures[0]
        step = int(np.diff(rh.time).min())
        if piece.meta["rhythm"] == "triplets":
            assert (meter.numerator, meter.denominator, step) == (12, 8, 240)
        else:
            assert (meter.numerator, meter.denominator) == (4, 4)
            assert (
                step == {"quarters": 480, "eighths": 240, "sixteenths": 120}[piece.meta["rhythm"]]
            )
        # the final note is held to a bar line
        bar = meter.numerator * 1920 // meter.denominator
        assert (rh.time[-1] + rh.duration[-1]) % bar == 0
        assert 43 <= rh.pitch[0] <= 71  # the right hand starts around middle C
    assert motions == {"separate", "parallel", "contrary"}


# --------------------------------------------------------------------------------------------
# hanon


def _degree_pitch(key: Key, form: str, tonic: int, degree: int) -> int:
    steps = [(pc - key.tonic_pc) % 12 for pc in scale_pitch_classes(key, form)]
    octave, index = divmod(degree, 7)
    return tonic + 12 * octave + steps[index]


def test_hanon_figures_are_many_and_distinct():
    assert len(FIGURES) >= 8
    assert len(set(FIGURES.values())) == len(FIGURES)
    for figure in FIGURES.values():
        assert len(figure) == 8 and figure[0] == 0 and max(figure) <= 5 and min(figure) >= 0
        assert all(
            a != b for a, b in zip(figure[:-1], figure[1:], strict=True)
        )  # no repeated notes


def test_hanon_figure_shape_sequence_and_hands():
    keys = [parse_key(k) for k in ("C", "a", "F#", "eb")]
    pieces = generate("hanon", keys, 2, {"figures_per_key": None})
    assert len(pieces) == 4 * len(FIGURES)
    for piece in pieces:
        key, figure = key_of(piece), piece.meta["degrees"]
        form = piece.meta["scale_form"]
        rh, lh = hand(piece, "RH"), hand(piece, "LH")
        tonic = int(rh.pitch[0])
        assert tonic % 12 == key.tonic_pc
        groups = piece.meta["groups_up"]
        assert groups == 14
        # the first 8 notes are the figure's degrees; each group one scale degree higher
        for g in range(groups):
            group = rh.pitch[8 * g : 8 * g + 8].tolist()
            assert group == [_degree_pitch(key, form, tonic, g + d) for d in figure], piece.name
        # then the mirrored figure from the top note back down to the tonic
        top = groups - 1 + max(figure)
        for g in range(piece.meta["groups_down"]):
            start = 8 * (groups + g)
            group = rh.pitch[start : start + 8].tolist()
            assert group == [_degree_pitch(key, form, tonic, top - g - d) for d in figure]
        assert rh.pitch[-1] == tonic and rh.duration[-1] >= 960  # a held tonic
        assert len(rh) == len(lh) == 8 * 2 * groups + 1
        assert (lh.pitch == rh.pitch - 12).all()
        assert (lh.time == rh.time).all() and (lh.duration == rh.duration).all()
        bar = piece.score.time_signatures[0].numerator * 480
        assert bar == 8 * int(rh.duration[0])  # one figure per bar


def test_hanon_defaults_use_many_figures(defaults):
    assert len({p.meta["figure"] for p in defaults["hanon"]}) >= 8
    assert {p.meta["note_value"] for p in defaults["hanon"]} == {"sixteenths", "eighths"}


# --------------------------------------------------------------------------------------------
# etudes


def test_etude_bass_follows_its_progression(defaults):
    for piece in defaults["etudes"]:
        key, meta = key_of(piece), piece.meta
        chords = meta["chords"]
        meter = piece.score.time_signatures[0]
        assert f"{meter.numerator}/{meter.denominator}" == meta["time_signature"] in ("4/4", "3/4")
        bar = meter.numerator * 480
        assert 8 <= len(chords) == meta["bars"] <= 16
        assert piece.score.end() == len(chords) * bar
        lh = hand(piece, "LH")
        for index, chord in enumerate(chords):
            in_bar = (lh.time >= index * bar) & (lh.time < (index + 1) * bar)
            assert in_bar.any()
            pcs = {int(p) % 12 for p in lh.pitch[in_bar]}
            assert pcs <= set(chord["pitch_classes"]), (piece.name, index + 1, chord)
            degree = chord["degree"]
            seventh = len(chord["pitch_classes"]) == 4
            if chord["roman"] != "VII":
                assert tuple(chord["pitch_classes"]) == diatonic_chord(key, degree, seventh)
            assert chord["pitch_classes"][0] in pcs  # the root is in the bass
        assert chords[-1]["degree"] == 1
        assert tuple(chords[-1]["pitch_classes"]) == diatonic_chord(key, 1)
        assert chords[-2]["degree"] == 5 and chords[-2]["roman"] in ("V", "V7")
        assert (key.tonic_pc + 11) % 12 in chords[-2]["pitch_classes"]  # the leading tone
        # half cadence on V at the end of every antecedent, authentic at the end
        cadences = {c["bar"]: c["type"] for c in meta["cadences"]}
        assert cadences[4] == "half" and chords[3]["degree"] == 5
        assert cadences[len(chords)] == "authentic"
        rh = hand(piece, "RH")
        assert rh.pitch[-1] % 12 == key.tonic_pc  # the melody ends on the tonic
        assert lh.pitch.max() < rh.pitch.min()  # the hands never cross


def test_etude_right_hand_stays_in_key(defaults):
    for piece in defaults["etudes"]:
        key = key_of(piece)
        allowed = set(scale_pitch_classes(key, "natural")) | set(
            scale_pitch_classes(key, "harmonic")
        )
        assert {int(p) % 12 for p in hand(piece, "RH").pitch} <= allowed


def test_etude_settings_vary(defaults):
    meta = [p.meta for p in defaults["etudes"]]
    assert {m["progression"] for m in meta} == {
        "I-IV-V-I",
        "ii-V-I",
        "vi-ii-V-I",
        "I-IV-vii-iii-vi-ii-V-I",
    }
    assert {m["figuration"] for m in meta} == {"scale-runs", "broken-chords", "melody"}
    assert {m["accompaniment"] for m in meta} == {"alberti", "block", "broken-octaves"}
    assert {m["time_signature"] for m in meta} == {"4/4", "3/4"}
    assert {m["bars"] for m in meta} == {8, 12, 16}
    assert len({m["qpm"] for m in meta}) > 10
    circle = [m for m in meta if m["progression"] == "I-IV-vii-iii-vi-ii-V-I"]
    assert all(m["bars"] >= 12 for m in circle)
    romans = [c["roman"] for c in circle[0]["chords"][-8:]]
    assert romans[:6] in (
        ["I", "IV", "vii°", "iii", "vi", "ii"],
        ["i", "iv", "VII", "III", "VI", "ii°"],
    )


def test_hanon_option_names_match_the_figures():
    from curricmusic.config.pedagogy import FIGURE_NAMES
    from curricmusic.data.pedagogy.hanon import FIGURES

    assert tuple(FIGURES) == FIGURE_NAMES
