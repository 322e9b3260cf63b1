"""The 24 major and minor keys: names, scales, key signatures and diatonic chords.

Pure music theory with pitch classes (0 = C .. 11 = B), shared by the pedagogy generators, the
``--key KEY`` option of ``generate`` and the in-key metric. A :class:`Key` is only a tonic pitch
class and a mode; its spelling follows convention (flats for F, Bb, Eb, Ab, Db, Gb major and
d, g, c, f, bb, eb minor; sharps otherwise), whatever spelling it was parsed from.

>>> key = parse_key("f#")
>>> key.name, scale_pitch_classes(key, "harmonic")
('F# minor', (6, 8, 9, 11, 1, 2, 5))
>>> midi_key_signature(key)
(3, 1)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from curricmusic.common.errors import UserError

__all__ = [
    "piece_key",
    "Key",
    "Mode",
    "ScaleForm",
    "ALL_KEYS",
    "parse_key",
    "scale_pitch_classes",
    "key_signature_sharps",
    "midi_key_signature",
    "diatonic_chord",
    "roman_numeral",
    "key_from_histogram",
    "estimate_key",
]

Mode = Literal["major", "minor"]
ScaleForm = Literal["natural", "harmonic", "melodic"]

_SCALE_STEPS: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "natural": (0, 2, 3, 5, 7, 8, 10),
    "harmonic": (0, 2, 3, 5, 7, 8, 11),
    "melodic": (0, 2, 3, 5, 7, 9, 11),  # ascending melodic minor
}
# Sharps (+) or flats (-) of each major key, by tonic pitch class; F#/Gb is written as Gb.
_MAJOR_SHARPS = {0: 0, 7: 1, 2: 2, 9: 3, 4: 4, 11: 5, 6: -6, 1: -5, 8: -4, 3: -3, 10: -2, 5: -1}
_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
_LETTER_PCS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_KEY_RE = re.compile(r"^([A-Ga-g])([#b\-]?)(?:\s*(major|minor|maj|min))?$", re.IGNORECASE)
_ACCEPTED = (
    "expected a tonic A-G with optional #/b, then optional 'major'/'minor' "
    "(lowercase tonic alone means minor)"
)


@dataclass(frozen=True, order=True)
class Key:
    """A key: tonic pitch class (0 = C .. 11 = B) and mode."""

    tonic_pc: int
    mode: Mode = "major"

    def __post_init__(self) -> None:
        if not isinstance(self.tonic_pc, int) or not 0 <= self.tonic_pc <= 11:
            raise ValueError(f"tonic_pc must be an int in 0..11, got {self.tonic_pc!r}")
        if self.mode not in ("major", "minor"):
            raise ValueError(f"mode must be 'major' or 'minor', got {self.mode!r}")

    @property
    def tonic_name(self) -> str:
        """The tonic's conventional spelling in this key, e.g. ``"Bb"`` or ``"F#"``."""
        names = _FLAT_NAMES if key_signature_sharps(self) < 0 else _SHARP_NAMES
        return names[self.tonic_pc]

    @property
    def name(self) -> str:
        """Readable name, e.g. ``"C major"``, ``"F# minor"``, ``"Eb minor"``."""
        return f"{self.tonic_name} {self.mode}"

    @property
    def short(self) -> str:
        """music21-style short name: uppercase tonic for major, lowercase for minor (``"eb"``)."""
        return self.tonic_name if self.mode == "major" else self.tonic_name.lower()

    @property
    def slug(self) -> str:
        """File- and URL-safe name, e.g. ``"c-major"``, ``"f-sharp-minor"``, ``"b-flat-major"``."""
        letter, accidental = self.tonic_name[0].lower(), self.tonic_name[1:]
        accidental = {"#": "-sharp", "b": "-flat", "": ""}[accidental]
        return f"{letter}{accidental}-{self.mode}"

    def __str__(self) -> str:
        return self.name


