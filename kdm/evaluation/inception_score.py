# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Inception Score (``spec/metrics_data.md`` section 2).

``IS = exp(E_x KL(p(y|x) ‖ p(y)))`` with ``p(y)`` the mean of ``p(y|x)`` within a split; 10 splits taken in index
order (``[i·N//10, (i+1)·N//10)``, StyleGAN2-ADA / SiD ``is50k``; ADM's fixed 5,000-sample splits give the same
10 splits for 50k samples); mean and standard deviation over splits. ``p(y|x)`` is the softmax of the Inception
logits **without** the output bias (ADM ``softmax/logits/MatMul``, NVIDIA ``no_output_bias=True``), computed with a
float64 log-softmax (no ``log(0)``). Samples are ordered by seed, so the splits do not depend on the number of
processes.
"""
from typing import Dict, Tuple

import numpy as np
import torch

from kdm.registry import METRICS
from .base import GatherMetric


def inception_score(logits, splits: int = 10) -> Tuple[float, float]:
    """(mean, std) of the Inception Score of (N, K) logits over ``splits`` consecutive splits.

    Raises:
        ValueError: fewer samples than splits, or logits that are not (N, K).
    """
    x = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    if x.ndim != 2:
        raise ValueError(f'logits must be (N, K), got shape {tuple(x.shape)}')
    n = x.shape[0]
    if splits < 1 or n < splits:
        raise ValueError(f'Inception Score with {splits} splits needs at least {splits} samples, got {n}')
    log_p = torch.log_softmax(x, dim=1)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]
        log_py = torch.logsumexp(part, dim=0) - np.log(part.shape[0])  # log of the split's marginal p(y)
        kl = (part.exp() * (part - log_py)).sum(1).mean()
        scores.append(float(torch.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores))


@METRICS.register_module()
class InceptionScore(GatherMetric):
    """Inception Score of the generated samples (keys ``IS`` and ``IS_std``).

    Args:
        splits (int): Number of splits (10 in every paper's protocol).
        **kwargs: ``detector`` etc. of :class:`~kdm.evaluation.base.DetectorMetric` (no real data needed).
    """

    features = ('logits',)

    def __init__(self, splits: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.splits = int(splits)

    def compute_from_features(self, fake: Dict[str, np.ndarray], real) -> dict:
        mean, std = inception_score(fake['logits'], self.splits)
        self.protocol = dict(self._base_protocol(len(fake['logits'])), feature='logits (no bias)',
                             splits=self.splits, n_real=None, real=None)
        return dict(IS=mean, IS_std=std)
