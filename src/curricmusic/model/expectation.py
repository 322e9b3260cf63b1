"""What pitch classes a model expects: its next-pitch predictions folded onto the 12 classes.

Where the next token of a piece starts a note, the model's predicted distribution over the pitch
tokens (renormalised among them) is folded onto the 12 pitch classes; the mean over those
positions is the piece's *expected pitch-class profile* ``(12,)``. :func:`scale_mass` reads
profiles against a known key: the share on the key's seven diatonic pitch classes (the *key
share*; 7/12 for a uniform spread). Here, below training, because a run measures the key share at
its evaluations (a mastery criterion, README "Mastery"); the probes built on these profiles are
in :mod:`curricmusic.evaluation.expectation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from curricmusic.model.transformer import MusicTransformer
from curricmusic.music.keys import parse_key, scale_pitch_classes
from curricmusic.music.tokenizers import token_pitch

__all__ = ["pitch_class_table", "note_positions", "expected_pitch_classes", "scale_mass"]


def pitch_class_table(vocab: Mapping[str, int], vocab_size: int) -> np.ndarray:
    """``(V,)`` int: the pitch class (0-11) of every token that starts a note, -1 for the rest."""
    table = np.full(vocab_size, -1, dtype=np.int64)
    for token, index in vocab.items():
        pitch = token_pitch(token)  # Pitch_60, MIDILike's NoteOn_60
        if pitch is not None:
            table[index] = pitch % 12
    return table


def note_positions(ids: np.ndarray, pitch_class: np.ndarray) -> np.ndarray:
    """``(T - 1,)`` bool: the positions whose next token starts a note."""
    return pitch_class[ids[1:]] >= 0


@torch.inference_mode()
def expected_pitch_classes(
    model: MusicTransformer,
    pieces: Sequence[np.ndarray],
    seq_len: int,
    pitch_class: np.ndarray,
    batch_size: int = 32,
) -> np.ndarray:
    """``(N, 12)``: each piece's expected pitch-class profile over its first ``seq_len`` tokens
    (uniform for a piece without a note after its first token)."""
    model.eval()
    device = next(model.parameters()).device
    note_ids = np.flatnonzero(pitch_class >= 0)
    if note_ids.shape[0] == 0:
        raise ValueError(
            "the vocabulary has no pitch tokens (Pitch_* or NoteOn_*): nothing to fold"
        )
    fold = torch.zeros(
        (note_ids.shape[0], 12), device=device
    )  # (P, 12) one-hot pitch class of each note token
    fold[torch.arange(note_ids.shape[0]), torch.from_numpy(pitch_class[note_ids]).to(device)] = 1.0
    head = model.head.weight[
        torch.from_numpy(note_ids).to(device)
    ]  # (P, C) the rows that score note tokens
    out = np.full((len(pieces), 12), 1.0 / 12)
    for lo in range(0, len(pieces), batch_size):
        chunk = [np.asarray(p[:seq_len], dtype=np.int64) for p in pieces[lo : lo + batch_size]]
        width = max(len(p) for p in chunk)
        ids = np.zeros((len(chunk), width), dtype=np.int64)
        weight = np.zeros((len(chunk), width), dtype=np.float32)
        for row, piece in enumerate(chunk):
            ids[row, : len(piece)] = piece
            weight[row, : len(piece) - 1] = (
                note_positions(piece, pitch_class) if len(piece) > 1 else []
            )
        hidden = model.hidden_states(torch.from_numpy(ids).to(device)).float()  # (B, T, C)
        notes = torch.softmax(hidden @ head.float().T, dim=-1)  # (B, T, P) next-note distribution
        profile = notes @ fold  # (B, T, 12)
        w = torch.from_numpy(weight).to(device).unsqueeze(-1)  # (B, T, 1)
        counted = w.sum(dim=1)  # (B, 1)
        mean = ((profile * w).sum(dim=1) / counted.clamp_min(1.0)).cpu().numpy()  # (B, 12)
        has = counted[:, 0].cpu().numpy() > 0
        out[lo : lo + len(chunk)][has] = mean[has]
    return out


def scale_mass(profiles: np.ndarray, keys: Sequence[str | None]) -> np.ndarray:
    """``(N,)``: each profile's total on its key's diatonic pitch classes (``"G major"``,
    ``"F# minor"``: natural minor); NaN where the key is unknown."""
    out = np.full(profiles.shape[0], np.nan)
    for row, name in enumerate(keys):
        if name is not None:
            out[row] = float(
                profiles[row, list(scale_pitch_classes(parse_key(name), "natural"))].sum()
            )
    return out
