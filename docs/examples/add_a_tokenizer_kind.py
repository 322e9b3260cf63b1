"""A worked example: ``REMINoVelocity``, REMI without velocity tokens.

Lead sheets and many score-derived corpora carry no dynamics; a tokenization without Velocity
tokens spends none of the model's context on them. MidiTok's REMI writes no Velocity tokens when
its config says ``use_velocities=False`` (every note then decodes at one velocity), so the kind is
a named REMI with that setting and a grammar in which Pitch is followed by Duration.

In the package the entry goes to ``music/kinds.py``, with one line in ``KINDS``
(``KINDS = {kind.name: kind for kind in (REMI, TSD, MIDILIKE, STRUCTURED, REMI_NO_VELOCITY)}``);
then ``[tokenizer] kind = "REMINoVelocity"`` is accepted by curricula, and the grammar engine,
bar counting and generation follow from the entry. tests/docs/test_examples.py registers it and
checks that real pieces encode without velocities, that every token MidiTok writes is one the
grammar allows, and that every sequence the grammar allows decodes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from curricmusic.music.kinds import TokenizerKind


@dataclass(frozen=True)
class NoVelocityKind(TokenizerKind):
    """A kind whose MidiTok tokenizer writes no Velocity tokens."""

    def build(self, config: Any) -> Any:
        import miditok  # heavy: only where a tokenizer is built

        config = copy.deepcopy(config)
        config.use_velocities = False
        # a subclass named like the kind, so that a built tokenizer names its kind
        tokenizer_class = type(self.name, (miditok.REMI,), {})
        return tokenizer_class(config)


REMI_NO_VELOCITY = NoVelocityKind(
    name="REMINoVelocity",
    tempos=True,
    time_signatures=True,
    bar_tokens=True,  # a Bar token opens every bar, as in REMI
    timesig_every_bar=True,
    starts=("Bar",),
    followers={
        "Bar": ("Bar", "TimeSig", "Position"),
        "TimeSig": ("Bar", "Position"),
        "Position": ("Tempo", "Pitch"),
        "Tempo": ("Pitch", "Position", "Bar"),
        "Pitch": ("Duration",),  # REMI has Velocity here
        "Duration": ("Pitch", "Position", "Bar"),
    },
    ends=("Bar", "TimeSig", "Duration"),
    note="REMI without dynamics: Bar, TimeSig, Position, Tempo, then Pitch Duration per note",
)
