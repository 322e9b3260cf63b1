"""MIDI -> mono audio, in-process and offline.

Two renderers share one API:

- ``"soundfont"`` (the default): General MIDI through `TinySoundFont
  <https://github.com/schellingb/TinySoundFont>`_ (the ``tinysoundfont`` bindings) with the
  TimGM6mb soundfont that pretty_midi ships. We drive the synthesizer ourselves from the score's
  notes in seconds: every note-on, note-off, controller and pitch-bend is applied at its exact
  sample, and the audio between two events is rendered in one call. The synth renders at any
  sample rate, so 48 kHz (what CLAP expects) needs no resampling.
- ``"sine"``: a plain additive synth (three harmonics, short attack, exponential decay, 50 ms
  release). Only used when asked for by name: tests, or a machine without a soundfont.

Both apply the sustain pedal the same way (a note released while CC64 is down sounds until the
pedal lifts; TinySoundFont ignores CC64), skip nothing but out-of-range pitches, and return
``last note end + TAIL_S`` seconds of audio, peak-normalised to ``PEAK_DBFS`` (silence stays
silence). An empty score renders to ``TAIL_S`` seconds of silence, so downstream code never sees a
zero-length clip. Rendering is deterministic: the same input gives the same samples.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from symusic import Score

from curricmusic.common.atomic import atomic_path
from curricmusic.common.errors import UserError
from curricmusic.music.notes import timing_problem

__all__ = [
    "RENDERERS",
    "RenderedAudio",
    "default_soundfont",
    "load_score",
    "render",
    "renderer_spec",
    "write_wav",
]

RENDERERS = ("soundfont", "sine")
TAIL_S = 1.0  # seconds kept after the last note-off for its release
MAX_SECONDS = 1800.0  # longest score render() accepts by default (30 min: 346 MB at 48 kHz)
PEAK_DBFS = -1.0
PEAK = float(10.0 ** (PEAK_DBFS / 20.0))  # 0.891
SILENCE = 1e-6  # a render whose peak is below this is treated as silence and returned as zeros
DRUM_CHANNEL = 9
MELODIC_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)
# Controllers forwarded to the synth: volume, pan, expression. CC64 (sustain) is applied to the
# note-offs instead, because TinySoundFont does not implement it.
FORWARDED_CONTROLS = (7, 10, 11)
TSF_INSTALL_HINT = "pip install --no-deps tinysoundfont"


@dataclass(frozen=True)
class RenderedAudio:
    """Mono float32 audio and what produced it.

    ``renderer`` is :func:`renderer_spec`: ``name``, ``version``, ``sample_rate`` and, for the
    soundfont renderer, ``soundfont`` (path) and ``soundfont_sha256``.
    """

    samples: np.ndarray  # (n,) float32, peak <= PEAK
    sample_rate: int
    renderer: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def default_soundfont() -> Path:
    """The TimGM6mb General MIDI soundfont bundled with pretty_midi."""
    try:
        import pretty_midi
    except ImportError as err:  # pragma: no cover - pretty_midi is a core dependency
        raise UserError(
            "no default soundfont: pretty_midi is not installed (pip install pretty_midi), "
            "or pass a .sf2 file"
        ) from err
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():  # pragma: no cover - depends on the pretty_midi build
        raise UserError(f"pretty_midi's soundfont is missing: {path}; pass a .sf2 file instead")
    return path


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _soundfont_path(soundfont: str | os.PathLike[str] | None) -> Path:
    if soundfont is None:
        return default_soundfont()
    path = Path(soundfont).expanduser()
    if not path.is_file():
        raise UserError(f"soundfont not found: {path} (expected an .sf2/.sf3 file)")
    return path.resolve()


def _tinysoundfont() -> Any:
    try:
        # Only the compiled synth core: the package's playback path would import pyaudio.
        from tinysoundfont import _tinysoundfont
    except ImportError as err:
        raise UserError(
            f"the soundfont renderer needs tinysoundfont: {TSF_INSTALL_HINT} "
            "(--no-deps: its declared pyaudio dependency is only for playback), "
            "or use renderer='sine'"
        ) from err
    return _tinysoundfont


def _tinysoundfont_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tinysoundfont")
    except PackageNotFoundError:  # pragma: no cover - imported but not installed as a dist
        return "unknown"


def renderer_spec(
    renderer: str = "soundfont",
    soundfont: str | os.PathLike[str] | None = None,
    sample_rate: int = 48000,
) -> dict[str, Any]:
    """What identifies a render: caches key on this dict (name, version, soundfont hash, rate)."""
    if renderer not in RENDERERS:
        raise UserError(f"unknown renderer {renderer!r}; expected one of {', '.join(RENDERERS)}")
    if int(sample_rate) <= 0:
        raise UserError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if renderer == "sine":
        return {"name": "sine", "version": 1, "sample_rate": int(sample_rate)}
    _tinysoundfont()
    path = _soundfont_path(soundfont)
    stat = path.stat()
    return {
        "name": "soundfont",
        "version": f"tinysoundfont-{_tinysoundfont_version()}/1",
        "soundfont": str(path),
        "soundfont_sha256": _sha256_of(str(path), stat.st_size, stat.st_mtime_ns),
        "sample_rate": int(sample_rate),
    }


def load_score(midi: str | os.PathLike[str] | bytes | Score) -> Score:
    """A tick-based Score from a path, MIDI bytes or a Score; UserError names a bad file.

    A file with a zero or invalid tempo is refused, as ``data prepare`` skips it: its notes
    have no duration in seconds.
    """
    if isinstance(midi, Score):
        return midi
    if isinstance(midi, bytes | bytearray | memoryview):
        try:
            score = Score.from_midi(bytes(midi))
        except Exception as err:  # symusic raises RuntimeError/ValueError on corrupt data
            raise UserError(f"not a readable MIDI file (<bytes>): {err}") from err
        where = "(<bytes>)"
    else:
        path = Path(midi)
        if not path.is_file():
            raise UserError(f"MIDI file not found: {path}")
        try:
            score = Score.from_midi(path.read_bytes())
        except Exception as err:
            raise UserError(f"not a readable MIDI file: {path}: {err}") from err
        where = str(path)
    problem = timing_problem(score)
    if problem:
        raise UserError(f"{problem} {where}")
    return score


@dataclass
class _Part:
    """One track's performance in seconds (sustain pedal already applied to the offsets)."""

    program: int
    is_drum: bool
    onsets: np.ndarray  # (n,) seconds
    offsets: np.ndarray  # (n,) seconds, > onsets
    pitches: np.ndarray  # (n,) int
    velocities: np.ndarray  # (n,) int, 1..127
    controls: list[tuple[float, int, int]]  # (time, number, value)
    bends: list[tuple[float, int]]  # (time, value in 0..16383)


