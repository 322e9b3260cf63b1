"""Tokenizer kinds: one entry per MidiTok tokenization a curriculum may use, in one registry.

An entry says how to build the tokenizer (the MidiTok class of the same name), which optional
token types it can write (tempos, time signatures), and its grammar: which token types may
follow which, where a piece may start and end, and how time moves. Bars are counted from the
kind's own tokens: REMI writes a ``Bar`` token per bar; TSD, MIDILike and Structured have none,
so their bars are counted from time (``TimeShift`` values against the time signature).

Adding a kind is one :class:`TokenizerKind` and one line in :data:`KINDS`; the grammar engine
(:mod:`curricmusic.music.grammar`) and bar counting follow from the entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TokenizerKind", "KINDS", "kind_named", "REMI", "TSD", "MIDILIKE", "STRUCTURED"]


@dataclass(frozen=True)
class TokenizerKind:
    """What curricmusic needs to know about one tokenization.

    ``followers`` maps a token type (the prefix before ``_``) to the types that may come next;
    ``starts`` are the types allowed right after BOS and ``ends`` those after which EOS may come.
    """

    name: str
    tempos: bool
    time_signatures: bool
    bar_tokens: bool  # a Bar token opens every bar (else bars are counted from time)
    starts: tuple[str, ...]
    followers: dict[str, tuple[str, ...]] = field(hash=False)
    ends: tuple[str, ...]
    note_offs: bool = False  # notes end with a NoteOff token instead of carrying a Duration
    timesig_every_bar: bool = False  # a TimeSig token follows every Bar (REMI with time signatures)
    note: str = ""

    def build(self, config: Any) -> Any:
        """The MidiTok tokenizer of this kind for a ``miditok.TokenizerConfig``."""
        import miditok  # heavy (pulls in its tokenizer classes); only where a tokenizer is built

        return getattr(miditok, self.name)(config)

    def followers_for(self, time_signatures: bool) -> dict[str, tuple[str, ...]]:
        """The followers table for a tokenizer that does (or does not) write time signatures."""
        table = dict(self.followers)
        if self.timesig_every_bar and time_signatures:
            table["Bar"] = ("TimeSig",)  # MidiTok writes the bar's time signature after each Bar
        return table


REMI = TokenizerKind(
    name="REMI",
    tempos=True,
    time_signatures=True,
    bar_tokens=True,
    timesig_every_bar=True,
    starts=("Bar",),
    followers={
        "Bar": ("Bar", "TimeSig", "Position"),
        "TimeSig": ("Bar", "Position"),
        "Position": ("Tempo", "Pitch"),
        "Tempo": ("Pitch", "Position", "Bar"),
        "Pitch": ("Velocity",),
        "Velocity": ("Duration",),
        "Duration": ("Pitch", "Position", "Bar"),
    },
    ends=("Bar", "TimeSig", "Duration"),
    note="Bar, TimeSig, Position, Tempo, then Pitch Velocity Duration per note",
)

TSD = TokenizerKind(
    name="TSD",
    tempos=True,
    time_signatures=True,
    bar_tokens=False,
    starts=("TimeSig", "Tempo", "Pitch", "TimeShift"),
    followers={
        "TimeSig": ("Tempo", "Pitch", "TimeShift"),
        "Tempo": ("Pitch", "TimeShift"),
        "TimeShift": ("Pitch", "TimeShift", "Tempo"),
        "Pitch": ("Velocity",),
        "Velocity": ("Duration",),
        "Duration": ("Pitch", "TimeShift"),
    },
    ends=("Duration", "TimeShift"),
    note="TimeShift moves time; Pitch Velocity Duration per note; TimeSig only at the start",
)

MIDILIKE = TokenizerKind(
    name="MIDILike",
    tempos=True,
    time_signatures=True,
    bar_tokens=False,
    note_offs=True,
    starts=("TimeSig", "Tempo", "Pitch", "TimeShift"),
    followers={
        "TimeSig": ("Tempo", "Pitch", "TimeShift"),
        "Tempo": ("Pitch", "NoteOff", "TimeShift"),
        "TimeShift": ("NoteOff", "Pitch", "TimeShift", "Tempo"),
        "Pitch": ("Velocity",),  # NoteOn
        "Velocity": ("Pitch", "TimeShift"),
        "NoteOff": ("NoteOff", "Pitch", "TimeShift"),
    },
    ends=("NoteOff", "TimeShift"),
    note="NoteOn Velocity ... TimeShift ... NoteOff; every note closed before EOS",
)

STRUCTURED = TokenizerKind(
    name="Structured",
    tempos=False,
    time_signatures=False,
    bar_tokens=False,
    starts=("TimeShift",),
    followers={
        "TimeShift": ("Pitch",),
        "Pitch": ("Velocity",),
        "Velocity": ("Duration",),
        "Duration": ("TimeShift",),
    },
    ends=("Duration",),
    note="TimeShift Pitch Velocity Duration per note, 4/4 assumed",
)

KINDS: dict[str, TokenizerKind] = {kind.name: kind for kind in (REMI, TSD, MIDILIKE, STRUCTURED)}


def kind_named(name: str) -> TokenizerKind:
    """The registry entry of a kind name (a ValueError listing the kinds when unknown)."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown tokenizer kind {name!r}; expected one of: {', '.join(KINDS)}") from None
