"""Linear probes: what did the pedagogy stages put into the model? Key and meter from hidden states.

A probe reads a frozen model's final hidden states over the first window of each held-out piece,
pools them, and fits a multinomial logistic regression that predicts the piece's key (24 classes)
or meter (its time signature). Accuracy is cross-validated (stratified folds, features
standardised on each training fold) and reported beside the majority-class rate. A probe on the
run's *initial* weights (the untrained model every arm of a seed starts from) is the control: what
a random network's features already give away, so the difference is what training added
(Hewitt & Liang 2019 call it selectivity).

Labels come from the prepared manifest: a generated piece's ``meta`` names its key and time
signature; other pieces get the Krumhansl-Schmuckler estimate of their notes
(:func:`curricmusic.music.keys.estimate_key`) and the meter implied by their bar length.

Pooling. ``mean`` averages every position; ``structure`` averages only the positions of tokens
that carry no pitch (Bar, Position, Duration, Velocity, ...), so the probe cannot simply read
back the embeddings of the pitches it is given: what it finds there the network had to carry
forward through attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from curricmusic.model import MusicTransformer
from curricmusic.music.keys import piece_key

__all__ = [
    "POOLINGS",
    "ProbeResult",
    "key_label",
    "meter_label",
    "pooled_features",
    "layer_features",
    "bag_of_tokens",
    "cross_validated_accuracy",
    "probe_pieces",
]

POOLINGS = ("mean", "structure")


@dataclass(frozen=True)
class ProbeResult:
    """Cross-validated accuracy of one probe, beside what guessing the commonest label gets."""

    task: str
    n_pieces: int
    n_classes: int
    accuracy: float
    chance: float  # the majority class's share (the best constant guess)
    folds: int

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "n_pieces": self.n_pieces,
            "n_classes": self.n_classes,
            "accuracy": self.accuracy,
            "chance": self.chance,
            "folds": self.folds,
        }


def key_label(piece: dict, notes: np.ndarray) -> str | None:
    """``"G major"``-style key of a manifest piece: its generator's key, else the KK estimate
    (:func:`curricmusic.music.keys.piece_key`; None for a chromatic-scale exercise)."""
    return piece_key(piece.get("meta"), notes)


def meter_label(piece: dict) -> str | None:
    """The time signature of a manifest piece (``"3/4"``), else the quarters per bar (``"3q"``)."""
    named = (piece.get("meta") or {}).get("time_signature")
    if named:
        return str(named)
    bar = piece.get("bar_len")
    return None if bar is None else f"{float(bar):g}q"


def _batch(
    pieces: Sequence[np.ndarray], seq_len: int, keep: np.ndarray | None, last: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids ``(B, T)`` (zero-padded) and pooling weights ``(B, T)`` bool of a batch of pieces:
    their first ``seq_len`` tokens, only positions whose token ``keep`` holds (all when None; a
    piece with no kept position pools all its positions); with ``last``, only the last of them."""
    chunk = [np.asarray(p[:seq_len], dtype=np.int64) for p in pieces]
    width = max(len(p) for p in chunk)
    ids = np.zeros((len(chunk), width), dtype=np.int64)
    real = np.zeros((len(chunk), width), dtype=bool)
    for row, piece in enumerate(chunk):
        ids[row, : len(piece)] = piece
        real[row, : len(piece)] = True
    weight = real.copy()
    if keep is not None:
        weight &= keep[ids]
        empty = ~weight.any(axis=1)
        weight[empty] = real[empty]
    if last:
        final = weight.shape[1] - 1 - np.argmax(weight[:, ::-1], axis=1)  # (B,) last pooled position
        weight = np.zeros_like(weight)
        weight[np.arange(weight.shape[0]), final] = True
    return ids, weight


@torch.inference_mode()
def layer_features(
    model: MusicTransformer,
    pieces: Sequence[np.ndarray],
    seq_len: int,
    keep: np.ndarray | None = None,
    batch_size: int = 32,
    pooling: str = "mean",
) -> dict[str, np.ndarray]:
    """Pooled features ``(N, C)`` of every layer: ``embedding`` (the token embeddings),
    ``block1`` .. ``blockL`` (the residual stream after each block) and ``final`` (after the
    final norm: what the head reads, :func:`pooled_features`). ``pooling``: ``mean`` over the
    pooled positions, or ``last``: the last of them (in a causal model, the only position that
    has seen the whole window)."""
    if pooling not in ("mean", "last"):
        raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
    model.eval()
    device = next(model.parameters()).device
    names = ["embedding"] + [f"block{i + 1}" for i in range(len(model.blocks))] + ["final"]
    rows: dict[str, list[np.ndarray]] = {name: [] for name in names}
    captured: list[torch.Tensor] = []
    hooks = [model.tok_emb.register_forward_hook(lambda _m, _i, out: captured.append(out))]
    hooks += [block.register_forward_hook(lambda _m, _i, out: captured.append(out)) for block in model.blocks]
    try:
        for lo in range(0, len(pieces), batch_size):
            ids, weight = _batch(pieces[lo : lo + batch_size], seq_len, keep, last=pooling == "last")
            captured.clear()
            final = model.hidden_states(torch.from_numpy(ids).to(device))  # (B, T, C)
            w = torch.from_numpy(weight.astype(np.float32)).to(device).unsqueeze(-1)  # (B, T, 1)
            for name, hidden in zip(names, [*captured, final], strict=True):
                rows[name].append(((hidden.float() * w).sum(dim=1) / w.sum(dim=1)).cpu().numpy())
    finally:
        for hook in hooks:
            hook.remove()
    width = model.config.d_model
    return {name: np.concatenate(r).astype(np.float64) if r else np.zeros((0, width)) for name, r in rows.items()}


