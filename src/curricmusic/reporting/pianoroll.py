"""A small piano-roll PNG of a piece, for reading a sample by eye beside its audio.

Time runs left to right in quarter notes with a line at every bar; each note is a bar from onset
to offset at its pitch, shaded by velocity. The pitch axis spans the piece's own range (at least
an octave), labelled at every C.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from curricmusic.common.atomic import atomic_path

__all__ = ["piano_roll_png", "write_piano_roll"]

_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def piano_roll_png(notes: np.ndarray, bar: float = 4.0, width: float = 5.0, height: float = 1.6) -> bytes:
    """PNG bytes of the piano roll of ``notes`` (a :data:`~curricmusic.music.notes.NOTE_DTYPE`
    array, times in quarters) with a line every ``bar`` quarters; ``width`` x ``height`` inches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    if notes.shape[0]:
        onset, end = notes["onset"], notes["onset"] + np.maximum(notes["duration"], 1e-3)
        pitch = notes["pitch"].astype(float)
        boxes = np.stack(
            [np.stack([onset, pitch - 0.4], 1), np.stack([end, pitch - 0.4], 1),
             np.stack([end, pitch + 0.4], 1), np.stack([onset, pitch + 0.4], 1)], axis=1,
        )  # (N, 4, 2): one rectangle per note  # fmt: skip
        shade = 0.35 + 0.65 * np.clip(notes["velocity"] / 127.0, 0, 1)
        ax.add_collection(PolyCollection(list(boxes), facecolors=plt.cm.Blues(shade), edgecolors="none"))
        low, high = int(pitch.min()), int(pitch.max())
        if high - low < 12:
            low, high = (low + high) // 2 - 6, (low + high) // 2 + 6
        span = float(end.max())
        ax.set_xlim(0, span)
        ax.set_ylim(low - 1, high + 1)
        for x in np.arange(0.0, span + 1e-9, bar if bar > 0 else 4.0):
            ax.axvline(x, color="#bbbbbb", lw=0.5, zorder=0)
        cs = [p for p in range(low - 1, high + 2) if p % 12 == 0]
        ax.set_yticks(cs, [f"{_NAMES[p % 12]}{p // 12 - 1}" for p in cs])
    else:
        ax.text(0.5, 0.5, "no notes", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.tick_params(labelsize=6, length=2)
    ax.set_xlabel("quarters", fontsize=6, labelpad=1)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def write_piano_roll(midi: str | os.PathLike[str], png: str | os.PathLike[str]) -> Path:
    """Write the piano roll of the MIDI file ``midi`` to ``png`` (atomically)."""
    from symusic import Score

    from curricmusic.music.notes import bar_length, score_notes

    score = Score(str(midi))
    data = piano_roll_png(score_notes(score), bar_length(score))
    with atomic_path(png, suffix=".png") as tmp:
        Path(tmp).write_bytes(data)
    return Path(png)
