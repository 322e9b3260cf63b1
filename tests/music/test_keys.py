"""Keys: parsing, names, scales, key signatures and diatonic chords, against exact values."""

from __future__ import annotations

import pytest

from curricmusic.common.errors import UserError
from curricmusic.music.keys import (
    ALL_KEYS,
    Key,
    diatonic_chord,
    key_signature_sharps,
    midi_key_signature,
    parse_key,
    roman_numeral,
    scale_pitch_classes,
)


@pytest.mark.parametrize(
    ("text", "tonic", "mode"),
    [
        ("C", 0, "major"),
        ("F#", 6, "major"),
        ("Bb", 10, "major"),
        ("B", 11, "major"),
        ("a", 9, "minor"),
        ("f#", 6, "minor"),
        ("bb", 10, "minor"),
        ("b", 11, "minor"),
        ("eb", 3, "minor"),
        ("C major", 0, "major"),
        ("A minor", 9, "minor"),
        ("c# minor", 1, "minor"),
        ("Db maj", 1, "major"),
        ("a min", 9, "minor"),
        ("a MAJOR", 9, "major"),
        ("G Minor", 7, "minor"),
        ("E-", 3, "major"),  # music21's flat
        ("Cb", 11, "major"),
        ("E#", 5, "major"),
        ("  g  ", 7, "minor"),
        ("Dmajor", 2, "major"),
    ],
)
def test_parse_key_spellings(text, tonic, mode):
    assert parse_key(text) == Key(tonic, mode)


@pytest.mark.parametrize(
    "text", ["H major", "", "C##", "C major7", "xyz", "c flat", "major", "Bbb"]
)
def test_parse_key_errors_name_the_text_and_what_is_accepted(text):
    with pytest.raises(UserError) as info:
        parse_key(text)
    message = str(info.value)
    assert repr(text) in message
    assert "expected a tonic A-G" in message and "\n" not in message


def test_parse_key_rejects_non_strings():
    with pytest.raises(UserError):
        parse_key(3)  # type: ignore[arg-type]


def test_all_keys_are_the_24_keys_majors_first_in_fifths():
    assert len(ALL_KEYS) == 24 and len(set(ALL_KEYS)) == 24
    assert all(k.mode == "major" for k in ALL_KEYS[:12])
    assert all(k.mode == "minor" for k in ALL_KEYS[12:])
    assert [k.short for k in ALL_KEYS[:4]] == ["C", "G", "D", "A"]
    assert [k.short for k in ALL_KEYS[12:16]] == ["a", "e", "b", "f#"]
    assert len({k.slug for k in ALL_KEYS}) == 24


def test_names_use_conventional_spellings_and_parse_back():
    assert Key(10, "major").name == "Bb major"
    assert Key(6, "major").name == "Gb major"
    assert Key(1, "major").name == "Db major"
    assert Key(3, "minor").name == "Eb minor"
    assert Key(6, "minor").name == "F# minor"
    assert Key(1, "minor").name == "C# minor"
    assert Key(10, "minor").short == "bb"
    assert Key(6, "minor").slug == "f-sharp-minor"
    assert Key(10, "major").slug == "b-flat-major"
    for key in ALL_KEYS:
        assert parse_key(key.name) == key
        assert parse_key(key.short) == key


def test_key_validates_its_fields():
    with pytest.raises(ValueError):
        Key(12, "major")
    with pytest.raises(ValueError):
        Key(0, "dorian")  # type: ignore[arg-type]


def test_scale_pitch_classes_exact():
    assert scale_pitch_classes(Key(0, "major")) == (0, 2, 4, 5, 7, 9, 11)
    assert scale_pitch_classes(Key(6, "major")) == (6, 8, 10, 11, 1, 3, 5)
    assert scale_pitch_classes(Key(6, "major"), "harmonic") == (6, 8, 10, 11, 1, 3, 5)
    a = Key(9, "minor")
    assert scale_pitch_classes(a) == (9, 11, 0, 2, 4, 5, 7)
    assert scale_pitch_classes(a, "harmonic") == (9, 11, 0, 2, 4, 5, 8)
    assert scale_pitch_classes(a, "melodic") == (9, 11, 0, 2, 4, 6, 8)
    with pytest.raises(ValueError):
        scale_pitch_classes(a, "dorian")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "sharps"),
    [
        ("C", 0),
        ("G", 1),
        ("D", 2),
        ("A", 3),
        ("E", 4),
        ("B", 5),
        ("F", -1),
        ("Bb", -2),
        ("Eb", -3),
        ("Ab", -4),
        ("Db", -5),
        ("Gb", -6),
        ("F#", -6),
        ("a", 0),
        ("e", 1),
        ("f#", 3),
        ("c#", 4),
        ("g#", 5),
        ("d", -1),
        ("g", -2),
        ("c", -3),
        ("f", -4),
        ("bb", -5),
        ("eb", -6),
    ],
)
def test_key_signature_sharps(text, sharps):
    assert key_signature_sharps(parse_key(text)) == sharps


def test_midi_key_signature_has_mode():
    assert midi_key_signature(parse_key("a")) == (0, 1)
    assert midi_key_signature(parse_key("Eb")) == (-3, 0)


def test_minor_dominant_has_the_raised_leading_tone():
    a = Key(9, "minor")
    assert diatonic_chord(a, 5) == (4, 8, 11)  # E major: G#
    assert diatonic_chord(a, 5, seventh=True) == (4, 8, 11, 2)  # dominant seventh
    assert diatonic_chord(a, 7, seventh=True) == (8, 11, 2, 5)  # diminished seventh
    assert diatonic_chord(a, 1) == (9, 0, 4)
    assert diatonic_chord(a, 3) == (0, 4, 7)  # III from the natural minor
    assert diatonic_chord(a, 7, raised_leading_tone=False) == (7, 11, 2)  # subtonic VII
    c = Key(0, "major")
    assert diatonic_chord(c, 2, seventh=True) == (2, 5, 9, 0)
    assert diatonic_chord(c, 7) == (11, 2, 5)
    with pytest.raises(ValueError):
        diatonic_chord(c, 8)


def test_roman_numerals_follow_quality():
    c, a = Key(0, "major"), Key(9, "minor")
    assert [roman_numeral(c, diatonic_chord(c, d), d) for d in range(1, 8)] == [
        "I",
        "ii",
        "iii",
        "IV",
        "V",
        "vi",
        "vii°",
    ]
    assert [roman_numeral(a, diatonic_chord(a, d), d) for d in range(1, 8)] == [
        "i",
        "ii°",
        "III",
        "iv",
        "V",
        "VI",
        "vii°",
    ]
    assert roman_numeral(c, diatonic_chord(c, 5, True), 5) == "V7"
    assert roman_numeral(c, diatonic_chord(c, 7, True), 7) == "viiø7"
    assert roman_numeral(c, diatonic_chord(c, 1, True), 1) == "IMaj7"
    assert roman_numeral(a, diatonic_chord(a, 7, True), 7) == "vii°7"
    assert roman_numeral(a, diatonic_chord(a, 7, raised_leading_tone=False), 7) == "VII"
