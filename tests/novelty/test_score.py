"""Embedding-space novelty statistics: exact kNN, distances, penalty, flags, the C_T test."""

from __future__ import annotations

import numpy as np
import pytest

from curricmusic.novelty.score import (
    EmbeddingBank,
    cosine_distance,
    data_copying_statistic,
    distance_ratio,
    flag,
    nearest_neighbors,
    penalty,
    penalty_tau,
    set_summary,
)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(queries, bank, k):
    scores = queries.astype(np.float64) @ bank.astype(np.float64).T
    idx = np.argsort(-scores, axis=1)[:, :k]
    return idx, np.take_along_axis(scores, idx, 1), scores


# -- nearest neighbours ---------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("k", [1, 5])
def test_nearest_neighbors_equal_brute_force(precision, k):
    rng = np.random.default_rng(k)
    bank = unit(rng.standard_normal((5000, 32)))
    queries = unit(rng.standard_normal((40, 32)))
    idx, cos = nearest_neighbors(queries, bank, k, block=1024, precision=precision)
    ref_idx, ref_cos, _ = brute_force(queries, bank, k)
    assert idx.shape == cos.shape == (40, k)
    assert idx.dtype == np.int64 and cos.dtype == np.float32
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(cos, ref_cos, atol=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_near_duplicates_are_ranked_exactly(precision):
    """A bank crowded with near-copies of the queries: cosines differ by far less than the
    bfloat16 screen's error, and the answer must still be a true top-k."""
    rng = np.random.default_rng(0)
    queries = unit(rng.standard_normal((20, 64)))
    bank = unit(rng.standard_normal((20000, 64)))
    crowd = np.arange(0, 20000, 5)
    bank[crowd] = unit(queries[rng.integers(0, 20, crowd.size)] + 0.02 * bank[crowd])
    idx, cos = nearest_neighbors(queries, EmbeddingBank(bank), 3, block=4096, precision=precision)
    _, ref_cos, scores = brute_force(queries, bank, 3)
    np.testing.assert_allclose(np.take_along_axis(scores, idx, 1), ref_cos, atol=1e-6)
    np.testing.assert_allclose(cos, ref_cos, atol=1e-6)
    assert all(len(set(row)) == 3 for row in idx.tolist())


def test_identical_vectors_have_cosine_one():
    rng = np.random.default_rng(1)
    bank = unit(rng.standard_normal((300, 16)))
    idx, cos = nearest_neighbors(bank[[7, 123]], bank, 1)
    assert idx[:, 0].tolist() == [7, 123]
    np.testing.assert_allclose(cos[:, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(cosine_distance(cos[:, 0]), 0.0, atol=1e-6)


def test_prepared_bank_and_single_query_agree_with_plain_array():
    rng = np.random.default_rng(2)
    bank = unit(rng.standard_normal((3000, 24)))
    query = unit(rng.standard_normal((1, 24)))[0]
    plain = nearest_neighbors(query, bank, 4, precision="bf16", block=512)
    prepared = EmbeddingBank(bank).prepare()
    assert len(prepared) == 3000
    assert np.array_equal(
        nearest_neighbors(query, prepared, 4, precision="bf16", block=512)[0], plain[0]
    )
    assert plain[0].shape == (1, 4)


def test_nearest_neighbors_rejects_bad_shapes():
    bank = unit(np.random.default_rng(3).standard_normal((10, 8)))
    with pytest.raises(ValueError, match="dimension"):
        nearest_neighbors(np.ones((2, 9), np.float32), bank)
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbors(bank[:2], bank, k=11)
    with pytest.raises(ValueError, match="precision"):
        nearest_neighbors(bank[:2], bank, precision="int8")


# -- distances, penalty, flags ---------------------------------------------------------------------


def test_distance_ratio_and_penalty_exact():
    np.testing.assert_allclose(distance_ratio([0.1, 0.2], [0.2, 0.4, 0.6]), [0.25, 0.5])
    assert np.isnan(distance_ratio(0.1, []))
    np.testing.assert_allclose(penalty([0.0, 0.05, 0.1, 0.2], 0.1), [1.0, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(penalty([0.0, 0.3], 0.0), [0.0, 0.0])
    assert penalty_tau([1.0, 2.0, 3.0], 0.5) == 2.0
    assert penalty_tau([0.0, 10.0], 0.1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="quantile"):
        penalty_tau([1.0], 1.5)


def test_flag_and_set_summary():
    flags = flag(
        [0.1, 0.9, np.nan, 1.2], [0.0, 1.0, 4.0, 2.0], rho_threshold=0.5, max_copied_bars=4
    )
    assert flags.tolist() == [True, False, True, False]
    summary = set_summary(flags, [0.1, 0.9, np.nan, 1.2], [0.0, 1.0, 4.0, 2.0], quantiles=(0.5,))
    assert summary == {
        "n": 4,
        "n_flagged": 2,
        "copy_rate": 0.5,
        "rho_min": pytest.approx(0.1),
        "rho_quantiles": {"0.5": pytest.approx(0.9)},
        "copied_bars_max": 4.0,
        "copied_bars_quantiles": {"0.5": pytest.approx(1.5)},
    }
    empty = set_summary([], [])
    assert empty["n"] == 0 and np.isnan(empty["copy_rate"]) and np.isnan(empty["rho_min"])


# -- the data-copying test -------------------------------------------------------------------------


def mixture(n: int, rng, dim: int = 8) -> np.ndarray:
    centres = np.random.default_rng(99).standard_normal((6, dim)) * 3
    return centres[rng.integers(0, 6, n)] + rng.standard_normal((n, dim))


def test_c_t_is_strongly_negative_for_copies():
    rng = np.random.default_rng(0)
    train, test = mixture(1200, rng), mixture(400, rng)
    copies = train[rng.permutation(1200)[:400]] + 1e-3 * rng.standard_normal((400, 8))
    result = data_copying_statistic(train, test, copies, seed=0)
    assert result.c_t < -3
    assert result.kept.any() and result.z_u.shape == (10,)


def test_c_t_is_near_zero_for_fresh_samples():
    rng = np.random.default_rng(1)
    train, test, fresh = mixture(1200, rng), mixture(400, rng), mixture(400, rng)
    result = data_copying_statistic(train, test, fresh, seed=0)
    assert abs(result.c_t) < 2


def test_c_t_is_deterministic_and_handles_small_sets():
    rng = np.random.default_rng(2)
    train, test, gen = mixture(300, rng), mixture(60, rng), mixture(60, rng)
    first = data_copying_statistic(train, test, gen, seed=5)
    second = data_copying_statistic(train, test, gen, seed=5)
    assert first.c_t == second.c_t
    np.testing.assert_array_equal(first.z_u, second.z_u)
    tiny = data_copying_statistic(train, test[:4], gen[:3], seed=0)
    assert tiny.z_u.shape == (1,) and np.isfinite(tiny.c_t)
    one = data_copying_statistic(train[:1], test[:1], gen[:1])
    assert one.kept.tolist() == [True]
    # Z_U by hand for one cell: generated both farther than the test point -> U = 2.
    z = data_copying_statistic(np.zeros((1, 1)), [[1.0]], [[2.0], [3.0]], n_cells=1)
    assert z.c_t == pytest.approx((2 - (2 / 2 - 0.5)) / np.sqrt(2 * 4 / 12))
