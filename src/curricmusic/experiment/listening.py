"""Files for listening: a WAV and a piano-roll PNG beside each of a cell's first samples.

The runner calls :func:`render_listening` on a cell's ``samples/`` before it scores novelty, so
``novelty.html`` and ``report.html`` can play each sample in an ``<audio>`` element and show its
piano roll, from files beside the MIDI (relative links, no network). Only the first
``LISTEN_PER_CELL`` samples of a cell are rendered: the report lists a few samples per arm and
links the novelty pages, which list the rest. Audio is rendered at 22.05 kHz mono 16-bit
(about 2.6 MB a minute), enough to judge music by ear.
"""

from __future__ import annotations

from pathlib import Path

from curricmusic.common.readback import read_json
from curricmusic.reporting.pianoroll import write_piano_roll

__all__ = ["LISTEN_PER_CELL", "LISTEN_SAMPLE_RATE", "render_listening"]

LISTEN_PER_CELL = 4
LISTEN_SAMPLE_RATE = 22050


def render_listening(samples_dir: Path, n: int = LISTEN_PER_CELL, sample_rate: int = LISTEN_SAMPLE_RATE) -> list[dict]:
    """WAV and piano roll of the first ``n`` samples of ``samples_dir`` (those missing only).

    Returns one row per sample: ``file``, ``wav`` and ``png`` (names in the folder; None where
    a file could not be made) and, when rendering failed, ``error``. A sample the generator
    already rendered (``--wav``) keeps its WAV.
    """
    from curricmusic.novelty.render import render, write_wav  # the audio stack: heavy

    manifest_path = Path(samples_dir) / "manifest.json"
    if not manifest_path.is_file():
        return []
    rows = []
    manifest = read_json(manifest_path, {"samples": list}, hint="`curricmusic run --resume` samples again")
    assert manifest is not None
    for sample in manifest["samples"][:n]:
        midi = Path(samples_dir) / Path(sample["file"]).name  # a name in the folder, never a path out of it
        wav, png = midi.with_suffix(".wav"), midi.with_suffix(".png")
        row: dict = {"file": midi.name, "wav": None, "png": None}
        try:
            if not wav.is_file():
                write_wav(wav, render(midi, sample_rate=sample_rate))
            row["wav"] = wav.name
            if not png.is_file():
                write_piano_roll(midi, png)
            row["png"] = png.name
        except Exception as exc:  # noqa: BLE001 - a sample that cannot be rendered must not fail the cell
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows
