"""What an embedder's flag can be trusted with, measured on material whose answer is known.

Every scoring run checks its own embedder against three sets besides the samples:

- *held-out* pieces (validation split of the bank's stages): their distances set the scale of rho
  (per stage of the nearest training piece, see ``score.stratified_ratio``) and the rho flag's
  threshold (a low quantile of their own rho);
- *probe copies*: training pieces of the bank, transposed and re-timed (:func:`probe_copy`), which
  a copy detector must flag;
- *fresh* material that must not be flagged: the test split of the bank's stages (new tunes in the
  bank's styles) and seeded random-walk melodies (:func:`fresh_melody`, out of every style).

If the embedder does not place the probe copies closer to the training data than the held-out
pieces (separation AUC below ``min_probe_auc``), its distance cannot detect copies and the rho
flag is switched off: flags then rest on the copied span alone, and the report says so. The
false-flag rate on fresh material is measured with the rule actually used.
"""

from __future__ import annotations

import numpy as np

from curricmusic.music.notes import make_notes

__all__ = ["probe_copy", "fresh_melody", "probe_indices", "PROBE_TRANSFORMS"]

#: (semitones, time factor) applied to probe copy i by ``i % 2``: up a minor third and half again as
#: slow, or down a tone and a quarter faster.
PROBE_TRANSFORMS = ((3, 1.5), (-2, 0.75))


def probe_indices(n_pieces: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(n_pieces)`` (all of them when fewer)."""
    if count <= 0 or n_pieces <= 0:
        return []
    if count >= n_pieces:
        return list(range(n_pieces))
    return [int(i) for i in np.linspace(0, n_pieces - 1, count).round().astype(int)]


def probe_copy(notes: np.ndarray, bar_len: float, i: int) -> tuple[np.ndarray, float]:
    """Training piece ``notes`` transposed and re-timed by :data:`PROBE_TRANSFORMS` ``[i % 2]``:
    ``(notes, bar length in quarters)`` (the bar stretches with the time)."""
    semitones, factor = PROBE_TRANSFORMS[i % len(PROBE_TRANSFORMS)]
    copy = np.array(notes, copy=True)
    copy["pitch"] = np.clip(copy["pitch"].astype(np.int64) + semitones, 0, 127)
    copy["onset"] = (copy["onset"] - (copy["onset"].min() if copy.shape[0] else 0.0)) * factor
    copy["duration"] = copy["duration"] * factor
    return copy, bar_len * factor


def fresh_melody(seed: int, n_notes: int = 48) -> np.ndarray:
    """A seeded random-walk melody (leaps up to a fourth, quarter to dotted-quarter notes): music
    in no training piece's style, which no flag should call a copy."""
    rng = np.random.default_rng([0x6E6F76, seed])
    pitches = 60 + np.cumsum(rng.choice([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5], size=n_notes)) % 24
    durations = rng.choice([0.5, 1.0, 1.5], size=n_notes)
    onsets = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    return make_notes(onsets, durations, pitches)
