"""What a run measures at its evaluations beyond validation losses: the key share of held-out pieces.

The *key share* of a stage is the mean, over its held-out pieces that have a key, of the share of
the model's next-pitch probability that falls on the key's seven diatonic pitch classes
(:func:`curricmusic.model.expectation.scale_mass` of the expected pitch-class profile over the
piece's first ``seq_len`` tokens; a uniform spread puts 7/12 there, the probe_scales model 0.77).
A pacing asks for it as a mastery criterion (``measured()``), and ``[train] measure_key_share``
logs it for every stage. The pieces are the validation split's, or the same seeded subset the
in-training evaluations use (``[train] eval_pieces``), the same for every arm and seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from curricmusic.common.errors import UserError
from curricmusic.curriculum.heldout import piece_subset
from curricmusic.data.prepared import PreparedData
from curricmusic.model import MusicTransformer
from curricmusic.model.expectation import expected_pitch_classes, pitch_class_table, scale_mass
from curricmusic.music.keys import piece_key

__all__ = ["KeyShareSet", "key_share_sets", "measure_key_share"]


@dataclass(frozen=True)
class KeyShareSet:
    """The held-out pieces of one stage that have a key: their tokens and key names."""

    pieces: list[np.ndarray]
    keys: list[str]


def key_share_sets(
    data: PreparedData, stages: Iterable[str], limit: int | None, required: Iterable[str] = ()
) -> dict[str, KeyShareSet]:
    """Per stage, the validation pieces (the seeded subset of at most ``limit``) that have a key.
    A stage of ``required`` (a mastery criterion reads it) without such a piece is refused."""
    out = {}
    required = set(required)
    for stage in stages:
        pieces = data.pieces(stage, "val")
        notes = data.piece_notes(stage, "val") if pieces else []
        chosen = piece_subset(len(pieces), limit, stage)
        keys = [piece_key(pieces[int(i)].get("meta"), notes[int(i)]) for i in chosen]
        keep = [(int(i), k) for i, k in zip(chosen, keys, strict=True) if k is not None]
        if not keep:
            if stage in required:
                raise UserError(
                    f"{data.root}: stage {stage!r} has no validation piece with a key; its key share (a mastery "
                    "criterion) cannot be measured: give it more pieces or use criterion = 'plateau'"
                )
            continue
        out[stage] = KeyShareSet([data.piece_tokens(stage, "val", i) for i, _ in keep], [k for _, k in keep])
    return out


def measure_key_share(
    model: MusicTransformer, sets: dict[str, KeyShareSet], vocab: dict[str, int], vocab_size: int, seq_len: int
) -> dict[str, float]:
    """The key share of each stage's set under ``model`` (an unwrapped MusicTransformer); the
    model's training mode is restored afterwards."""
    if not sets:
        return {}
    was_training = model.training
    table = pitch_class_table(vocab, vocab_size)
    try:
        out = {}
        for stage, chosen in sets.items():
            profiles = expected_pitch_classes(model, chosen.pieces, seq_len, table)  # (N, 12)
            out[stage] = float(np.nanmean(scale_mass(profiles, chosen.keys)))
        return out
    finally:
        model.train(was_training)
