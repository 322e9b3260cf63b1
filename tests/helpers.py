"""MIDI fixtures shared by tests: seeded melodies and one broken file of every kind."""

from __future__ import annotations

import numpy as np

from curricmusic.music.notes import make_notes, notes_to_score


def melody_midi(seed: int, n_notes: int = 24, program: int = 0) -> bytes:
    """A seeded random-walk melody in quarter and eighth notes, as MIDI bytes."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([-2, -1, 1, 2, 3, -3], size=n_notes)
    pitches = 60 + np.cumsum(steps) % 24
    durations = rng.choice([0.5, 1.0], size=n_notes)
    onsets = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    score = notes_to_score(make_notes(onsets, durations, pitches), program=program)
    return score.dumps_midi()


def broken_midis() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, a fragment of the skip reason the pipeline must give)."""
    good = melody_midi(0)
    tempo_at = good.find(b"\xff\x51\x03")
    zero_tempo = good[: tempo_at + 3] + b"\x00\x00\x00" + good[tempo_at + 6 :]
    long_onsets = [float(i) for i in range(12)] + [200_000.0]  # the last note after ~28 hours
    long_score = notes_to_score(make_notes(long_onsets, [1.0] * 13, [60 + i for i in range(13)]))
    no_notes = notes_to_score(make_notes([], [], []))
    return {
        "empty.mid": (b"", "empty file"),
        "text.mid": (b"this is not a midi file\n" * 4, "not a MIDI file"),
        "truncated.mid": (good[: len(good) // 2], "corrupt or truncated"),
        "header_only.mid": (b"MThd\x00\x00\x00\x06\x00\x01\x00\x00\x01\xe0", "no notes"),
        "no_notes.mid": (no_notes.dumps_midi(), "no notes"),
        "zero_tempo.midi": (zero_tempo, "tempo"),
        "absurd_length.mid": (long_score.dumps_midi(), "absurd length"),
    }
