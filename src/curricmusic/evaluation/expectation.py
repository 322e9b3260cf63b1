"""What pitch classes does a model expect? Its next-pitch predictions, folded to the 12 classes.

A model that has learned which notes a key allows puts its next-pitch probability on them. Where
the next token of a held-out piece starts a note, the model's predicted distribution over the pitch
tokens (renormalised among them) is folded onto the 12 pitch classes; the mean over those positions
is the piece's *expected pitch-class profile* ``(12,)``. A linear probe on it reads the key the
model predicts in, not the key of the tokens it was given: an untrained network predicts the same
near-uniform spread whatever the piece, so the probe on its profile stays close to chance, which a
probe on pooled hidden states never does (a random network's pooled states are a random
projection of the input tokens, which spell out the pitches).

The *heard* profile is the same mean over the same positions of the pitch that actually came
next: the profile of a model that predicted every next pitch exactly, the ceiling of the probe.

The *neighbour* profile is the key-blind control: a predictor that knows only that melodies move
by small steps and expects the next pitch anywhere within ``reach`` semitones of the last note,
uniformly. Its profile is a blurred copy of the notes played, which in a scale already points to
the key; a trained model whose probe reads no better than this one has learned contour, and
nothing shows it has learned which notes a key allows.

:func:`scale_mass` reads the same profiles against a known key without any probe: the share of the
expected next-pitch probability on the key's seven diatonic pitch classes (major, or natural
minor). A uniform spread puts 7/12 there; the heard profile shows how much the music itself does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from curricmusic.model import MusicTransformer
from curricmusic.music.keys import parse_key, scale_pitch_classes
from curricmusic.music.tokenizers import token_pitch

__all__ = [
    "pitch_class_table",
    "expected_pitch_classes",
    "heard_pitch_classes",
    "neighbour_pitch_classes",
    "scale_mass",
]

def pitch_class_table(vocab: Mapping[str, int], vocab_size: int) -> np.ndarray:
    """``(V,)`` int: the pitch class (0-11) of every token that starts a note, -1 for the rest."""
    table = np.full(vocab_size, -1, dtype=np.int64)
    for token, index in vocab.items():
        pitch = token_pitch(token)  # Pitch_60, MIDILike's NoteOn_60
        if pitch is not None:
            table[index] = pitch % 12
    return table


def _note_positions(ids: np.ndarray, pitch_class: np.ndarray) -> np.ndarray:
    """``(T - 1,)`` bool: the positions whose next token starts a note."""
    return pitch_class[ids[1:]] >= 0


def heard_pitch_classes(
    pieces: Sequence[np.ndarray], seq_len: int, pitch_class: np.ndarray
) -> np.ndarray:
    """``(N, 12)``: each piece's pitch-class frequencies over the notes of its first ``seq_len``
    tokens that follow another token (uniform for a piece without one)."""
    out = np.full((len(pieces), 12), 1.0 / 12)
    for row, piece in enumerate(pieces):
        ids = np.asarray(piece[:seq_len], dtype=np.int64)
        at = _note_positions(ids, pitch_class)
        if at.any():
            out[row] = np.bincount(pitch_class[ids[1:][at]], minlength=12) / at.sum()
    return out


def neighbour_pitch_classes(
    pieces: Sequence[np.ndarray], seq_len: int, pitch_class: np.ndarray, reach: int = 2
) -> np.ndarray:
    """``(N, 12)``: the key-blind control's profile: at each note position after a first note,
    1 / (2 * reach + 1) on each pitch class within ``reach`` semitones of the last note so far,
    averaged (uniform for a piece without such a position)."""
    if not 0 <= reach <= 5:
        raise ValueError(
            f"reach must be 0..5 semitones (wider wraps around the octave), got {reach}"
        )
    steps = np.arange(-reach, reach + 1)
    out = np.full((len(pieces), 12), 1.0 / 12)
    for row, piece in enumerate(pieces):
        ids = np.asarray(piece[:seq_len], dtype=np.int64)
        classes = pitch_class[ids]  # (T,) -1 where no note starts
        profile, count, last = np.zeros(12), 0, -1
        for t in range(len(ids) - 1):
            last = classes[t] if classes[t] >= 0 else last
            if classes[t + 1] >= 0 and last >= 0:
                np.add.at(profile, (last + steps) % 12, 1.0 / steps.shape[0])
                count += 1
        if count:
            out[row] = profile / count
    return out


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
                _note_positions(piece, pitch_class) if len(piece) > 1 else []
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
