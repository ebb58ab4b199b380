# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Fréchet distance: closed form, scipy vs eigen, FD(x, x) = 0, streaming statistics, bad input."""
import warnings

import numpy as np
import pytest
import torch

from kdm.evaluation.base import FeatureStats
from kdm.evaluation.fid import fid_from_features, frechet_distance, trace_sqrt_product


def _rotation(d, seed):
    q, _ = np.linalg.qr(np.random.RandomState(seed).randn(d, d))
    return q


def test_closed_form_two_gaussians():
    # Covariances sharing eigenvectors: tr(S1 + S2 - 2 (S1 S2)^1/2) = sum (sqrt(a) - sqrt(b))^2.
    d = 16
    rs = np.random.RandomState(0)
    q = _rotation(d, 1)
    a, b = rs.uniform(0.5, 3.0, d), rs.uniform(0.1, 2.0, d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu1, mu2 = rs.randn(d), rs.randn(d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    for method in ('scipy', 'eigen'):
        assert frechet_distance(mu1, s1, mu2, s2, method) == pytest.approx(expected, rel=1e-9)


def test_closed_form_non_commuting_2d():
    # 1-D projections: N(0, 1) vs N(0, 4) -> (1 - 2)^2 = 1; with means 0 and 3 -> 9 + 1.
    assert frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(10.0, rel=1e-12)


@pytest.mark.parametrize('n', [400, 40])  # full rank and rank-deficient (N < D) covariances
def test_scipy_and_eigen_agree(n):
    rs = np.random.RandomState(n)
    d = 64
    x = rs.randn(n, d) @ rs.randn(d, d) * 0.3
    y = rs.randn(n, d) @ rs.randn(d, d) * 0.3 + 0.1
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecationWarning)  # no deprecated `disp` argument
        t_scipy = trace_sqrt_product(s1, s2, 'scipy')
    t_eig = trace_sqrt_product(s1, s2, 'eigen')
    assert t_eig == pytest.approx(t_scipy, rel=1e-6)
    f1 = frechet_distance(x.mean(0), s1, y.mean(0), s2, 'scipy')
    f2 = frechet_distance(x.mean(0), s1, y.mean(0), s2, 'eigen')
    assert f2 == pytest.approx(f1, rel=1e-6)


def test_fd_of_identical_statistics_is_zero():
    rs = np.random.RandomState(3)
    x = rs.randn(500, 32)
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    scale = np.trace(sigma)
    for method in ('scipy', 'eigen'):
        assert abs(frechet_distance(mu, sigma, mu, sigma, method)) < 1e-6 * scale
    assert abs(fid_from_features(x, x)) < 1e-6 * scale


def test_feature_stats_match_numpy_cov():
    rs = np.random.RandomState(4)
    x = rs.randn(301, 12).astype(np.float32)
    st = FeatureStats()
    for chunk in np.array_split(x, 7):
        st.update(torch.from_numpy(chunk))
    mu, sigma = st.mean_cov()
    assert np.allclose(mu, x.astype(np.float64).mean(0), atol=1e-12)
    assert np.allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), atol=1e-10)


def test_mismatched_dimensions_are_clear_errors():
    with pytest.raises(ValueError, match='same length'):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match='covariances'):
        frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match='same D'):
        fid_from_features(np.zeros((5, 3)), np.zeros((5, 4)))
    st = FeatureStats()
    st.update(torch.zeros(2, 3))
    with pytest.raises(ValueError, match='dimension mismatch'):
        st.update(torch.zeros(2, 4))
    with pytest.raises(ValueError, match='NaN'):
        frechet_distance(np.array([np.nan]), np.eye(1), np.zeros(1), np.eye(1))
