"""MidiTok tokenization: one tokenizer for every stage, one merged piano stream per piece.

A piece becomes ``[BOS] + tokens + [EOS]`` as ``uint16`` ids. Each setting is passed to MidiTok
explicitly (its defaults change between releases), and the tokenizer's identity is a hash of
those settings plus MidiTok's version, so a cache built with another tokenizer is detected.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import Field, field_validator, model_validator
from symusic import Score

from curricmusic.common.errors import UserError
from curricmusic.common.frozen import FrozenModel
from curricmusic.music.kinds import KINDS, TokenizerKind, kind_named

__all__ = [
    "Tokenizer",
    "TokenizerSettings",
    "tokenizer_kind",
    "token_pitch",
    "token_type",
    "carries_pitch",
    "NOTE_START_TYPES",
    "PITCH_TYPES",
    "SPECIAL_TOKENS",
    "build_tokenizer",
    "tokenizer_hash",
    "save_tokenizer",
    "load_tokenizer",
    "encode_score",
    "decode_ids",
    "special_ids",
    "DEFAULT_TIME_SIGNATURES",
    "unwritable",
    "describe_unwritable",
    "unwritable_events",
]

SPECIAL_TOKENS = ("PAD", "BOS", "EOS")
# Token types (a MidiTok token's text before its first "_") that name a pitch. A note-start type
# begins a note at its pitch (``Pitch_60``; MIDILike's ``NoteOn_60``); ``NoteOff`` ends one; the
# rest belong to MidiTok options curricmusic leaves off (drums, pitch intervals) and are listed so
# that no token naming a pitch is ever taken for structure. Every layer asks these, never a list
# of its own.
NOTE_START_TYPES = ("Pitch", "NoteOn")
PITCH_TYPES = (*NOTE_START_TYPES, "NoteOff", "PitchDrum", "PitchIntervalTime", "PitchIntervalChord")
_TOKENIZER_FILE_KEY = "curricmusic"
#: The time signatures a tokenizer writes unless the curriculum names others (MidiTok's default set).
DEFAULT_TIME_SIGNATURES = ("4/4", "3/4", "2/4", "1/4", "5/4", "6/4", "3/8", "6/8", "12/8")
#: What MidiTok decodes when it has no time signature or tempo to write.
_DEFAULT_METER, _DEFAULT_QPM = (4, 4), 120.0


class Tokenizer(Protocol):
    """What curricmusic uses of a MidiTok tokenizer (``miditok.MusicTokenizer`` satisfies it)."""

    config: Any  # miditok.TokenizerConfig

    @property
    def vocab(self) -> dict[str, int]: ...

    def __len__(self) -> int: ...

    def encode(self, score: Score) -> Any: ...

    def decode(self, tokens: Sequence[Sequence[int]]) -> Score: ...

    def tokens_errors(self, tokens: Any) -> float: ...


class TokenizerSettings(FrozenModel):
    """The MidiTok tokenizer shared by every stage of a curriculum.

    ``kind`` is one of :data:`curricmusic.music.kinds.KINDS`. ``beat_res`` maps beat ranges
    ``"start-end"`` to positions per beat, as MidiTok's ``beat_res``. Tempos and time signatures
    are kept by default wherever the kind can write them (``use_tempos`` / ``use_time_signatures``
    left out); tempos are rounded to ``num_tempos`` values spread evenly over ``tempo_range``
    (every whole qpm from 40 to 250 by default). ``time_signatures`` lists the meters the
    tokenizer can write (``"n/d"``, d a power of two; default :data:`DEFAULT_TIME_SIGNATURES`):
    any other is dropped, and ``data prepare`` lists the pieces that have one. Only single-stream
    tokenizations are offered: curricmusic models one merged piano stream.
    """

    kind: str = "REMI"
    pitch_range: list[int] = Field(default_factory=lambda: [21, 109], min_length=2, max_length=2)
    num_velocities: int = Field(8, ge=1, le=127)
    beat_res: dict[str, int] = Field(default_factory=lambda: {"0-4": 24, "4-12": 4})
    use_tempos: bool = True
    use_time_signatures: bool = True
    use_rests: bool = False
    tempo_range: list[int] = Field(default_factory=lambda: [40, 250], min_length=2, max_length=2)
    num_tempos: int = Field(211, ge=2, le=1000)
    time_signatures: list[str] = Field(default_factory=lambda: list(DEFAULT_TIME_SIGNATURES), min_length=1)

    @field_validator("time_signatures")
    @classmethod
    def _check_time_signatures(cls, value: list[str]) -> list[str]:
        for text in value:
            numerator, _, denominator = str(text).partition("/")
            if not (numerator.isdigit() and denominator.isdigit()):
                raise ValueError(f"time signature {text!r} should look like '3/4' (beats / note value)")
            n, d = int(numerator), int(denominator)
            if not 1 <= n <= 32 or d not in (1, 2, 4, 8, 16, 32, 64):
                raise ValueError(f"time signature {text!r}: expected 1 to 32 beats of a note value 1, 2, 4, ... 64")
        if len(set(value)) != len(value):
            raise ValueError(f"time signatures repeat: {value}")
        return value

    def time_signature_range(self) -> dict[int, list[int]]:
        """``time_signatures`` as MidiTok's ``{denominator: [numerators]}``."""
        out: dict[int, list[int]] = {}
        for text in self.time_signatures:
            numerator, denominator = (int(x) for x in text.split("/"))
            out.setdefault(denominator, []).append(numerator)
        return out

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        """Tempos and time signatures on by default where the kind can write them."""
        if isinstance(data, dict):
            kind = KINDS.get(str(data.get("kind", "REMI")))
            if kind is not None:
                data = dict(data)
                data.setdefault("use_tempos", kind.tempos)
                data.setdefault("use_time_signatures", kind.time_signatures)
        return data

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        kind_named(value)
        return value

    @model_validator(mode="after")
    def _kind_supports(self) -> TokenizerSettings:
        kind = kind_named(self.kind)
        if self.use_tempos and not kind.tempos:
            raise ValueError(f"use_tempos: a {kind.name} tokenizer has no tempo tokens (set it to false)")
        if self.use_time_signatures and not kind.time_signatures:
            raise ValueError(f"use_time_signatures: a {kind.name} tokenizer has no time signatures (set it to false)")
        low, high = self.tempo_range
        if not 0 < low < high:
            raise ValueError(f"tempo_range must be [low, high] qpm with 0 < low < high, got {self.tempo_range}")
        return self

    @field_validator("pitch_range")
    @classmethod
    def _check_pitch_range(cls, value: list[int]) -> list[int]:
        low, high = value
        if not 0 <= low < high <= 128:
            raise ValueError(f"expected [low, high] with 0 <= low < high <= 128, got {value}")
        return value

    @field_validator("beat_res")
    @classmethod
    def _check_beat_res(cls, value: dict[str, int]) -> dict[str, int]:
        for span, resolution in value.items():
            parts = span.split("-")
            if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[0]) >= int(parts[1]):
                raise ValueError(f"beat range {span!r} should look like '0-4' (start < end, in beats)")
            if resolution < 1:
                raise ValueError(f"positions per beat for {span!r} must be >= 1")
        return value



