# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""PRDC and P/R on hand-built point sets; KID against its U-statistic definition."""
import itertools

import numpy as np
import pytest

from kdm.evaluation.kid import compute_kid
from kdm.evaluation.prdc import compute_prdc, compute_precision_recall


def test_prdc_hand_computed():
    # k = 1. Real radii: r(0) = 1, r(1) = 1, r(3) = 2; fake radii 9.5 each.
    real = np.array([[0.0], [1.0], [3.0]])
    fake = np.array([[0.5], [10.0]])
    out = compute_prdc(real, fake, nearest_k=1, dtype=__import__('torch').float64)
    assert out['precision'] == pytest.approx(0.5)      # 0.5 inside the balls of 0 and 1; 10 in none
    assert out['recall'] == pytest.approx(1.0)         # every real point within 9.5 of 0.5
    assert out['density'] == pytest.approx(1.0)        # (2 + 0) / 2 / k
    assert out['coverage'] == pytest.approx(2 / 3)     # nearest fake of 3 is 2.5 away > r(3) = 2


def test_prdc_perfect_overlap_and_disjoint():
    rs = np.random.RandomState(0)
    x = rs.randn(60, 8)
    out = compute_prdc(x, x.copy(), nearest_k=5)
    assert out == pytest.approx(dict(precision=1.0, recall=1.0, density=1.0, coverage=1.0))
    out = compute_prdc(x, x + 1000.0, nearest_k=5)
    assert out == dict(precision=0.0, recall=0.0, density=0.0, coverage=0.0)
    pr = compute_precision_recall(x, x.copy(), nearest_k=3)
    assert pr == dict(precision=1.0, recall=1.0)
    assert compute_precision_recall(x, x + 1000.0, nearest_k=3) == dict(precision=0.0, recall=0.0)


def test_prdc_matches_bruteforce_reference():
    # the clovaai algorithm with dense distance matrices, on random data, with small blocks
    rs = np.random.RandomState(1)
    real, fake = rs.randn(70, 5), rs.randn(50, 5) * 1.3 + 0.2
    k = 5
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=-1)
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=-1)
    r_real, r_fake = np.sort(d_rr, 1)[:, k], np.sort(d_ff, 1)[:, k]
    ref = dict(precision=(d_rf < r_real[:, None]).any(0).mean(), recall=(d_rf < r_fake[None]).any(1).mean(),
               density=(d_rf < r_real[:, None]).sum(0).mean() / k, coverage=(d_rf.min(1) < r_real).mean())
    out = compute_prdc(real, fake, nearest_k=k, block_size=16, dtype=__import__('torch').float64)
    assert out == pytest.approx(ref, abs=1e-12)


def _kid_definition(x, y, degree=3, coef0=1.0):
    """Unbiased MMD^2 written as sums over index pairs (Bińkowski et al. 2018, eq. for MMD^2_u)."""
    m, d = x.shape
    k = lambda a, b: (a @ b / d + coef0) ** degree  # noqa: E731
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_u_statistic():
    rs = np.random.RandomState(2)
    real, fake = rs.randn(12, 6), rs.randn(12, 6) + 0.5
    # one subset of all samples: a permutation, to which the estimator is invariant
    mean, std = compute_kid(real, fake, num_subsets=1, subset_size=12)
    assert mean == pytest.approx(_kid_definition(fake, real), rel=1e-10)
    assert std == 0.0
    # several subsets: the mean of the definition over the same seeded subsets
    mean, std = compute_kid(real, fake, num_subsets=5, subset_size=6, seed=7)
    rng = np.random.RandomState(7)
    vals = []
    for _ in range(5):
        x = fake[rng.choice(12, 6, replace=False)]
        y = real[rng.choice(12, 6, replace=False)]
        vals.append(_kid_definition(x, y))
    assert mean == pytest.approx(np.mean(vals), rel=1e-10)
    assert std == pytest.approx(np.std(vals), rel=1e-8)


def test_kid_and_prdc_bad_input():
    rs = np.random.RandomState(3)
    with pytest.raises(ValueError, match='subset_size=1000 but only 20 real'):
        compute_kid(rs.randn(20, 4), rs.randn(30, 4))
    with pytest.raises(ValueError, match='same D'):
        compute_kid(rs.randn(20, 4), rs.randn(20, 5), subset_size=10)
    with pytest.raises(ValueError, match='same D'):
        compute_prdc(rs.randn(20, 4), rs.randn(20, 5))
    with pytest.raises(ValueError, match='more than 5'):
        compute_prdc(rs.randn(5, 4), rs.randn(20, 4), nearest_k=5)