def parse_key(text: str) -> Key:
    """Parse a key name: ``"C"``, ``"Bb"`` (major), ``"a"``, ``"f#"`` (minor), ``"Db maj"``, ``"c# minor"``.

    A tonic letter A-G, an optional accidental (``#``, ``b`` or music21's ``-``), then an optional
    mode word (``major``/``maj``/``minor``/``min``, any case). Without a mode word an uppercase
    tonic means major and a lowercase one minor, as in music21. Raises :class:`UserError` otherwise.
    """
    if not isinstance(text, str):
        raise UserError(f"unknown key {text!r}: {_ACCEPTED}")
    match = _KEY_RE.match(text.strip())
    if match is None:
        raise UserError(f"unknown key {text!r}: {_ACCEPTED}")
    letter, accidental, mode_word = match.groups()
    pc = _LETTER_PCS[letter.upper()] + {"#": 1, "b": -1, "-": -1, "": 0}[accidental]
    if mode_word is None:
        mode: Mode = "major" if letter.isupper() else "minor"
    else:
        mode = "major" if mode_word.lower().startswith("maj") else "minor"
    return Key(pc % 12, mode)


# Circle-of-fifths order: C G D A E B Gb Db Ab Eb Bb F, then their relative minors.
_FIFTHS = tuple((7 * i) % 12 for i in range(12))
ALL_KEYS: tuple[Key, ...] = tuple(Key(pc, "major") for pc in _FIFTHS) + tuple(
    Key((pc + 9) % 12, "minor") for pc in _FIFTHS
)


def scale_pitch_classes(key: Key, form: ScaleForm = "natural") -> tuple[int, ...]:
    """The 7 pitch classes of the key's scale, from the tonic up.

    ``form`` picks the minor scale (``"melodic"`` is the ascending melodic minor); it is ignored
    for major keys.

    >>> scale_pitch_classes(Key(9, "minor"), "harmonic")
    (9, 11, 0, 2, 4, 5, 8)
    """
    if key.mode == "major":
        steps = _SCALE_STEPS["major"]
    elif form in ("natural", "harmonic", "melodic"):
        steps = _SCALE_STEPS[form]
    else:
        raise ValueError(f"unknown scale form {form!r}; expected natural, harmonic or melodic")
    return tuple((key.tonic_pc + step) % 12 for step in steps)


def key_signature_sharps(key: Key) -> int:
    """Sharps (positive) or flats (negative) of the key signature; minor keys use their relative major."""
    major_pc = key.tonic_pc if key.mode == "major" else (key.tonic_pc + 3) % 12
    return _MAJOR_SHARPS[major_pc]


def midi_key_signature(key: Key) -> tuple[int, int]:
    """``(sharps, mode)`` as a MIDI key-signature event: mode 0 major, 1 minor."""
    return key_signature_sharps(key), 0 if key.mode == "major" else 1


def diatonic_chord(
    key: Key, degree: int, seventh: bool = False, *, raised_leading_tone: bool | None = None
) -> tuple[int, ...]:
    """Pitch classes (root, third, fifth[, seventh]) of the chord on scale degree 1..7.

    Chords are stacked thirds of the key's scale. In minor the natural minor is used, except that
    V and vii take the raised leading tone of the harmonic minor (V major, V7 a dominant seventh,
    vii a diminished triad). ``raised_leading_tone`` overrides that choice for every degree in
    minor, e.g. ``False`` for the subtonic VII of a circle-of-fifths sequence.

    >>> diatonic_chord(Key(9, "minor"), 5, seventh=True)  # E G# B D
    (4, 8, 11, 2)
    """
    if not isinstance(degree, int) or not 1 <= degree <= 7:
        raise ValueError(f"degree must be 1..7, got {degree!r}")
    if key.mode == "minor":
        raised = degree in (5, 7) if raised_leading_tone is None else raised_leading_tone
        scale = scale_pitch_classes(key, "harmonic" if raised else "natural")
    else:
        scale = scale_pitch_classes(key)
    count = 4 if seventh else 3
    return tuple(scale[(degree - 1 + 2 * i) % 7] for i in range(count))


_NUMERALS = ("I", "II", "III", "IV", "V", "VI", "VII")