def _miditok_version() -> str:
    return importlib.metadata.version("miditok")


def tokenizer_hash(settings: TokenizerSettings) -> str:
    """Identity of a tokenizer: its settings and the MidiTok release that implements them. The
    default time signatures leave the hash as it was before they could be set, so caches and
    checkpoints made then stay valid."""
    dumped = settings.model_dump(mode="json")
    if tuple(dumped["time_signatures"]) == DEFAULT_TIME_SIGNATURES:
        del dumped["time_signatures"]
    payload = json.dumps({"settings": dumped, "miditok": _miditok_version()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_tokenizer(settings: TokenizerSettings) -> Tokenizer:
    """A MidiTok tokenizer for ``settings`` (every option explicit)."""
    import miditok  # heavy: only where a tokenizer is built

    beat_res = {}
    for span, resolution in settings.beat_res.items():
        start, end = (int(x) for x in span.split("-"))
        beat_res[(start, end)] = resolution
    config = miditok.TokenizerConfig(
        pitch_range=tuple(settings.pitch_range),
        beat_res=beat_res,
        num_velocities=settings.num_velocities,
        special_tokens=list(SPECIAL_TOKENS),
        use_velocities=True,
        use_note_duration_programs=list(range(-1, 128)),
        use_chords=False,
        use_rests=settings.use_rests,
        use_tempos=settings.use_tempos,
        use_time_signatures=settings.use_time_signatures,
        num_tempos=settings.num_tempos,
        tempo_range=tuple(settings.tempo_range),
        time_signature_range=settings.time_signature_range(),
        log_tempos=False,
        use_sustain_pedals=False,
        use_pitch_bends=False,
        use_programs=False,
        one_token_stream_for_programs=False,
    )
    tokenizer = kind_named(settings.kind).build(config)
    if len(tokenizer) > np.iinfo(np.uint16).max:
        raise UserError(f"tokenizer vocabulary of {len(tokenizer)} does not fit uint16 token caches")
    return tokenizer


def tokenizer_kind(tokenizer: Tokenizer) -> TokenizerKind:
    """The registry entry of a tokenizer (by its MidiTok class)."""
    name = type(tokenizer).__name__
    if name not in KINDS:
        raise UserError(f"tokenizer kind {name!r} is not supported; expected one of: {', '.join(KINDS)}")
    return KINDS[name]


def token_type(token: str) -> str:
    """A MidiTok token's type: ``"Pitch"`` of ``"Pitch_60"``, ``"Bar"`` of ``"Bar_None"``."""
    return token.partition("_")[0]


def token_pitch(token: str) -> int | None:
    """The pitch a token starts a note at (``Pitch_60``, ``NoteOn_60``), else None."""
    prefix, _, value = token.partition("_")
    return int(value) if prefix in NOTE_START_TYPES else None


def carries_pitch(token: str) -> bool:
    """Whether a token names a pitch (any of :data:`PITCH_TYPES`), as opposed to time, meter,
    tempo, velocity, duration or a special token."""
    return token_type(token) in PITCH_TYPES


def special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """Ids of PAD, BOS and EOS in ``tokenizer``."""
    return {name: tokenizer.vocab[f"{name}_None"] for name in SPECIAL_TOKENS}


def save_tokenizer(settings: TokenizerSettings, path: str | Path) -> Path:
    """Write the tokenizer beside a cache: our settings (to rebuild it) and MidiTok's own params."""
    from curricmusic.common.atomic import write_json

    tokenizer = build_tokenizer(settings)
    payload = {
        _TOKENIZER_FILE_KEY: {
            "settings": settings.model_dump(mode="json"),
            "hash": tokenizer_hash(settings),
            "miditok_version": _miditok_version(),
            "vocab_size": len(tokenizer),
        },
        "vocab": tokenizer.vocab,
    }
    return write_json(path, payload)


def load_tokenizer(path: str | Path) -> tuple[Tokenizer, TokenizerSettings]:
    """Rebuild the tokenizer saved by :func:`save_tokenizer`; returns ``(tokenizer, settings)``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: tokenizer file not found")
    try:
        payload = json.loads(path.read_text())
        settings = TokenizerSettings.model_validate(payload[_TOKENIZER_FILE_KEY]["settings"])
    except (json.JSONDecodeError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a curricmusic tokenizer file ({exc.__class__.__name__})") from None
    tokenizer = build_tokenizer(settings)
    if tokenizer.vocab != payload.get("vocab", tokenizer.vocab):
        saved = payload[_TOKENIZER_FILE_KEY].get("miditok_version")
        raise UserError(
            f"{path}: this tokenizer was saved with MidiTok {saved}, whose vocabulary differs from "
            f"the installed MidiTok {_miditok_version()}; install that release or prepare the data again"
        )
    return tokenizer, settings


def encode_score(tokenizer: Tokenizer, score: Score) -> np.ndarray:
    """Token ids ``(n,)`` uint16 of a one-track (piano-reduced) score, framed by BOS and EOS."""
    sequences = tokenizer.encode(score)
    sequence = sequences[0] if isinstance(sequences, list) else sequences
    ids = sequence.ids
    specials = special_ids(tokenizer)
    out = np.empty(len(ids) + 2, dtype=np.uint16)
    out[0] = specials["BOS"]
    out[1:-1] = ids
    out[-1] = specials["EOS"]
    return out


def decode_ids(tokenizer: Tokenizer, ids: Any) -> Score:
    """A Score from token ids; special tokens (PAD, BOS, EOS) are dropped first."""
    specials = set(special_ids(tokenizer).values())
    kept = [int(i) for i in np.asarray(ids).ravel() if int(i) not in specials]
    return tokenizer.decode([kept])


def unwritable(tokenizer: Tokenizer, score: Score) -> dict[str, list]:
    """What of ``score``'s meter and tempo ``tokenizer`` cannot write, and so drops:
    ``{"time_signatures": ["8/4", ...], "tempos": [300.0, ...]}`` (each listed once, in order;
    empty lists when nothing is lost). A tokenizer that writes no time signatures (or tempos)
    loses every meter but 4/4 (every tempo but 120 qpm), what it decodes by default."""
    config = tokenizer.config
    meters: list[str] = []
    allowed = set(getattr(tokenizer, "time_signatures", [])) if config.use_time_signatures else {_DEFAULT_METER}
    for signature in score.time_signatures:
        pair = (int(signature.numerator), int(signature.denominator))
        text = f"{pair[0]}/{pair[1]}"
        if pair not in allowed and text not in meters:
            meters.append(text)
    tempos: list[float] = []
    low, high = (float(v) for v in config.tempo_range) if config.use_tempos else (_DEFAULT_QPM, _DEFAULT_QPM)
    for tempo in score.tempos:
        qpm = round(float(tempo.qpm), 1)
        if not low - 0.5 <= qpm <= high + 0.5 and qpm not in tempos:
            tempos.append(qpm)
    return {"time_signatures": meters, "tempos": tempos}


def describe_unwritable(tokenizer: Tokenizer, lost: dict[str, list]) -> str:
    """``lost`` (from :func:`unwritable`) in words, with why; empty when nothing is lost.

    For example "time signature 8/4 (not among the tokenizer's time_signatures) and tempo 300
    qpm (outside its tempo_range 40-250)".
    """
    config = tokenizer.config
    kind = type(tokenizer).__name__
    parts = []
    meters = lost.get("time_signatures") or []
    if meters:
        why = "not among the tokenizer's time_signatures" if config.use_time_signatures else f"this {kind} tokenizer writes no time signatures"
        parts.append(f"time signature{'s' if len(meters) > 1 else ''} {', '.join(meters)} ({why})")
    tempos = lost.get("tempos") or []
    if tempos:
        low, high = config.tempo_range
        why = f"outside its tempo_range {low}-{high}" if config.use_tempos else f"this {kind} tokenizer writes no tempos"
        parts.append(f"tempo{'s' if len(tempos) > 1 else ''} {', '.join(f'{t:g}' for t in tempos)} qpm ({why})")
    return " and ".join(parts)


def unwritable_events(tokenizer: Tokenizer, score: Score) -> str:
    """:func:`describe_unwritable` of :func:`unwritable`: what ``tokenizer`` drops of ``score``."""
    return describe_unwritable(tokenizer, unwritable(tokenizer, score))
