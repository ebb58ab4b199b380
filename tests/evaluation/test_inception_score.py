# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Inception Score: uniform logits give 1, confident one-hot logits over K classes give K."""
import numpy as np
import pytest

from kdm.evaluation.inception_score import inception_score


def test_uniform_logits_give_one():
    mean, std = inception_score(np.zeros((50, 1008), np.float32), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize('k', [2, 7, 10])
def test_confident_one_hot_logits_give_k(k):
    n = 10 * k * 3  # every split holds each class equally often
    logits = np.full((n, 1008), -1e4, np.float32)
    logits[np.arange(n), np.arange(n) % k] = 1e4
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(k, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_splits_are_in_index_order_and_float64():
    rs = np.random.RandomState(0)
    logits = rs.randn(100, 20) * 3
    # reference: numpy float64 over consecutive splits
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    for part in np.array_split(p, 10):
        py = part.mean(0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), 1))))
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)


def test_too_few_samples():
    with pytest.raises(ValueError, match='at least 10 samples'):
        inception_score(np.zeros((5, 10)), splits=10)
