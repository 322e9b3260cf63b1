"""A prompt for ``generate --prompt``: the last bars of a MIDI file as tokens, and what a user
should know about them.

:func:`load_prompt` takes the last ``--prompt-bars`` bars (by default as many as fit, up to
:data:`DEFAULT_PROMPT_BARS`), refuses a prompt longer than half the model's context with a line
that names what to change (fewer bars, or a model trained with a longer ``seq_len`` when not even
one bar fits), and warns when the prompt would lose something without a word: a window that
starts no note (only notes held from before it), or a meter or tempo the tokenizer cannot write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from symusic import Score

from curricmusic.common.errors import UserError
from curricmusic.music.notes import bar_length, piano_reduction
from curricmusic.music.tokenizers import Tokenizer, encode_score, unwritable_events

__all__ = ["Prompt", "load_prompt", "prompt_ids", "read_prompt", "DEFAULT_PROMPT_BARS"]

#: Bars of the prompt continued when ``--prompt-bars`` is not given (fewer when they do not fit).
DEFAULT_PROMPT_BARS = 4


@dataclass
class Prompt:
    ids: np.ndarray  # (P,) BOS + the prompt's tokens, no EOS
    bars: int  # bars of the file the prompt holds
    warnings: list[str] = field(default_factory=list)


def read_prompt(midi_path: str | Path) -> Score:
    """The prompt file as one piano stream (one-line errors for a missing or broken file)."""
    path = Path(midi_path)
    if not path.is_file():
        raise UserError(f"{path}: prompt file not found")
    data = path.read_bytes()
    if not data.startswith(b"MThd"):
        raise UserError(f"{path}: the prompt is not a MIDI file (no MThd header)")
    try:
        score = piano_reduction(Score.from_midi(data))
    except Exception as exc:  # noqa: BLE001 - symusic raises several types
        raise UserError(f"{path}: the prompt MIDI cannot be read ({exc})") from None
    if score.note_num() == 0:
        raise UserError(f"{path}: the prompt has no notes")
    return score


def _last_bars(score: Score, bars: int) -> Score:
    """The score from the start of its ``bars``-th bar from the end (notes that start there or later)."""
    bar_ticks = int(round(bar_length(score) * score.tpq))
    n_bars = -(-int(score.end()) // bar_ticks)
    start = max(0, n_bars - bars) * bar_ticks
    if start:
        score = score.clip(start, score.end(), clip_end=False).shift_time(-start)
    return score


def prompt_ids(tokenizer: Tokenizer, midi_path: str | Path, bars: int) -> np.ndarray:
    """Tokens ``(P,)`` of the last ``bars`` bars of a MIDI file: BOS + notes, no EOS."""
    return encode_score(tokenizer, _last_bars(read_prompt(midi_path), bars))[:-1]


def _too_long(path: Path, bars: int, n_tokens: int, capacity: int, fits: int) -> UserError:
    limit = capacity // 2
    if fits:
        return UserError(
            f"{path}: the last {bars} bars of the prompt are {n_tokens} tokens, more than half the model's context "
            f"({limit} of {capacity}); use --prompt-bars {fits} or fewer"
        )
    return UserError(
        f"{path}: even one bar of the prompt is {n_tokens} tokens, more than half the model's context ({limit} of "
        f"{capacity} tokens, the run's train.seq_len); continue it with a model trained with a seq_len of "
        f"{2 * n_tokens} or more"
    )


def _warnings(tokenizer: Tokenizer, path: Path, window: Score, bars: int) -> list[str]:
    out = []
    if window.note_num() == 0:
        out.append(
            f"{path}: the last {bars} bar(s) of the prompt start no note (notes held from earlier bars are not carried "
            "over), so the model continues from silence; use more --prompt-bars"
        )
    lost = unwritable_events(tokenizer, window)  # the window keeps the meter and tempo in force at its start
    if lost:
        out.append(f"{path}: the tokenizer drops the prompt's {lost}; the samples will not keep them")
    return out


def load_prompt(tokenizer: Tokenizer, midi_path: str | Path, bars: int | None, capacity: int) -> Prompt:
    """The prompt's tokens for a model of ``capacity`` tokens of context: the last ``bars`` bars
    (None: the most of :data:`DEFAULT_PROMPT_BARS` that fit in half the context), with warnings."""
    path = Path(midi_path)
    score = read_prompt(path)
    limit = capacity // 2
    sizes: dict[int, np.ndarray] = {}

    def ids_of(k: int) -> np.ndarray:
        if k not in sizes:
            sizes[k] = encode_score(tokenizer, _last_bars(score, k))[:-1]
        return sizes[k]

    wanted = DEFAULT_PROMPT_BARS if bars is None else bars
    chosen = wanted
    if len(ids_of(wanted)) > limit:
        fits = next((k for k in range(wanted - 1, 0, -1) if len(ids_of(k)) <= limit), 0)
        if bars is not None or not fits:
            n_tokens = len(ids_of(wanted)) if fits else len(ids_of(1))
            raise _too_long(path, wanted, n_tokens, capacity, fits)
        chosen = fits
    prompt = Prompt(ids_of(chosen), chosen, _warnings(tokenizer, path, _last_bars(score, chosen), chosen))
    if chosen < wanted:
        prompt.warnings.insert(0, f"{path}: continuing its last {chosen} bar(s) (the last {wanted} do not fit in half the model's context, {limit} tokens)")
    return prompt
