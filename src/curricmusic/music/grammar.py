"""Token grammars as batched state machines: which tokens may come next, for every row at once.

One engine serves every tokenizer kind of :mod:`curricmusic.music.kinds`; the kind's entry says
which token types may follow which. On top of the type order the engine keeps what each kind's
decoder assumes, so every sample decodes to what was sampled:

- time only moves forward: REMI positions strictly increase inside a bar and stay inside the bar
  of the current time signature; pitches strictly ascend at one onset (MidiTok's own order, which
  also rules out doubled notes);
- meter and tempo hold: once a time signature is set (by the prompt or the first one sampled) a
  sample keeps it, and it has at most one tempo, so a 3/4 prompt at 72 qpm continues in 3/4 at
  72 qpm; TSD and MIDILike write a time signature only at the start;
- MIDILike notes open once and close after they started, and EOS waits until every note is closed;
- ``max_bars`` stops new bars (REMI: no further Bar; time-based kinds: no time shift past the last
  allowed bar line, no note on it), and near the token budget only what can still finish before
  EOS is allowed (the shortest way to EOS of each token type, from the followers table).

Time is tracked in integer units of ``1 / (16 L)`` of a whole note, with ``L`` the ticks per beat
of the tokenizer (the least common multiple of its resolutions), so beats of every time
signature denominator up to 16 are whole numbers of units. :class:`Tracker` follows tokens (used
for bar counting and copy-blocking even when the grammar mask is off); :class:`Grammar` adds the
masks. State is plain NumPy ``(B,)`` arrays; masks are ``(B, V)`` booleans.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from curricmusic.music.kinds import TokenizerKind
from curricmusic.music.tokenizers import NOTE_START_TYPES, Tokenizer, special_ids, tokenizer_kind

__all__ = [
    "Kind",
    "TokenTable",
    "GrammarState",
    "Tracker",
    "Grammar",
    "supports_grammar",
    "count_bars",
    "token_onsets",
]


class Kind:
    """Token types by role. A MIDILike ``NoteOn`` is a ``PITCH`` (it starts a note)."""

    OTHER, PAD, BOS, EOS, BAR, TIMESIG, POSITION, TEMPO, PITCH, VELOCITY, DURATION, TIMESHIFT, NOTEOFF, REST = range(14)
    COUNT = 14


_PREFIX = {
    "PAD": Kind.PAD,
    "BOS": Kind.BOS,
    "EOS": Kind.EOS,
    "Bar": Kind.BAR,
    "TimeSig": Kind.TIMESIG,
    "Position": Kind.POSITION,
    "Tempo": Kind.TEMPO,
    **{name: Kind.PITCH for name in NOTE_START_TYPES},
    "Velocity": Kind.VELOCITY,
    "Duration": Kind.DURATION,
    "TimeShift": Kind.TIMESHIFT,
    "NoteOff": Kind.NOTEOFF,
    "Rest": Kind.REST,
}
_BIG = np.iinfo(np.int64).max // 4


def supports_grammar(tokenizer: Tokenizer) -> tuple[bool, str]:
    """Whether :class:`Grammar` can constrain this tokenizer, and why not when it cannot."""
    kind = tokenizer_kind(tokenizer)
    config = tokenizer.config
    if config.use_rests or config.use_chords or config.use_programs:
        return False, f"the {kind.name} grammar does not cover rests, chords or programs"
    table = TokenTable.from_tokenizer(tokenizer)
    if table.bad_denominators:
        return False, f"time signature denominators {table.bad_denominators} are not powers of two up to 16"
    return True, ""


def _beats(value: str, ticks_per_beat: int) -> int:
    """Ticks of a MidiTok time value ``"beats.ticks.resolution"``."""
    beats, ticks, resolution = (int(x) for x in value.split("."))
    return beats * ticks_per_beat + ticks * ticks_per_beat // resolution


@dataclass(frozen=True)
class TokenTable:
    """What each vocabulary id is: its kind and values (``-1`` where it has none).

    ``position`` and ``shift`` are in ticks of ``ticks_per_beat`` per beat (of the time
    signature's denominator); ``ts_beats`` / ``ts_scale`` give a TimeSig's beats per bar and units
    per tick (``16 / denominator``).
    """

    kind: np.ndarray  # (V,) int64
    position: np.ndarray  # (V,) int64
    pitch: np.ndarray  # (V,) int64, Pitch and NoteOn
    off_pitch: np.ndarray  # (V,) int64, NoteOff
    shift: np.ndarray  # (V,) int64, TimeShift and Rest
    ts_beats: np.ndarray  # (V,) int64
    ts_scale: np.ndarray  # (V,) int64
    ticks_per_beat: int
    eos: int
    pad: int
    bos: int
    bad_denominators: tuple[int, ...] = ()

    @property
    def units_per_quarter(self) -> int:
        return 4 * self.ticks_per_beat

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> TokenTable:
        config = tokenizer.config
        resolutions = [int(r) for r in config.beat_res.values()]
        positions = int(getattr(config, "max_num_pos_per_beat", 0) or max(resolutions))
        ticks_per_beat = math.lcm(positions, *resolutions)
        size = len(tokenizer)
        kind = np.full(size, Kind.OTHER, dtype=np.int64)
        values = {name: np.full(size, -1, dtype=np.int64) for name in ("position", "pitch", "off", "shift", "beats", "scale")}
        bad: set[int] = set()
        for token, index in tokenizer.vocab.items():
            prefix, _, value = token.partition("_")
            kind[index] = _PREFIX.get(prefix, Kind.OTHER)
            if prefix == "Position":
                values["position"][index] = int(value) * ticks_per_beat // positions
            elif prefix in NOTE_START_TYPES:
                values["pitch"][index] = int(value)
            elif prefix == "NoteOff":
                values["off"][index] = int(value)
            elif prefix in ("TimeShift", "Rest"):
                values["shift"][index] = _beats(value, ticks_per_beat)
            elif prefix == "TimeSig":
                numerator, denominator = (int(x) for x in value.split("/"))
                if denominator > 16 or 16 % denominator:
                    bad.add(denominator)
                    denominator = 4
                values["beats"][index] = numerator
                values["scale"][index] = 16 // denominator
        special = special_ids(tokenizer)
        return cls(
            kind, values["position"], values["pitch"], values["off"], values["shift"], values["beats"], values["scale"],
            ticks_per_beat, special["EOS"], special["PAD"], special["BOS"], tuple(sorted(bad)),
        )  # fmt: skip


@dataclass
class GrammarState:
    """Per-row state, ``(B,)`` arrays (``(B, 128)`` for the open notes of MIDILike).

    ``time`` in units (``units_per_quarter`` per quarter note). With Bar tokens, ``bar_start`` is
    the start of the current bar and ``bars`` the Bars written; without them, ``bar_start`` is the
    bar line where the current time signature began and ``bars`` the bars before it.
    """

    last_kind: np.ndarray
    time: np.ndarray
    bar_start: np.ndarray
    bars: np.ndarray
    beats: np.ndarray  # beats per bar of the current time signature
    scale: np.ndarray  # units per tick: 16 / denominator
    position: np.ndarray  # ticks into the bar of the last Position (REMI), -1 after a Bar
    last_pitch: np.ndarray  # last pitch at the current onset, -1 when none
    meter: np.ndarray  # token id of the time signature in force, -1 when none yet
    tempo_set: np.ndarray  # bool: a tempo has been written
    open: np.ndarray  # (B, 128) bool: sounding notes (MIDILike)
    onset: np.ndarray  # (B, 128) int64: their onsets

    @property
    def done(self) -> np.ndarray:
        return (self.last_kind == Kind.EOS) | (self.last_kind == Kind.PAD)

    @property
    def n_open(self) -> np.ndarray:
        return self.open.sum(axis=1)


class Tracker:
    """Follows tokens row by row: time, bars, meter, tempo and open notes of each row."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.kind: TokenizerKind = tokenizer_kind(tokenizer)
        self.table = TokenTable.from_tokenizer(tokenizer)

    def start(self, batch: int) -> GrammarState:
        """The state right after BOS: 4/4, no tempo, time 0."""

        def full(value: int) -> np.ndarray:
            return np.full(batch, value, dtype=np.int64)

        return GrammarState(
            last_kind=full(Kind.BOS), time=full(0), bar_start=full(0), bars=full(0), beats=full(4), scale=full(4),
            position=full(-1), last_pitch=full(-1), meter=full(-1), tempo_set=np.zeros(batch, dtype=bool),
            open=np.zeros((batch, 128), dtype=bool), onset=np.zeros((batch, 128), dtype=np.int64),
        )  # fmt: skip

    def bar_length(self, state: GrammarState) -> np.ndarray:
        """Units per bar of each row's time signature ``(B,)``."""
        return state.beats * self.table.ticks_per_beat * state.scale

    def bars_opened(self, state: GrammarState) -> np.ndarray:
        """Bars begun so far ``(B,)``: Bar tokens written, or the bar of the current time + 1."""
        if self.kind.bar_tokens:
            return state.bars.copy()
        return state.bars + (state.time - state.bar_start) // self.bar_length(state) + 1

    def quarters(self, state: GrammarState) -> np.ndarray:
        """The current time of each row in quarter notes ``(B,)``."""
        return state.time / self.table.units_per_quarter

    def advance(self, state: GrammarState, tokens: np.ndarray) -> None:
        """Each row emits ``tokens`` ``(B,)``; the state is updated in place."""
        table = self.table
        tokens = np.asarray(tokens, dtype=np.int64)
        kinds = table.kind[tokens]
        rows = np.flatnonzero(kinds == Kind.BAR)
        if rows.size:
            started = state.bars[rows] > 0
            state.bar_start[rows] += np.where(started, self.bar_length(state)[rows], 0)
            state.bars[rows] += 1
            state.time[rows] = state.bar_start[rows]
            state.position[rows] = -1
            state.last_pitch[rows] = -1
        rows = np.flatnonzero(kinds == Kind.TIMESIG)
        if rows.size:
            if not self.kind.bar_tokens:  # the new meter counts bars from here (a partial bar counts)
                length = self.bar_length(state)[rows]
                state.bars[rows] += -((state.bar_start[rows] - state.time[rows]) // length)
                state.bar_start[rows] = state.time[rows]
            state.beats[rows] = table.ts_beats[tokens[rows]]
            state.scale[rows] = table.ts_scale[tokens[rows]]
            state.meter[rows] = tokens[rows]
        rows = np.flatnonzero(kinds == Kind.POSITION)
        if rows.size:
            state.position[rows] = table.position[tokens[rows]]
            state.time[rows] = state.bar_start[rows] + state.position[rows] * state.scale[rows]
            state.last_pitch[rows] = -1
        rows = np.flatnonzero((kinds == Kind.TIMESHIFT) | (kinds == Kind.REST))
        if rows.size:
            step = table.shift[tokens[rows]] * state.scale[rows]
            state.time[rows] += step
            state.last_pitch[rows] = np.where(step > 0, -1, state.last_pitch[rows])
        rows = np.flatnonzero(kinds == Kind.PITCH)
        if rows.size:
            pitches = table.pitch[tokens[rows]]
            state.last_pitch[rows] = pitches
            if self.kind.note_offs:
                state.open[rows, pitches] = True
                state.onset[rows, pitches] = state.time[rows]
        if self.kind.note_offs:
            rows = np.flatnonzero(kinds == Kind.NOTEOFF)
            if rows.size:
                state.open[rows, table.off_pitch[tokens[rows]]] = False
        state.tempo_set |= kinds == Kind.TEMPO
        state.last_kind = kinds

    def replay(self, prompt: np.ndarray, batch: int = 1) -> GrammarState:
        """The state of ``batch`` rows after a prompt ``(P,)`` that starts with BOS."""
        state = self.start(batch)
        for token in np.asarray(prompt[1:], dtype=np.int64):
            self.advance(state, np.full(batch, token, dtype=np.int64))
        return state


class Grammar(Tracker):
    """Masks of the tokens each row may emit next, for the tokenizer's kind."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__(tokenizer)
        ok, why = supports_grammar(tokenizer)
        if not ok:
            raise ValueError(why)
        table, kind = self.table, self.kind
        kinds = table.kind
        # the kinds' follower tables call every note start "Pitch" (a MIDILike NoteOn too)
        names = {name: code for name, code in _PREFIX.items() if code != Kind.PITCH} | {"Pitch": Kind.PITCH}
        followers = kind.followers_for(bool((kinds == Kind.TIMESIG).any()))
        graph: dict[int, set[int]] = {names[a]: {names[b] for b in bs} for a, bs in followers.items()}
        graph[Kind.BOS] = {names[b] for b in kind.starts}
        for end in kind.ends:
            graph.setdefault(names[end], set()).add(Kind.EOS)
        graph[Kind.EOS] = {Kind.PAD}
        graph[Kind.PAD] = {Kind.PAD}
        follow = np.zeros((Kind.COUNT, kinds.shape[0]), dtype=bool)
        for last, nexts in graph.items():
            follow[last] = np.isin(kinds, list(nexts))
        self.follow = follow  # (K, V)
        # fewest tokens from each kind to EOS (EOS itself included), on the followers graph; a
        # Tempo is no way there (a sample has at most one, so it may be spent already)
        to_end = np.full(Kind.COUNT, _BIG, dtype=np.int64)
        to_end[Kind.EOS] = to_end[Kind.PAD] = 0
        queue = deque([Kind.EOS])
        while queue:
            done = queue.popleft()
            for last, nexts in graph.items():
                if done in nexts and to_end[last] > to_end[done] + 1 and done != Kind.TEMPO:
                    to_end[last] = to_end[done] + 1
                    queue.append(last)
        self.need = np.minimum(to_end[kinds] + 1, _BIG)  # (V,) tokens to spend from emitting each token to EOS
        self.max_need = int(self.need[np.isin(kinds, list(graph))].max()) + 2
        self.position_low = np.where(kinds == Kind.POSITION, table.position, _BIG)  # must exceed the bar's position
        self.position_high = np.where(kinds == Kind.POSITION, table.position, -1)  # must stay inside the bar
        self.pitch_low = np.where(kinds == Kind.PITCH, table.pitch, _BIG)  # must exceed the last pitch at the onset
        self.has_positions = bool((kinds == Kind.POSITION).any())
        self.bar_ids = np.flatnonzero(kinds == Kind.BAR)
        self.pitch_ids = np.flatnonzero(kinds == Kind.PITCH)
        self.shift_ids = np.flatnonzero(kinds == Kind.TIMESHIFT)
        self.ts_ids = np.flatnonzero(kinds == Kind.TIMESIG)
        self.tempo_ids = np.flatnonzero(kinds == Kind.TEMPO)
        self.off_ids = np.flatnonzero(kinds == Kind.NOTEOFF)
        self.eos, self.pad = table.eos, table.pad
        self.shift_may_end = "TimeShift" in kind.ends
        self.zero_shift_ids = self.shift_ids[table.shift[self.shift_ids] == 0]
        self.top_pitch = int(table.pitch.max())
        # kinds after which a note may start (copy-blocking looks at the candidate pitches there)
        self.pitch_may_follow_kind = np.asarray(follow[:, self.pitch_ids].any(axis=1))  # (K,)

    def pitch_may_follow(self, state: GrammarState) -> np.ndarray:
        """Rows ``(B,)`` bool whose next token may start a note."""
        return self.pitch_may_follow_kind[state.last_kind] & ~state.done

    def allowed(self, state: GrammarState, max_bars: int | None = None, tokens_left: int | None = None) -> np.ndarray:
        """Boolean mask ``(B, V)`` of the tokens each row may emit next."""
        mask = self.follow[state.last_kind]  # (B, V), a fresh array
        if self.has_positions:
            mask &= self.position_low[None, :] > state.position[:, None]
            mask &= self.position_high[None, :] < (state.beats * self.table.ticks_per_beat)[:, None]
        mask &= self.pitch_low[None, :] > state.last_pitch[:, None]
        if self.zero_shift_ids.size:  # a zero shift (Structured chords) needs a higher pitch to follow
            mask[:, self.zero_shift_ids] &= (state.last_pitch < self.top_pitch)[:, None]
        if self.ts_ids.size:
            locked = state.meter[:, None] >= 0
            if self.kind.bar_tokens:  # REMI repeats the time signature after every Bar: the same one
                mask[:, self.ts_ids] &= ~locked | (self.ts_ids[None, :] == state.meter[:, None])
            else:
                mask[:, self.ts_ids] &= ~locked
        if self.tempo_ids.size:
            mask[:, self.tempo_ids] &= ~state.tempo_set[:, None]
        if self.kind.note_offs:
            mask[:, self.pitch_ids] &= ~state.open[:, self.table.pitch[self.pitch_ids]]
            offs = self.table.off_pitch[self.off_ids]
            mask[:, self.off_ids] &= state.open[:, offs] & (state.onset[:, offs] < state.time[:, None])
            mask[:, self.eos] &= np.asarray(state.n_open == 0)
        if max_bars is not None:
            self._limit_bars(mask, state, max_bars)
        if tokens_left is not None:
            self._limit_tokens(mask, state, tokens_left)
        return mask

    def _limit_bars(self, mask: np.ndarray, state: GrammarState, max_bars: int) -> None:
        if self.kind.bar_tokens:
            mask[:, self.bar_ids] &= (state.bars < max_bars)[:, None]
            return
        limit = state.bar_start + (max_bars - state.bars) * self.bar_length(state)  # the last allowed bar line
        left = limit - state.time  # (B,)
        shifts = self.table.shift[self.shift_ids][None, :] * state.scale[:, None]  # (B, S)
        if self.shift_may_end:  # a shift may reach the bar line and the piece end there
            mask[:, self.shift_ids] &= shifts <= left[:, None]
        else:  # a note must follow the shift (Structured): it must land before the bar line
            mask[:, self.shift_ids] &= shifts < left[:, None]
        mask[:, self.pitch_ids] &= (left > 0)[:, None]

    def _limit_tokens(self, mask: np.ndarray, state: GrammarState, tokens_left: int) -> None:
        """Only tokens after which EOS can still be reached within ``tokens_left`` tokens."""
        if not self.kind.note_offs:
            if tokens_left <= self.max_need:
                mask &= self.need[None, :] <= tokens_left
            return
        # MIDILike: every open note still needs its NoteOff, after a TimeShift if it began now,
        # and the piece can only end on a NoteOff or a TimeShift
        n_open = state.n_open  # (B,)
        shift = (state.open & (state.onset == state.time[:, None])).any(axis=1).astype(np.int64)  # (B,)
        if tokens_left > n_open.max() + 6:
            return
        close = n_open + shift  # (B,) tokens that close every note
        cost = np.repeat((2 + np.maximum(close, 1))[:, None], mask.shape[1], axis=1)  # (B, V): Velocity, Tempo, ...
        cost[:, self.pitch_ids] = (n_open + 5)[:, None]  # NoteOn Velocity TimeShift, every NoteOff, EOS
        cost[:, self.shift_ids] = (n_open + 2)[:, None]
        cost[:, self.off_ids] = (close + 1)[:, None]
        cost[:, self.eos] = 1
        mask &= cost <= tokens_left


def count_bars(tokenizer: Tokenizer, ids: np.ndarray) -> int:
    """Bars a token sequence (BOS first, or not) spans, counted from the kind's own tokens.

    REMI: the Bar tokens. Kinds without Bar tokens: the bar of the last note's onset + 1 (0 when
    there is no note), from the time shifts and the time signature.
    """
    tracker = Tracker(tokenizer)
    ids = np.asarray(ids, dtype=np.int64)
    if tracker.kind.bar_tokens:
        return int(np.sum(tracker.table.kind[ids] == Kind.BAR))
    state = tracker.start(1)
    bars = 0
    for token in ids:
        if token == tracker.table.bos:
            continue
        tracker.advance(state, np.array([token]))
        if tracker.table.kind[token] == Kind.PITCH:
            bars = int(tracker.bars_opened(state)[0])
    return bars


def token_onsets(tokenizer: Tokenizer, ids: np.ndarray) -> np.ndarray:
    """The time in quarter notes after each token of ``ids`` (BOS first) ``(len(ids),)``."""
    tracker = Tracker(tokenizer)
    state = tracker.start(1)
    out = np.zeros(len(ids), dtype=np.float64)
    for i, token in enumerate(np.asarray(ids, dtype=np.int64)[1:], start=1):
        tracker.advance(state, np.array([token]))
        out[i] = tracker.quarters(state)[0]
    return out
