"""The grammar mask as one precomputed table: each row's mask is the AND of a few table rows.

:meth:`Grammar.allowed` builds the ``(B, V)`` mask of the next tokens with a dozen array
operations a step. Every term of it depends on one small piece of a row's state (the last token
type, the position in the bar, the last pitch at the onset, the meter, the tempo, the bars and
tokens left), so each term is one row of a small precomputed table indexed by that piece.
:class:`GrammarTable` stacks those tables into one ``(R, V)`` boolean array; a step computes an
``(B, F)`` index (one row per term, F about 9) and the mask is ``table[index].all(axis=1)``:
one gather, which a compiled decoding step does inside its graph. It equals
:meth:`Grammar.allowed` exactly (tests/music/test_grammar_table.py).

Kinds whose notes end with a NoteOff (MIDILike) keep a set of open notes per row, which no small
table covers; :func:`GrammarTable.supports` says so and their mask stays :meth:`Grammar.allowed`.
"""

from __future__ import annotations

import numpy as np

from curricmusic.music.grammar import Grammar, GrammarState

__all__ = ["GrammarTable"]


class GrammarTable:
    """The (R, V) table of a grammar's mask terms, and the (B, F) rows of each state."""

    @staticmethod
    def supports(grammar: Grammar) -> bool:
        """True unless the kind tracks open notes (NoteOff tokens)."""
        return not grammar.kind.note_offs

    def __init__(self, grammar: Grammar) -> None:
        if not self.supports(grammar):
            raise ValueError(f"the {grammar.kind.name} grammar tracks open notes: no table covers its mask")
        self.grammar = grammar
        table, V = grammar.table, grammar.follow.shape[1]
        every = np.ones(V, dtype=bool)
        terms: dict[str, np.ndarray] = {"follow": grammar.follow}  # (K, V), by the last token type
        if grammar.has_positions:
            top_position = int(table.position.max())
            # a Position must exceed the bar's last one (-1 after a Bar): row p + 1
            terms["position"] = np.stack([grammar.position_low > p for p in range(-1, top_position + 1)])
            # ... and stay inside the bar: row = beats per bar of the time signature
            self.max_beats = int(max(table.ts_beats.max(), 4))
            terms["bar_end"] = np.stack([grammar.position_high < b * table.ticks_per_beat for b in range(self.max_beats + 1)])
        terms["pitch"] = np.stack([self._pitch_row(p) for p in range(-1, 128)])  # row last pitch + 1
        if grammar.ts_ids.size:
            terms["meter"] = np.stack([self._meter_row(i) for i in range(grammar.ts_ids.size + 1)])
            self.meter_row = np.zeros(V, dtype=np.int64)
            self.meter_row[grammar.ts_ids] = np.arange(1, grammar.ts_ids.size + 1)
        if grammar.tempo_ids.size:
            terms["tempo"] = np.stack([every, self._without(grammar.tempo_ids)])  # row: tempo written
        if grammar.kind.bar_tokens:
            terms["bars"] = np.stack([every, self._without(grammar.bar_ids)])  # row: no bar left
        else:
            self.max_shift = int(table.shift[grammar.shift_ids].max()) if grammar.shift_ids.size else 0
            shift_ticks = table.shift[grammar.shift_ids]
            rows = []
            for cap in range(-1, self.max_shift + 1):  # row cap + 1: shifts of at most cap ticks
                row = every.copy()
                row[grammar.shift_ids] = shift_ticks <= cap
                rows.append(row)
            terms["shift_room"] = np.stack(rows)
            terms["note_room"] = np.stack([self._without(grammar.pitch_ids), every])  # row: time left in the bars
        # tokens left t <= max_need: only tokens from which EOS can still be reached; row max_need + 1: all
        terms["budget"] = np.stack([grammar.need <= t for t in range(grammar.max_need + 1)] + [every])
        terms["eos"] = np.stack([every, self._without(np.array([grammar.eos]))])  # row: EOS banned
        self.names = tuple(terms)
        sizes = [len(rows) for rows in terms.values()]
        self.offsets = dict(zip(self.names, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
        self.table = np.concatenate(list(terms.values())).astype(bool)  # (R, V)

    def _without(self, ids: np.ndarray) -> np.ndarray:
        row = np.ones(self.grammar.follow.shape[1], dtype=bool)
        row[ids] = False
        return row

    def _pitch_row(self, last_pitch: int) -> np.ndarray:
        grammar = self.grammar
        row = grammar.pitch_low > last_pitch  # pitches ascend at one onset
        if grammar.zero_shift_ids.size:  # a zero shift needs a higher pitch to follow
            row[grammar.zero_shift_ids] &= last_pitch < grammar.top_pitch
        return row

    def _meter_row(self, meter: int) -> np.ndarray:
        """Row 0: no meter yet, any time signature; row i: the i-th one is in force."""
        grammar = self.grammar
        row = np.ones(grammar.follow.shape[1], dtype=bool)
        if meter:
            row[grammar.ts_ids] = grammar.kind.bar_tokens & (np.arange(grammar.ts_ids.size) == meter - 1)
        return row

    @property
    def n_terms(self) -> int:
        return len(self.names)

    def index(
        self, state: GrammarState, max_bars: int | None = None, tokens_left: int | None = None, eos_banned: bool = False
    ) -> np.ndarray:
        """Rows of :attr:`table` ``(B, F)`` int64 whose AND is each row's mask (see :meth:`mask`)."""
        grammar = self.grammar
        B = state.last_kind.shape[0]
        columns: dict[str, np.ndarray | int] = {"follow": state.last_kind}
        if grammar.has_positions:
            columns["position"] = np.minimum(state.position + 1, self.rows_of("position") - 1)
            columns["bar_end"] = np.minimum(state.beats, self.max_beats)
        columns["pitch"] = state.last_pitch + 1
        if grammar.ts_ids.size:
            columns["meter"] = np.where(state.meter >= 0, self.meter_row[np.maximum(state.meter, 0)], 0)
        if grammar.tempo_ids.size:
            columns["tempo"] = state.tempo_set.astype(np.int64)
        if grammar.kind.bar_tokens:
            columns["bars"] = (state.bars >= max_bars).astype(np.int64) if max_bars is not None else 0
        elif max_bars is None:
            columns["shift_room"], columns["note_room"] = self.max_shift + 1, 1
        else:
            left = state.bar_start + (max_bars - state.bars) * grammar.bar_length(state) - state.time  # (B,)
            # a shift of s ticks takes s * scale units: s <= left / scale (or < when a note must follow)
            room = left if grammar.shift_may_end else left - 1
            columns["shift_room"] = np.clip(room // state.scale, -1, self.max_shift) + 1
            columns["note_room"] = (left > 0).astype(np.int64)
        budget = grammar.max_need + 1 if tokens_left is None else min(max(tokens_left, 0), grammar.max_need + 1)
        columns["budget"], columns["eos"] = budget, int(eos_banned)
        out = np.empty((B, self.n_terms), dtype=np.int64)
        for f, name in enumerate(self.names):
            out[:, f] = columns[name]
            out[:, f] += self.offsets[name]
        return out

    def rows_of(self, name: str) -> int:
        """How many table rows term ``name`` has."""
        f = self.names.index(name)
        end = self.offsets[self.names[f + 1]] if f + 1 < self.n_terms else self.table.shape[0]
        return end - self.offsets[name]

    def mask(
        self, state: GrammarState, max_bars: int | None = None, tokens_left: int | None = None, eos_banned: bool = False
    ) -> np.ndarray:
        """The mask ``(B, V)``: equal to ``Grammar.allowed`` (with EOS removed when ``eos_banned``)."""
        return self.table[self.index(state, max_bars, tokens_left, eos_banned)].all(axis=1)