def roman_numeral(key: Key, chord: tuple[int, ...], degree: int) -> str:
    """Roman numeral of ``chord`` (pitch classes, root first) on scale degree ``degree``.

    Case and symbols follow the chord's quality: ``V``, ``ii``, ``vii°``, ``III+``, ``V7``,
    ``ii7``, ``viiø7``, ``vii°7``, ``IMaj7``.

    >>> roman_numeral(Key(0), diatonic_chord(Key(0), 5, seventh=True), 5)
    'V7'
    """
    root = chord[0]
    third, fifth = (chord[1] - root) % 12, (chord[2] - root) % 12
    numeral = _NUMERALS[degree - 1]
    if (third, fifth) == (4, 7):
        text, quality = numeral, "major"
    elif (third, fifth) == (3, 7):
        text, quality = numeral.lower(), "minor"
    elif (third, fifth) == (3, 6):
        text, quality = numeral.lower() + "°", "diminished"
    elif (third, fifth) == (4, 8):
        text, quality = numeral + "+", "augmented"
    else:
        raise ValueError(f"chord {chord} is not a stack of thirds")
    if len(chord) == 3:
        return text
    seventh = (chord[3] - root) % 12
    if quality == "diminished":
        return text[:-1] + ("°7" if seventh == 9 else "ø7")
    if quality == "major" and seventh == 11:
        return text + "Maj7"
    return text + "7"


# Krumhansl & Kessler (1982) key profiles, tonic first: the one key estimate of the package.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# profiles of the 24 keys (C major .. B major, C minor .. B minor) over C..B, centred
_PROFILES = np.stack([np.roll(KK_MAJOR, t) for t in range(12)] + [np.roll(KK_MINOR, t) for t in range(12)])
_PROFILES = _PROFILES - _PROFILES.mean(axis=1, keepdims=True)  # (24, 12)


def key_from_histogram(histogram: np.ndarray) -> tuple[int, Mode]:
    """The Krumhansl-Schmuckler key of a pitch-class histogram ``(12,)``: ``(tonic_pc, mode)``.

    The histogram is correlated (Pearson) with the 24 rotations of the Krumhansl-Kessler major
    and minor profiles; the best-correlated key wins, ties going to major, then to the lower
    tonic. A histogram that correlates with no key (one constant in all 12 classes) gives
    ``(0, "major")``.
    """
    histogram = np.asarray(histogram, dtype=np.float64)
    if np.ptp(histogram) == 0:
        return 0, "major"
    h = histogram - histogram.mean()
    corr = (_PROFILES @ h) / (np.linalg.norm(_PROFILES, axis=1) * np.linalg.norm(h))
    best = int(np.argmax(corr))
    return best % 12, "major" if best < 12 else "minor"


def estimate_key(notes: np.ndarray) -> tuple[int, Mode]:
    """The key of a note array (``NOTE_DTYPE``): :func:`key_from_histogram` of its pitch classes.

    The histogram is duration-weighted (note counts when every duration is 0). Raises
    ``ValueError`` for an empty piece.
    """
    if notes.shape[0] == 0:
        raise ValueError("cannot estimate the key of a piece without notes")
    pc = np.asarray(notes["pitch"], dtype=np.int64) % 12
    weights = np.maximum(np.asarray(notes["duration"], dtype=np.float64), 0.0)
    histogram = np.bincount(pc, weights=weights, minlength=12)
    if histogram.sum() <= 0:
        histogram = np.bincount(pc, minlength=12).astype(np.float64)
    return key_from_histogram(histogram)


_NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def piece_key(meta: dict | None, notes: np.ndarray) -> str | None:
    """``"G major"``-style key of a piece: the key its generator names in ``meta``, else the
    Krumhansl-Schmuckler estimate of its notes (None without notes).

    None for a chromatic-scale exercise: it is filed under a key but plays all twelve pitch
    classes, so nothing in its notes names that key."""
    meta = meta or {}
    if meta.get("kind") == "chromatic":
        return None
    named = meta.get("key")
    if named:
        return parse_key(named).name
    if notes.shape[0] == 0:
        return None
    tonic, mode = estimate_key(notes)
    return f"{_NOTE_NAMES[tonic]} {mode}"
