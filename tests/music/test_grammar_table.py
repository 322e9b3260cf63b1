"""The grammar mask as a table lookup equals the grammar's own mask, state by state."""

from __future__ import annotations

import numpy as np
import pytest

from curricmusic.config import TokenizerSettings
from curricmusic.music.grammar import Grammar
from curricmusic.music.grammar_table import GrammarTable
from curricmusic.music.kinds import KINDS
from curricmusic.music.tokenizers import build_tokenizer

TABLE_KINDS = [name for name, kind in KINDS.items() if not kind.note_offs]


@pytest.mark.parametrize("kind", TABLE_KINDS)
@pytest.mark.parametrize(("max_bars", "budget"), [(2, 90), (4, 240), (None, 60)])
def test_the_table_gives_the_grammars_mask_at_every_state(kind, max_bars, budget):
    grammar = Grammar(build_tokenizer(TokenizerSettings(kind=kind)))
    table = GrammarTable(grammar)
    rng = np.random.default_rng(len(kind) + budget)
    state = grammar.start(16)
    checked = 0
    for step in range(budget):
        left = budget - step
        mask = grammar.allowed(state, max_bars, left)
        np.testing.assert_array_equal(table.mask(state, max_bars, left), mask)
        banned = mask.copy()
        banned[:, grammar.eos] = False
        np.testing.assert_array_equal(table.mask(state, max_bars, left, eos_banned=True), banned)
        checked += int((~state.done).sum())
        scores = np.where(mask, rng.gumbel(size=mask.shape), -np.inf)
        scores[:, grammar.eos] -= 3.0
        grammar.advance(state, np.where(state.done, grammar.pad, scores.argmax(axis=1)))
        if state.done.all():
            break
    assert checked > 200  # many live states compared, not only the start


def test_time_signatures_and_tempos_are_terms_of_the_table():
    grammar = Grammar(build_tokenizer(TokenizerSettings()))
    table = GrammarTable(grammar)
    assert {"follow", "position", "bar_end", "pitch", "meter", "tempo", "bars", "budget", "eos"} <= set(table.names)
    assert table.table.shape == (sum(table.rows_of(name) for name in table.names), len(grammar.table.kind))
    state = grammar.start(2)
    assert table.index(state, 4, 100).shape == (2, table.n_terms)


def test_kinds_with_open_notes_have_no_table():
    grammar = Grammar(build_tokenizer(TokenizerSettings(kind="MIDILike")))
    assert not GrammarTable.supports(grammar)
    with pytest.raises(ValueError, match="open notes"):
        GrammarTable(grammar)
