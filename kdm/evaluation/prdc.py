# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Precision / recall / density / coverage (Naeem et al. 2020) and k-NN precision / recall (Kynkäänniemi et al.
2019), ``spec/metrics_data.md`` section 3.

Radius of a point = distance to its k-th nearest neighbour within its own set (the (k+1)-th smallest distance,
itself included). PRDC (clovaai ``prdc``, SFD ``prdc.py``, ``nearest_k=5``) uses strict ``<``:

- precision = fraction of generated points inside at least one real ball;
- recall = fraction of real points inside at least one generated ball;
- density = (1/k) · mean over generated points of the number of real balls containing them;
- coverage = fraction of real points whose nearest generated point lies inside their own ball.

Precision/recall of ADM's evaluator and StyleGAN's ``pr50k3`` (k = 3) use ``<=``; :func:`compute_precision_recall`.

Computed block by block with ``torch.cdist`` (``block_size`` rows at a time), so 50k x 50k needs only
``block_size x N`` distances in memory, on the GPU when one is available.
"""
from typing import Dict, Optional

import numpy as np
import torch

from kdm.registry import METRICS
from .base import GatherMetric
from .image_sources import subset_indices


def _prep(x, device, dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def _check(real, fake, k: int):
    real, fake = np.asarray(real), np.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f'need (N, D) feature matrices of the same D, got {real.shape} and {fake.shape}')
    if k < 1:
        raise ValueError(f'nearest_k must be at least 1, got {k}')
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f'nearest_k={k} needs more than {k} real and generated samples, got {len(real)} and '
                         f'{len(fake)}')


def knn_radii(x: torch.Tensor, k: int, block_size: int = 2048) -> torch.Tensor:
    """Distance of every row of ``x`` to its k-th nearest other row ((k+1)-th smallest including itself)."""
    out = []
    for start in range(0, x.shape[0], block_size):
        d = torch.cdist(x[start:start + block_size], x)
        out.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def _default_device(device):
    if device is not None:
        return torch.device(device)
    return torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')


def compute_prdc(real_features, fake_features, nearest_k: int = 5, block_size: int = 2048,
                 device: Optional[str] = None, dtype=torch.float32) -> Dict[str, float]:
    """Precision, recall, density and coverage of ``fake_features`` against ``real_features`` (clovaai semantics,
    strict ``<``). Returns ``dict(precision, recall, density, coverage)``.

    Raises:
        ValueError: mismatched feature dimensions, or not more than ``nearest_k`` points in a set.
    """
    _check(real_features, fake_features, nearest_k)
    device = _default_device(device)
    real, fake = _prep(real_features, device, dtype), _prep(fake_features, device, dtype)
    r_real = knn_radii(real, nearest_k, block_size)
    r_fake = knn_radii(fake, nearest_k, block_size)
    count = torch.zeros(fake.shape[0], dtype=torch.float64, device=device)  # real balls holding each fake
    recall = torch.zeros(real.shape[0], dtype=torch.bool, device=device)
    coverage = torch.zeros(real.shape[0], dtype=torch.bool, device=device)
    for start in range(0, real.shape[0], block_size):
        d = torch.cdist(real[start:start + block_size], fake)  # (b, N_fake)
        rr = r_real[start:start + block_size, None]
        count += (d < rr).sum(0, dtype=torch.float64)
        recall[start:start + block_size] = (d < r_fake[None, :]).any(1)
        coverage[start:start + block_size] = d.min(1).values < rr[:, 0]
    return dict(precision=float((count > 0).double().mean()), recall=float(recall.double().mean()),
                density=float(count.mean() / nearest_k), coverage=float(coverage.double().mean()))


def compute_precision_recall(real_features, fake_features, nearest_k: int = 3, block_size: int = 2048,
                             device: Optional[str] = None, dtype=torch.float32) -> Dict[str, float]:
    """Improved precision / recall (Kynkäänniemi et al. 2019) with ``<=`` (ADM evaluator, StyleGAN ``pr50k3``).
    Returns ``dict(precision, recall)``."""
    _check(real_features, fake_features, nearest_k)
    device = _default_device(device)
    real, fake = _prep(real_features, device, dtype), _prep(fake_features, device, dtype)
    r_real = knn_radii(real, nearest_k, block_size)
    r_fake = knn_radii(fake, nearest_k, block_size)
    fake_in = torch.zeros(fake.shape[0], dtype=torch.bool, device=device)
    real_in = torch.zeros(real.shape[0], dtype=torch.bool, device=device)
    for start in range(0, real.shape[0], block_size):
        d = torch.cdist(real[start:start + block_size], fake)
        fake_in |= (d <= r_real[start:start + block_size, None]).any(0)
        real_in[start:start + block_size] = (d <= r_fake[None, :]).any(1)
    return dict(precision=float(fake_in.double().mean()), recall=float(real_in.double().mean()))


class _KNNMetric(GatherMetric):
    features = ('pool',)

    def __init__(self, nearest_k: int, max_fake: Optional[int] = None, block_size: int = 2048, **kwargs):
        super().__init__(**kwargs)
        self.nearest_k, self.max_fake, self.block_size = int(nearest_k), max_fake, int(block_size)

    def prepare_real(self):
        return self.real_features(self.features)

    def _fake(self, fake):
        sel = subset_indices(len(fake['pool']), self.max_fake, self.seed)
        return fake['pool'][sel]

    def _protocol(self, n_fake, rule):
        return dict(self._base_protocol(n_fake), feature='pool', nearest_k=self.nearest_k, rule=rule)


@METRICS.register_module()
class PRDC(_KNNMetric):
    """Precision, recall, density, coverage (keys with prefix ``PRDC/``), ``nearest_k = 5`` as SFD.

    Args:
        nearest_k (int): k of the k-NN radii (5).
        max_fake (int, optional): Seeded random subset of the generated samples (SFD: 5,000); ``real_max`` does
            the same for the real side.
        block_size (int): Rows per distance block.
        **kwargs: see :class:`~kdm.evaluation.base.DetectorMetric`.
    """

    default_prefix = 'PRDC'

    def __init__(self, nearest_k: int = 5, **kwargs):
        super().__init__(nearest_k=nearest_k, **kwargs)

    def compute_from_features(self, fake, real) -> dict:
        f = self._fake(fake)
        out = compute_prdc(real['pool'], f, self.nearest_k, self.block_size)
        self.protocol = self._protocol(len(f), 'strict < (Naeem et al.)')
        return out


@METRICS.register_module()
class PrecisionRecall(_KNNMetric):
    """k-NN precision and recall (keys with prefix ``PR/``), ``nearest_k = 3`` and ``<=`` as ADM's evaluator."""

    default_prefix = 'PR'

    def __init__(self, nearest_k: int = 3, **kwargs):
        super().__init__(nearest_k=nearest_k, **kwargs)

    def compute_from_features(self, fake, real) -> dict:
        f = self._fake(fake)
        out = compute_precision_recall(real['pool'], f, self.nearest_k, self.block_size)
        self.protocol = self._protocol(len(f), '<= (Kynkäänniemi et al.)')
        return out