def pooled_features(
    model: MusicTransformer,
    pieces: Sequence[np.ndarray],
    seq_len: int,
    keep: np.ndarray | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """One pooled final hidden-state vector per piece ``(N, C)`` over its first ``seq_len`` tokens.

    ``keep`` is a boolean ``(V,)`` table of the token ids whose positions are pooled (all when
    None); a piece with no kept position pools all its positions.
    """
    return layer_features(model, pieces, seq_len, keep, batch_size)["final"]


def bag_of_tokens(pieces: Sequence[np.ndarray], seq_len: int, vocab_size: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Each piece's token histogram ``(N, V)`` over the positions the probe pools (frequencies).

    The reference a probe on hidden states must be read against: what a linear reader gets from
    the input tokens alone, with no network at all.
    """
    out = np.zeros((len(pieces), vocab_size), dtype=np.float64)
    for row, piece in enumerate(pieces):
        ids, weight = _batch([piece], seq_len, keep)
        np.add.at(out[row], ids[0][weight[0]], 1.0)
        out[row] /= max(1.0, out[row].sum())
    return out


def _fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float) -> torch.Tensor:
    """Weights ``(D + 1, K)`` of an L2-regularised multinomial logistic regression (L-BFGS)."""
    xt = torch.from_numpy(np.hstack([x, np.ones((x.shape[0], 1))]))
    yt = torch.from_numpy(y)
    weights = torch.zeros((xt.shape[1], n_classes), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ weights, yt) + l2 * (weights[:-1] ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weights.detach()


def _stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index of every sample: each class dealt round-robin over the folds after a shuffle."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(labels.shape[0], dtype=np.int64)
    offset = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold[members] = (np.arange(members.shape[0]) + offset) % folds
        offset += members.shape[0]
    return fold


def cross_validated_accuracy(
    features: np.ndarray, labels: Sequence[str], folds: int = 5, seed: int = 0, l2: float = 1e-3
) -> tuple[float, float, int]:
    """``(accuracy, chance, folds used)`` of a linear probe, stratified k-fold.

    Features are standardised with each training fold's mean and deviation. ``chance`` is the
    majority class's share of all samples. With fewer samples than folds, leave-one-out.
    """
    names, y = np.unique(np.asarray(labels), return_inverse=True)
    n = y.shape[0]
    if n < 2 or names.shape[0] < 2:
        return float("nan"), 1.0 if n else float("nan"), 0
    folds = int(min(folds, n))
    fold = _stratified_folds(y, folds, seed)
    correct = 0
    for k in range(folds):
        train, test = fold != k, fold == k
        if not test.any() or not train.any():
            continue
        mean = features[train].mean(axis=0)
        scale = features[train].std(axis=0) + 1e-8
        weights = _fit_logistic((features[train] - mean) / scale, y[train], names.shape[0], l2)
        x_test = torch.from_numpy(np.hstack([(features[test] - mean) / scale, np.ones((int(test.sum()), 1))]))
        predicted = (x_test @ weights).argmax(dim=1).numpy()
        correct += int((predicted == y[test]).sum())
    chance = float(np.bincount(y).max() / n)
    return correct / n, chance, folds


def probe_pieces(
    model: MusicTransformer,
    pieces: Sequence[np.ndarray],
    labels: dict[str, Sequence[str | None]],
    seq_len: int,
    keep: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
) -> list[ProbeResult]:
    """One :class:`ProbeResult` per task in ``labels`` (task -> a label per piece, None: unknown)."""
    features = pooled_features(model, pieces, seq_len, keep)
    results = []
    for task, task_labels in labels.items():
        known = np.array([label is not None for label in task_labels], dtype=bool)
        chosen = [str(label) for label in task_labels if label is not None]
        accuracy, chance, used = cross_validated_accuracy(features[known], chosen, folds, seed)
        results.append(ProbeResult(task, int(known.sum()), len(set(chosen)), accuracy, chance, used))
    return results