def _apply_sustain(onsets: np.ndarray, offsets: np.ndarray, pedals: np.ndarray) -> np.ndarray:
    """Hold each note released while the pedal is down until the pedal lifts."""
    offsets = offsets.copy()
    for start, end in pedals:
        held = (offsets >= start) & (offsets < end) & (onsets < end)
        offsets[held] = end
    return offsets


def _parts(score: Score) -> list[_Part]:
    seconds = score.to("second")
    parts = []
    for track in seconds.tracks:
        if track.note_num() == 0:
            continue
        notes = track.notes.numpy()
        onsets = notes["time"].astype(np.float64)
        offsets = onsets + np.maximum(notes["duration"].astype(np.float64), 1e-3)
        if len(track.pedals):
            pedal = track.pedals.numpy()
            spans = np.stack([pedal["time"], pedal["time"] + pedal["duration"]], axis=1)
            offsets = _apply_sustain(onsets, offsets, spans.astype(np.float64))
        controls = []
        if len(track.controls):
            cc = track.controls.numpy()
            controls = [
                (float(t), int(n), int(v))
                for t, n, v in zip(cc["time"], cc["number"], cc["value"], strict=True)
                if int(n) in FORWARDED_CONTROLS
            ]
        bends = []
        if len(track.pitch_bends):
            pb = track.pitch_bends.numpy()
            bends = [
                (float(t), int(np.clip(int(v) + 8192, 0, 16383)))
                for t, v in zip(pb["time"], pb["value"], strict=True)
            ]
        pitches = notes["pitch"].astype(np.int64)
        keep = (pitches >= 0) & (pitches <= 127)
        parts.append(
            _Part(
                program=int(track.program),
                is_drum=bool(track.is_drum),
                onsets=onsets[keep],
                offsets=offsets[keep],
                pitches=pitches[keep],
                velocities=np.clip(notes["velocity"].astype(np.int64)[keep], 1, 127),
                controls=controls,
                bends=bends,
            )
        )
    return [part for part in parts if part.onsets.size]


def _length(parts: list[_Part], sample_rate: int) -> int:
    end = max((float(part.offsets.max()) for part in parts), default=0.0)
    return int(np.ceil((end + TAIL_S) * sample_rate))


def _assign_channels(parts: list[_Part]) -> list[int]:
    """Drums on channel 9; each distinct melodic program gets its own channel.

    With more than 15 distinct programs the extra ones share channels (and so a program);
    General MIDI files rarely have that many.
    """
    programs: dict[int, int] = {}
    channels = []
    for part in parts:
        if part.is_drum:
            channels.append(DRUM_CHANNEL)
            continue
        if part.program not in programs:
            programs[part.program] = MELODIC_CHANNELS[len(programs) % len(MELODIC_CHANNELS)]
        channels.append(programs[part.program])
    return channels


