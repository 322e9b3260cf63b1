"""Embedding-space novelty statistics: pure functions over L2-normalised float32 embeddings.

Nearest neighbours
    :func:`nearest_neighbors` is an exact inner-product search over a bank too large to score in
    one matrix: blocks of the bank are scored and only each query's running top-k is kept.
    On CPUs with native bfloat16 matrix units (AMX / AVX512-BF16) large searches screen with a
    bfloat16 matmul, about three times the float32 rate, and then rescore every candidate that
    could still be a top-k neighbour in float32. The screen can miss nothing: with unit roundoff
    ``u = 2**-8`` a bfloat16 score is within ``(3u + 3u**2 + 2 D 2**-24) |q| |x|`` of the float32
    one, and a bank row is rescored whenever its screened score is within that bound of the
    query's current k-th best exact score. Results equal a float32 brute force search.

Distances and flags
    ``d = 1 - cosine``; the distance ratio ``rho = d_NN(sample, train) / median_h d_NN(h, train)``
    over held-out pieces ``h`` (1 is as close as real unseen music sits); the penalty
    ``max(0, (tau - d) / tau)`` with ``tau`` a quantile of the held-out distances.
    :func:`stratified_ratio` takes the median over the held-out pieces whose nearest training
    piece lies in the same stage as the sample's: a bank of scales and chorales has two scales
    of distance (held-out scales sit very close to training scales), and one pooled median
    calls every new melody that lands near a scale a copy. :func:`calibrated_threshold` sets
    the rho flag at a low quantile of the held-out pieces' own rho, and
    :func:`separation_auc` measures whether the embedder places known copies (training pieces
    transposed and re-timed) closer than held-out music at all.

Data copying
    :func:`data_copying_statistic` is the C_T test of Meehan, Chaudhuri & Dasgupta (2020).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.stats import rankdata

__all__ = [
    "EmbeddingBank",
    "nearest_neighbors",
    "auto_precision",
    "cosine_distance",
    "distance_ratio",
    "penalty",
    "penalty_tau",
    "flag",
    "stratified_ratio",
    "calibrated_threshold",
    "separation_auc",
    "CopyingTest",
    "data_copying_statistic",
    "set_summary",
]

_U = 2.0**-8  # bfloat16 unit roundoff: 8 significant bits, round to nearest even
_SEED_ROWS = 8192  # bank rows scored exactly first, to start every query's threshold
_BF16_MIN_WORK = 2**34  # multiply-adds (Q * N * D) from which the bfloat16 screen pays off


# -- nearest neighbours ---------------------------------------------------------------------------


class EmbeddingBank:
    """A bank prepared for repeated searches: float32 rows, their bfloat16 copy and row norms.

    ``EmbeddingBank(vectors)`` makes the bfloat16 copy in memory on the first search (or on
    :meth:`prepare`). A bank written by :func:`curricmusic.novelty.bank.write_bank` and opened
    with :func:`curricmusic.novelty.bank.open_bank` passes all three as memory maps
    (``screen``: the bfloat16 bits as uint16): a search then reads the bfloat16 copy in blocks
    (2 bytes a dimension) and float32 rows only for the candidates it rescores, so memory holds
    about half of what an in-memory bank would, and processes share the pages. Passing the
    plain float32 array to :func:`nearest_neighbors` gives the same results.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        *,
        screen: np.ndarray | None = None,
        norms: np.ndarray | None = None,
        rows: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.vectors = _as_matrix(vectors, "bank")  # (N, D) float32, may be a read-only map
        self._rows = rows  # reads float32 rows by index without mapping the file's pages
        if (screen is None) != (norms is None):
            raise ValueError("screen and norms come together")
        if screen is not None and (screen.shape != self.vectors.shape or screen.dtype != np.uint16):
            raise ValueError(f"screen must be uint16 bits of shape {self.vectors.shape}")
        if norms is not None and norms.shape != (len(self),):
            raise ValueError(f"norms must have shape ({len(self)},)")
        self._screen = screen  # (N, D) uint16: bfloat16 bits
        self._norms = norms  # (N,) float32: upper bounds on the float32 row norms

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def prepare(self) -> EmbeddingBank:
        """Build the bfloat16 copy and row norms now (otherwise on the first search)."""
        if self._screen is None:
            step = 65536
            parts = [bf16_rows(self.vectors[s : s + step]) for s in range(0, len(self), step)]
            self._screen = np.concatenate([bits for bits, _ in parts]) if parts else np.zeros(self.vectors.shape, np.uint16)
            self._norms = np.concatenate([norms for _, norms in parts]) if parts else np.zeros(0, np.float32)
        return self

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Float32 rows (len(indices), D) (a bank file reads them, leaving the rest unmapped)."""
        return self._rows(indices) if self._rows is not None else self.vectors[indices]

    def bf16_block(self, start: int, block: int) -> tuple[torch.Tensor, float]:
        """Rows ``start:start+block`` in bfloat16 and an upper bound on their norms."""
        self.prepare()
        assert self._screen is not None and self._norms is not None  # prepare() sets them
        bits = _tensor(self._screen[start : start + block])
        return bits.view(torch.bfloat16), float(self._norms[start : start + block].max())


def nearest_neighbors(
    queries: np.ndarray,
    bank: np.ndarray | EmbeddingBank,
    k: int = 1,
    *,
    block: int | None = None,
    precision: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner-product neighbours: ``(indices (Q, k) int64, cosines (Q, k) float32)``.

    Rows are best first. ``precision`` is ``"fp32"`` (blocked float32 matmul), ``"bf16"``
    (bfloat16 screen + float32 rescoring, same answer) or ``"auto"`` (bf16 where the CPU has
    native bfloat16 units and the search is large). Memory stays ``O(Q * block)``; ``block``
    (bank rows scored at once) defaults to about 64M scores per block.
    """
    q = _as_matrix(queries, "queries")
    prepared = bank if isinstance(bank, EmbeddingBank) else None
    vectors = bank.vectors if isinstance(bank, EmbeddingBank) else _as_matrix(bank, "bank")
    if q.shape[1] != vectors.shape[1]:
        raise ValueError(f"queries have dimension {q.shape[1]} but the bank {vectors.shape[1]}")
    if not 1 <= k <= vectors.shape[0]:
        raise ValueError(f"k must be in [1, {vectors.shape[0]}] (bank size), got {k}")
    if precision == "auto":
        precision = auto_precision(q.shape[0], vectors.shape[0], vectors.shape[1], k)
    block = int(block or np.clip(2**26 // q.shape[0], 4096, 65536))
    if precision == "fp32":
        best_s, best_i = _knn_fp32(q, vectors, k, block)
    elif precision == "bf16":
        best_s, best_i = _knn_bf16(q, vectors, prepared, k, block)
    else:
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1), np.take_along_axis(best_s, order, 1)


def auto_precision(n_queries: int, n_bank: int, dim: int, k: int = 1) -> str:
    """What ``precision="auto"`` picks: ``"bf16"`` for searches of at least 2**34 multiply-adds
    on CPUs with native bfloat16 units (AMX or AVX512-BF16), else ``"fp32"``."""
    big = n_queries * n_bank * dim >= _BF16_MIN_WORK and k <= _SEED_ROWS // 8
    return "bf16" if big and _has_native_bf16() else "fp32"


def _knn_fp32(q: np.ndarray, vectors: np.ndarray, k: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    qt = _tensor(q)
    best_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
    best_i = np.full((q.shape[0], k), -1, dtype=np.int64)
    for start in range(0, vectors.shape[0], block):
        scores = (qt @ _tensor(vectors[start : start + block]).T).numpy()  # (Q, Bk)
        best_s, best_i = _merge_dense(best_s, best_i, scores, start, k)
    return best_s, best_i


def _merge_dense(
    best_s: np.ndarray, best_i: np.ndarray, scores: np.ndarray, start: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge each row's top-k of a dense score block into the running top-k."""
    kk = min(k, scores.shape[1])
    if kk == 1:
        cols = scores.argmax(axis=1)[:, None]
    else:
        cols = np.argpartition(scores, scores.shape[1] - kk, axis=1)[:, -kk:]
    vals = np.take_along_axis(scores, cols, 1)
    all_s = np.concatenate([best_s, vals], axis=1)
    all_i = np.concatenate([best_i, cols + start], axis=1)
    top = np.argpartition(-all_s, k - 1, axis=1)[:, :k]
    return np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)


def _knn_bf16(
    q: np.ndarray, vectors: np.ndarray, prepared: EmbeddingBank | None, k: int, block: int
) -> tuple[np.ndarray, np.ndarray]:
    n, dim = vectors.shape
    take = prepared.take if prepared is not None else vectors.__getitem__
    bound = 3 * _U + 3 * _U**2 + 2 * dim * 2.0**-24  # relative error of a bf16 score
    q_norm = np.linalg.norm(q.astype(np.float64), axis=1)
    # Exact scores of a strided sample start every query's k-th best.
    stride = max(1, n // _SEED_ROWS)
    seed = np.arange(0, n, stride)[:_SEED_ROWS]
    best_s, best_i = _merge_dense(
        np.full((q.shape[0], k), -np.inf, np.float32),
        np.full((q.shape[0], k), -1, np.int64),
        (_tensor(q) @ _tensor(take(seed)).T).numpy(),
        0,
        k,
    )
    best_i = np.where(best_i >= 0, seed[np.maximum(best_i, 0)], -1)
    qb = _tensor(q).bfloat16()
    out = torch.empty((q.shape[0], block), dtype=torch.bfloat16)
    for start in range(0, n, block):
        if prepared is not None:
            xb, x_norm = prepared.bf16_block(start, block)
        else:
            xb, norms = _bf16_block(vectors, start, block)
            x_norm = float(norms.max())
        screened = torch.mm(qb, xb.T, out=out) if xb.shape[0] == block else qb @ xb.T  # (Q, Bk)
        threshold = best_s.min(axis=1).astype(np.float64) - bound * q_norm * x_norm
        r, c = _candidates(screened.view(torch.int16).numpy(), threshold)
        g = c + start
        keep = ~((g % stride == 0) & (g // stride < seed.size))  # seeds are scored already
        r, g = r[keep], g[keep]
        exact = np.einsum("ij,ij->i", q[r], take(g))
        best_s, best_i = _merge_sparse(best_s, best_i, r, g, exact, k)
    return best_s, best_i


def _candidates(bits: np.ndarray, threshold: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every bfloat16 score (given as int16 bits, (Q, B)) >= its row's threshold.

    One pass takes the maximum of each ``chunk`` of columns; only chunks that may reach the
    threshold are unpacked to float32 and compared exactly. For a positive threshold bfloat16
    bits order like the values as int16, and truncating the float32 threshold's bits rounds it
    down, so no chunk that reaches it is skipped; rows with a threshold <= 0 unpack every chunk.
    """
    q, b = bits.shape
    full = b // chunk * chunk
    maxima = [bits[:, :full].reshape(q, -1, chunk).max(axis=2)] if full else []
    if full < b:
        maxima.append(bits[:, full:].max(axis=1, keepdims=True))
    t32 = threshold.astype(np.float32)
    t32 = np.where(t32 > threshold, np.nextafter(t32, np.float32(-np.inf)), t32)
    t16 = (t32.view(np.int32) >> 16).astype(np.int16)
    reach = (np.concatenate(maxima, axis=1) >= t16[:, None]) | (threshold <= 0)[:, None]
    rows, chunks = np.nonzero(reach)
    cols = np.minimum(chunks[:, None] * chunk + np.arange(chunk), b - 1)  # (pairs, chunk)
    values = (bits[rows[:, None], cols].astype(np.int32) << 16).view(np.float32)
    hit_pair, hit_col = np.nonzero(values >= threshold[rows, None])
    rows, cols = rows[hit_pair], cols[hit_pair, hit_col]
    unique = np.ones(rows.size, dtype=bool)  # the clipped tail chunk repeats its last column
    unique[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return rows[unique], cols[unique]


def _merge_sparse(
    best_s: np.ndarray, best_i: np.ndarray, rows: np.ndarray, idx: np.ndarray, scores: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge scattered (query row, bank index, exact score) triples into the running top-k."""
    touched = np.flatnonzero(np.bincount(rows, minlength=best_s.shape[0]))
    if touched.size == 0:
        return best_s, best_i
    pos = np.searchsorted(touched, rows)
    all_r = np.concatenate([np.repeat(np.arange(touched.size), k), pos])
    all_s = np.concatenate([best_s[touched].ravel(), scores.astype(np.float32)])
    all_i = np.concatenate([best_i[touched].ravel(), idx])
    order = np.lexsort((-all_s, all_r))
    first = np.searchsorted(all_r[order], np.arange(touched.size))
    take = order[first[:, None] + np.arange(k)]
    best_s, best_i = best_s.copy(), best_i.copy()
    best_s[touched], best_i[touched] = all_s[take], all_i[take]
    return best_s, best_i


def bf16_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(bits, norms)``: float32 rows (B, D) rounded to bfloat16 (as uint16 bits, (B, D)) and
    upper bounds on their float32 norms (B,)."""
    chunk = _tensor(np.asarray(rows, dtype=np.float32))
    slack = 1 + chunk.shape[1] * 2.0**-24  # float32 rounding of the sums of squares
    bits = chunk.bfloat16().view(torch.int16).numpy().view(np.uint16)
    return bits, torch.linalg.vector_norm(chunk, dim=1).numpy() * slack


def _bf16_block(vectors: np.ndarray, start: int, block: int) -> tuple[torch.Tensor, np.ndarray]:
    """Bank rows in bfloat16, and upper bounds on their float32 norms."""
    bits, norms = bf16_rows(vectors[start : start + block])
    return torch.from_numpy(bits).view(torch.bfloat16), norms


def _has_native_bf16() -> bool:
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:
        return False


def _tensor(array: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():  # read-only memmaps: torch only reads them here
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(array))


def _as_matrix(x: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a (n, dim) array, got shape {x.shape}")
    return np.ascontiguousarray(x)


# -- distances, penalty, flags ---------------------------------------------------------------------


def cosine_distance(cosine: ArrayLike) -> np.ndarray:
    """``1 - cosine``."""
    return 1.0 - np.asarray(cosine, dtype=np.float64)


def distance_ratio(sample_nn_dist: ArrayLike, heldout_nn_dists: ArrayLike) -> np.ndarray:
    """``rho = d_NN(sample, train) / median(d_NN(h, train) for held-out h)``.

    NaN when there are no held-out distances; ``inf`` (or NaN for 0/0) when their median is 0.
    """
    heldout = np.asarray(heldout_nn_dists, dtype=np.float64)
    median = np.median(heldout) if heldout.size else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(sample_nn_dist, dtype=np.float64) / median


def penalty(d_nn: ArrayLike, tau: float) -> np.ndarray:
    """``max(0, (tau - d_nn) / tau)``: 1 for an exact copy, 0 from ``tau`` on (0 when tau <= 0)."""
    d = np.asarray(d_nn, dtype=np.float64)
    if not tau > 0:
        return np.zeros_like(d)
    return np.maximum(0.0, (tau - d) / tau)


def penalty_tau(heldout_nn_dists: ArrayLike, quantile: float) -> float:
    """The ``quantile`` of the held-out NN distances (NaN without any)."""
    heldout = np.asarray(heldout_nn_dists, dtype=np.float64)
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    return float(np.quantile(heldout, quantile)) if heldout.size else float("nan")


def flag(rho: ArrayLike, copied_bars: ArrayLike, rho_threshold: float, max_copied_bars: float) -> np.ndarray:
    """Flagged when ``rho < rho_threshold`` or ``copied_bars >= max_copied_bars`` (NaN rho: no)."""
    rho = np.asarray(rho, dtype=np.float64)
    bars = np.asarray(copied_bars, dtype=np.float64)
    return (rho < rho_threshold) | (bars >= max_copied_bars)


def stratified_ratio(
    d: np.ndarray,
    stage: np.ndarray,
    heldout_d: np.ndarray,
    heldout_stage: np.ndarray,
    min_pieces: int = 5,
) -> tuple[np.ndarray, dict[str, float]]:
    """``rho_i = d_i / median{d_h : stage_h = stage_i}``: distances over the held-out median of
    the stratum of the nearest training piece's stage (``stage``: one label per row).

    A stratum with fewer than ``min_pieces`` held-out pieces uses the median of all held-out
    distances. Returns ``(rho, {stage: median used})`` (the key ``"*"`` holds the pooled median).
    """
    d = np.asarray(d, dtype=np.float64)
    heldout_d = np.asarray(heldout_d, dtype=np.float64)
    heldout_stage = np.asarray(heldout_stage)
    pooled = float(np.median(heldout_d)) if heldout_d.size else float("nan")
    medians = {"*": pooled}
    for label in np.unique(heldout_stage).tolist():
        members = heldout_d[heldout_stage == label]
        if members.size >= min_pieces:
            medians[str(label)] = float(np.median(members))
    scale = np.array([medians.get(str(label), pooled) for label in np.asarray(stage).tolist()], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return d / scale if d.size else np.zeros(0), medians


def calibrated_threshold(heldout_rho: ArrayLike, quantile: float) -> float:
    """The ``quantile`` of the held-out pieces' rho: unseen real music falls below it that often."""
    values = np.asarray(heldout_rho, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    return float(np.quantile(values, quantile)) if values.size else float("nan")


def separation_auc(copies_rho: ArrayLike, heldout_rho: ArrayLike) -> float:
    """``P(rho_copy < rho_heldout)`` over all pairs (ties count 1/2): 1 when every known copy
    sits closer to the training data than every held-out piece, 0.5 when the embedder cannot
    tell them apart, below 0.5 when it places copies farther. NaN without both sets."""
    a = np.asarray(copies_rho, dtype=np.float64)
    b = np.asarray(heldout_rho, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not a.size or not b.size:
        return float("nan")
    less = (a[:, None] < b[None, :]).sum()
    ties = (a[:, None] == b[None, :]).sum()
    return float((less + 0.5 * ties) / (a.size * b.size))


def set_summary(
    flags: ArrayLike,
    rhos: ArrayLike,
    copied_bars: ArrayLike | None = None,
    quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
) -> dict[str, Any]:
    """Set-level figures: sample count, copy rate, and quantiles of rho (and copied bars)."""
    flags = np.asarray(flags, dtype=bool)
    rhos = np.asarray(rhos, dtype=np.float64)
    summary = {
        "n": int(flags.size),
        "n_flagged": int(flags.sum()),
        "copy_rate": float(flags.mean()) if flags.size else float("nan"),
        "rho_min": _nan_stat(np.nanmin, rhos),
        "rho_quantiles": _quantiles(rhos, quantiles),
    }
    if copied_bars is not None:
        bars = np.asarray(copied_bars, dtype=np.float64)
        summary["copied_bars_max"] = _nan_stat(np.nanmax, bars)
        summary["copied_bars_quantiles"] = _quantiles(bars, quantiles)
    return summary


def _quantiles(values: np.ndarray, quantiles: Sequence[float]) -> dict[str, float]:
    finite = values[~np.isnan(values)]
    return {
        f"{q:g}": float(np.quantile(finite, q)) if finite.size else float("nan") for q in quantiles
    }


def _nan_stat(fn: Callable[[np.ndarray], Any], values: np.ndarray) -> float:
    return float(fn(values)) if np.any(~np.isnan(values)) else float("nan")


# -- the data-copying test -------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyingTest:
    """C_T with its parts: per-cell Z_U, test mass and counts, and which cells entered C_T."""

    c_t: float
    z_u: np.ndarray  # (cells,) NaN where a cell lacks test or generated samples
    test_mass: np.ndarray  # (cells,) P_n(cell)
    n_test: np.ndarray
    n_generated: np.ndarray
    kept: np.ndarray  # (cells,) bool: cells in Pi_tau


def data_copying_statistic(
    train: np.ndarray,
    test: np.ndarray,
    generated: np.ndarray,
    *,
    n_cells: int | None = None,
    min_generated: int = 20,
    seed: int = 0,
) -> CopyingTest:
    """The C_T statistic of Meehan, Chaudhuri & Dasgupta (2020), "A Non-Parametric Test to Detect
    Data-Copying in Generative Models".

    1. Partition space into cells by k-means on ``train`` (k-means++ seeding from ``seed``,
       Lloyd iterations; every point joins its nearest centre).
    2. In each cell ``pi``, ``L(x)`` is the Euclidean distance from ``x`` to its nearest training
       point of the same cell (on unit vectors, a monotone function of the cosine distance).
    3. ``U`` counts pairs (generated g, test t) of the cell with ``L(g) > L(t)`` (ties 1/2), and
       ``Z_U = (U - (m n / 2 - 1/2)) / sqrt(m n (m + n + 1) / 12)`` (the authors' continuity
       correction; no tie correction), so generated samples closer to the training data than
       held-out ones give ``Z_U << 0``.
    4. ``C_T = sum_{pi in Pi_tau} P_n(pi) Z_U(pi) / sum_{pi in Pi_tau} P_n(pi)``, where
       ``Pi_tau`` holds the cells with at least ``min(min_generated, m)`` generated samples and
       one test sample (the paper's ``tau = 20 / m``).

    ``n_cells`` defaults to ``min(50, n_test // 20, m // (2 min(min_generated, m)))`` (about
    twice the generated samples a cell needs, per cell), at least 1 and at most the training
    size. C_T << 0: data copying; about 0: fine; >> 0: underfitting.
    NaN when no cell qualifies.
    """
    train = _as_matrix(train, "train").astype(np.float64)
    test = _as_matrix(test, "test").astype(np.float64)
    generated = _as_matrix(generated, "generated").astype(np.float64)
    if not (train.shape[1] == test.shape[1] == generated.shape[1]):
        raise ValueError("train, test and generated must have the same dimension")
    m, n = generated.shape[0], test.shape[0]
    need = max(1, min(min_generated, m))
    if n_cells is None:
        n_cells = min(50, n // 20, m // (2 * need))
    n_cells = int(min(max(1, n_cells), train.shape[0]))
    centres = _kmeans(train, n_cells, seed)
    cell_train, cell_test, cell_gen = (_nearest(x, centres) for x in (train, test, generated))
    z = np.full(n_cells, np.nan)
    n_test = np.bincount(cell_test, minlength=n_cells)
    n_gen = np.bincount(cell_gen, minlength=n_cells)
    for c in range(n_cells):
        pts = train[cell_train == c]
        if n_test[c] == 0 or n_gen[c] == 0 or pts.shape[0] == 0:
            continue
        z[c] = _z_u(_nn_dist(test[cell_test == c], pts), _nn_dist(generated[cell_gen == c], pts))
    mass = n_test / n
    kept = (n_gen >= need) & (n_test > 0) & ~np.isnan(z)
    c_t = float(np.dot(mass[kept], z[kept]) / mass[kept].sum()) if kept.any() else float("nan")
    return CopyingTest(c_t, z, mass, n_test, n_gen, kept)


def _z_u(l_test: np.ndarray, l_gen: np.ndarray) -> float:
    m, n = l_gen.size, l_test.size
    ranks = rankdata(np.concatenate([l_gen, l_test]))
    u = ranks[:m].sum() - m * (m + 1) / 2  # pairs with L(gen) > L(test)
    return float((u - (m * n / 2 - 0.5)) / np.sqrt(m * n * (m + n + 1) / 12))


def _sq_dists(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _nearest(x: np.ndarray, centres: np.ndarray, block: int = 4096) -> np.ndarray:
    return (
        np.concatenate(
            [_sq_dists(x[s : s + block], centres).argmin(1) for s in range(0, x.shape[0], block)]
        )
        if x.shape[0]
        else np.empty(0, dtype=np.int64)
    )


def _nn_dist(x: np.ndarray, ref: np.ndarray, block: int = 4096) -> np.ndarray:
    return np.sqrt(
        np.concatenate(
            [_sq_dists(x[s : s + block], ref).min(1) for s in range(0, x.shape[0], block)]
        )
    )


def _kmeans(x: np.ndarray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    """Deterministic k-means: k-means++ seeding from ``seed``, then Lloyd iterations."""
    rng = np.random.default_rng(seed)
    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.integers(x.shape[0])]
    closest = _sq_dists(x, centres[:1])[:, 0]
    for j in range(1, k):
        total = closest.sum()
        pick = rng.choice(x.shape[0], p=closest / total) if total > 0 else rng.integers(x.shape[0])
        centres[j] = x[pick]
        closest = np.minimum(closest, _sq_dists(x, centres[j : j + 1])[:, 0])
    for _ in range(iters):
        labels = _nearest(x, centres)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, x)
        moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
        if np.allclose(moved, centres):
            break
        centres = moved
    return centres
