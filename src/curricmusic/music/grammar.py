"""The REMI grammar as a batched state machine: which tokens may come next, for every row at once.

REMI (MidiTok) writes a piece as::

    BOS Bar [TimeSig] Position [Tempo] Pitch Velocity Duration [Pitch Velocity Duration ...]
        Position ... Bar ... EOS

The constraint masks every token that would break that order, so every sample decodes: a Pitch
only after a Position or a finished note; Velocity right after Pitch and Duration right after
Velocity; positions strictly increasing inside a bar; pitches strictly ascending at one position
(MidiTok's own order, which also rules out doubled notes); EOS only after a finished note or a
bar. ``max_bars`` forbids opening another bar, and near the token budget only the current note
may finish before EOS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Kind", "TokenTable", "GrammarState", "RemiGrammar", "supports_grammar"]


class Kind:
    OTHER, PAD, BOS, EOS, BAR, TIMESIG, POSITION, TEMPO, PITCH, VELOCITY, DURATION = range(11)
    COUNT = 11


_PREFIX = {
    "PAD": Kind.PAD,
    "BOS": Kind.BOS,
    "EOS": Kind.EOS,
    "Bar": Kind.BAR,
    "TimeSig": Kind.TIMESIG,
    "Position": Kind.POSITION,
    "Tempo": Kind.TEMPO,
    "Pitch": Kind.PITCH,
    "Velocity": Kind.VELOCITY,
    "Duration": Kind.DURATION,
}

# kind of the last token -> kinds that may follow it
_FOLLOWERS = {
    Kind.BOS: (Kind.BAR,),
    Kind.BAR: (Kind.BAR, Kind.TIMESIG, Kind.POSITION, Kind.EOS),
    Kind.TIMESIG: (Kind.POSITION, Kind.BAR),
    Kind.POSITION: (Kind.TEMPO, Kind.PITCH),
    Kind.TEMPO: (Kind.PITCH,),
    Kind.PITCH: (Kind.VELOCITY,),
    Kind.VELOCITY: (Kind.DURATION,),
    Kind.DURATION: (Kind.PITCH, Kind.POSITION, Kind.BAR, Kind.EOS),
    Kind.EOS: (Kind.PAD,),
    Kind.PAD: (Kind.PAD,),
}


def supports_grammar(tokenizer) -> tuple[bool, str]:
    """Whether :class:`RemiGrammar` can constrain this tokenizer, and why not when it cannot."""
    name = type(tokenizer).__name__
    if name != "REMI":
        return False, f"the grammar constraint covers REMI only (this tokenizer is {name})"
    if tokenizer.config.use_rests or tokenizer.config.use_chords or tokenizer.config.use_programs:
        return False, "the grammar constraint does not cover rests, chords or programs"
    return True, ""


@dataclass(frozen=True)
class TokenTable:
    """What each vocabulary id is: its kind, and its position / pitch value (-1 when none)."""

    kind: np.ndarray  # (V,) int64
    position: np.ndarray  # (V,) int64
    pitch: np.ndarray  # (V,) int64
    eos: int
    pad: int
    bar: int

    @classmethod
    def from_tokenizer(cls, tokenizer) -> TokenTable:
        size = len(tokenizer)
        kind = np.full(size, Kind.OTHER, dtype=np.int64)
        position = np.full(size, -1, dtype=np.int64)
        pitch = np.full(size, -1, dtype=np.int64)
        for token, index in tokenizer.vocab.items():
            prefix, _, value = token.partition("_")
            kind[index] = _PREFIX.get(prefix, Kind.OTHER)
            if prefix == "Position":
                position[index] = int(value)
            elif prefix == "Pitch":
                pitch[index] = int(value)
        vocab = tokenizer.vocab
        return cls(kind, position, pitch, vocab["EOS_None"], vocab["PAD_None"], vocab["Bar_None"])


@dataclass
class GrammarState:
    """Per-row state ``(B,)`` tensors: last kind, position in the bar, last pitch there, bars."""

    last_kind: torch.Tensor
    position: torch.Tensor
    last_pitch: torch.Tensor
    bars: torch.Tensor
    tokens: torch.Tensor  # tokens emitted so far (prompt included)

    @property
    def done(self) -> torch.Tensor:
        return (self.last_kind == Kind.EOS) | (self.last_kind == Kind.PAD)


class RemiGrammar:
    """Masks and state updates for a batch; all tensors live on ``device``."""

    def __init__(self, tokenizer, device: torch.device | str = "cpu") -> None:
        table = TokenTable.from_tokenizer(tokenizer)
        self.table = table
        self.device = torch.device(device)
        big = np.iinfo(np.int64).max

        def tensor(array):
            return torch.as_tensor(array, device=self.device)

        self.kind = tensor(table.kind)
        follow = np.zeros((Kind.COUNT, table.kind.shape[0]), dtype=bool)
        for last, nexts in _FOLLOWERS.items():
            follow[last] = np.isin(table.kind, nexts)
        self.follow = tensor(follow)  # (K, V): kinds that may follow each kind
        # comparison values: a Position must exceed the bar's position, a Pitch the last pitch at
        # this position; every other token compares as +inf, so one comparison masks them all
        self.position_bound = tensor(np.where(table.kind == Kind.POSITION, table.position, big))
        self.pitch_bound = tensor(np.where(table.kind == Kind.PITCH, table.pitch, big))
        # what a token does to the state: -2 keeps it, -1 resets it, >= 0 sets it
        keep = np.full(table.kind.shape[0], -2, dtype=np.int64)
        resets_position = table.kind == Kind.BAR
        self.position_effect = tensor(np.where(table.kind == Kind.POSITION, table.position, np.where(resets_position, -1, keep)))
        resets_pitch = np.isin(table.kind, (Kind.BAR, Kind.POSITION))
        self.pitch_effect = tensor(np.where(table.kind == Kind.PITCH, table.pitch, np.where(resets_pitch, -1, keep)))
        self.is_bar = tensor(table.kind == Kind.BAR)
        self.opens_note = tensor(np.isin(table.kind, (Kind.POSITION, Kind.PITCH, Kind.BAR, Kind.TIMESIG, Kind.TEMPO)))
        # kinds after which a Pitch may come (when copy-blocking must look at the candidates)
        self.pitch_may_follow = tensor(np.isin(np.arange(Kind.COUNT), (Kind.POSITION, Kind.TEMPO, Kind.DURATION)))
        self.eos, self.pad = table.eos, table.pad

    def start(self, batch: int) -> GrammarState:
        """The state right after BOS."""
        def full(value):
            return torch.full((batch,), value, dtype=torch.int64, device=self.device)

        return GrammarState(full(Kind.BOS), full(-1), full(-1), full(0), full(1))

    def allowed(self, state: GrammarState, max_bars: int | None = None, tokens_left: int | None = None) -> torch.Tensor:
        """Boolean mask ``(B, V)`` of the tokens each row may emit next."""
        mask = self.follow[state.last_kind]  # (B, V), a fresh tensor
        mask &= self.position_bound > state.position.unsqueeze(1)
        mask &= self.pitch_bound > state.last_pitch.unsqueeze(1)
        if max_bars is not None:
            full = state.bars >= max_bars  # (B,)
            if bool(full.any()):
                mask &= ~(self.is_bar & full.unsqueeze(1))
        if tokens_left is not None and tokens_left <= 3:
            # only the note under way may finish: Pitch -> Velocity -> Duration -> EOS
            mask &= ~self.opens_note
        return mask

    def advance(self, state: GrammarState, tokens: torch.Tensor) -> GrammarState:
        """The state after each row emits ``tokens`` ``(B,)``; finished rows stay finished."""
        position = self.position_effect[tokens]
        pitch = self.pitch_effect[tokens]
        return GrammarState(
            last_kind=self.kind[tokens],
            position=torch.where(position == -2, state.position, position),
            last_pitch=torch.where(pitch == -2, state.last_pitch, pitch),
            bars=state.bars + self.is_bar[tokens],
            tokens=state.tokens + 1,
        )

    def replay(self, prompt: torch.Tensor) -> GrammarState:
        """The state after a prompt ``(B, P)`` that starts with BOS."""
        state = self.start(prompt.shape[0])
        for column in range(1, prompt.shape[1]):
            state = self.advance(state, prompt[:, column])
        return state