def _render_soundfont(parts: list[_Part], sample_rate: int, soundfont: Path) -> np.ndarray:
    tsf = _tinysoundfont()
    synth = tsf.SoundFont(str(soundfont))
    synth.set_output(tsf.OutputMode.Mono, sample_rate, 0.0)
    synth.set_max_voices(256)
    n = _length(parts, sample_rate)
    out = np.zeros(n, dtype=np.float32)
    # Events as (sample, order, kind, channel, a, b); at one sample: controls, then offs, then ons.
    events: list[tuple[int, int, int, int, int, int]] = []
    for part, channel in zip(parts, _assign_channels(parts), strict=True):
        preset = part.program
        if synth.get_preset_index(128 if part.is_drum else 0, preset) < 0:
            preset = 0  # the soundfont lacks this program: General MIDI piano / standard kit
        synth.channel_set_preset_number(channel, preset, part.is_drum)
        for time, number, value in part.controls:
            events.append((int(round(time * sample_rate)), 0, 0, channel, number, value))
        for time, value in part.bends:
            events.append((int(round(time * sample_rate)), 0, 1, channel, value, 0))
        on = np.round(part.onsets * sample_rate).astype(np.int64)
        off = np.maximum(np.round(part.offsets * sample_rate).astype(np.int64), on + 1)
        for start, stop, pitch, velocity in zip(
            on.tolist(), off.tolist(), part.pitches.tolist(), part.velocities.tolist(), strict=True
        ):
            events.append((stop, 1, 2, channel, pitch, 0))
            events.append((start, 2, 3, channel, pitch, velocity))
    events.sort()
    position = 0
    for sample, _, kind, channel, a, b in events:
        sample = min(sample, n)
        if sample > position:
            synth.render(out[position:sample].view(np.uint8))
            position = sample
        if kind == 0:
            synth.channel_midi_control(channel, a, b)
        elif kind == 1:
            synth.channel_set_pitch_wheel(channel, a)
        elif kind == 2:
            synth.channel_note_off(channel, a)
        else:
            synth.channel_note_on(channel, a, b / 127.0)
    if position < n:
        synth.render(out[position:].view(np.uint8))
    return out


def _render_sine(parts: list[_Part], sample_rate: int) -> np.ndarray:
    """Additive synth: harmonics 1..3 at 1, 1/2, 1/4; 5 ms attack, decay, 50 ms release."""
    n = _length(parts, sample_rate)
    out = np.zeros(n, dtype=np.float64)
    attack, release = 0.005, 0.05
    for part in parts:
        if part.is_drum:
            continue  # unpitched: a sine would only add noise at arbitrary pitches
        for onset, offset, pitch, velocity in zip(
            part.onsets, part.offsets, part.pitches, part.velocities, strict=True
        ):
            start = int(round(onset * sample_rate))
            held = offset - onset
            length = min(int(np.ceil((held + release) * sample_rate)), n - start)
            if length <= 0:
                continue
            t = np.arange(length) / sample_rate
            frequency = 440.0 * 2.0 ** ((int(pitch) - 69) / 12.0)
            wave = np.zeros(length)
            for harmonic, weight in ((1, 1.0), (2, 0.5), (3, 0.25)):
                if harmonic * frequency < sample_rate / 2:
                    wave += weight * np.sin(2 * np.pi * harmonic * frequency * t)
            envelope = np.minimum(t / attack, 1.0) * np.exp(-t / 1.5)
            envelope *= np.clip((held + release - t) / release, 0.0, 1.0)
            out[start : start + length] += (int(velocity) / 127.0) * envelope * wave
    return out.astype(np.float32)


def _normalise(samples: np.ndarray) -> np.ndarray:
    samples = np.nan_to_num(samples.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak < SILENCE:
        return np.zeros_like(samples)
    return (samples * np.float32(PEAK / peak)).astype(np.float32)


def render(
    midi: str | os.PathLike[str] | bytes | Score,
    sample_rate: int = 48000,
    renderer: str = "soundfont",
    soundfont: str | os.PathLike[str] | None = None,
    max_seconds: float = MAX_SECONDS,
) -> RenderedAudio:
    """Render ``midi`` (path, bytes or Score) to mono float32 audio at ``sample_rate``.

    Length: ``ceil((last note-off + TAIL_S) * sample_rate)`` samples, the sustain pedal
    extending note-offs. Peak-normalised to ``PEAK_DBFS``; silence stays zeros. A score longer
    than ``max_seconds`` is a :class:`UserError` (a damaged file can claim a note hours away).
    """
    spec = renderer_spec(renderer, soundfont, sample_rate)
    parts = _parts(load_score(midi))
    end = max((float(part.offsets.max()) for part in parts), default=0.0)
    if end > max_seconds:
        where = f"{midi}: " if isinstance(midi, str | os.PathLike) else ""
        raise UserError(
            f"{where}the score lasts {end:.0f} s, more than the {max_seconds:.0f} s render limit"
        )
    if renderer == "sine":
        samples = _render_sine(parts, spec["sample_rate"])
    else:
        samples = _render_soundfont(parts, spec["sample_rate"], Path(spec["soundfont"]))
    return RenderedAudio(_normalise(samples), spec["sample_rate"], spec)


def write_wav(path: str | os.PathLike[str], audio: RenderedAudio) -> Path:
    """Atomically write ``audio`` as 16-bit PCM WAV."""
    import soundfile

    with atomic_path(path, suffix=".wav") as tmp:
        soundfile.write(tmp, audio.samples, audio.sample_rate, subtype="PCM_16", format="WAV")
    return Path(path)
