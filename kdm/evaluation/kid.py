# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Kernel Inception Distance (Bińkowski et al. 2018; ``spec/metrics_data.md`` section 4).

Unbiased MMD² with the polynomial kernel ``k(x, y) = (γ xᵀy + c)^d`` (``γ = 1/D``, ``c = 1``, ``d = 3``) averaged
over random subsets of ``m`` generated and ``m`` real features: per subset
``[(ΣK_XX − tr K_XX) + (ΣK_YY − tr K_YY)] / (m(m − 1)) − 2 ΣK_XY / m²``, the estimator of StyleGAN2-ADA,
clean-fid and torch-fidelity (100 subsets of 1,000; subsets drawn with ``RandomState(seed)``, torch-fidelity's
seeded choice). The value is printed raw; many papers report KID x 10³.
"""
from typing import Dict, Optional, Tuple

import numpy as np

from kdm.registry import METRICS
from .base import GatherMetric


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: Optional[float] = None,
                             coef0: float = 1.0) -> float:
    """Unbiased MMD² between two equally sized sets (m, D) with the polynomial kernel."""
    m, d = x.shape
    gamma = 1.0 / d if gamma is None else gamma
    kxx = (gamma * (x @ x.T) + coef0) ** degree
    kyy = (gamma * (y @ y.T) + coef0) ** degree
    kxy = (gamma * (x @ y.T) + coef0) ** degree
    a = (kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))
    return float(a / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def compute_kid(real_features, fake_features, num_subsets: int = 100, subset_size: int = 1000, degree: int = 3,
                gamma: Optional[float] = None, coef0: float = 1.0, seed: int = 2020) -> Tuple[float, float]:
    """(mean, std) of KID over ``num_subsets`` random subsets of ``subset_size`` real and generated features.

    Raises:
        ValueError: different feature dimensions, or fewer samples than ``subset_size`` on either side.
    """
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f'KID needs (N, D) feature matrices of the same D, got {real.shape} and {fake.shape}')
    m = int(subset_size)
    if m < 2:
        raise ValueError(f'KID subset_size must be at least 2, got {m}')
    if len(real) < m or len(fake) < m:
        raise ValueError(f'KID subset_size={m} but only {len(real)} real and {len(fake)} generated samples: use more '
                         f'samples or a smaller subset_size (the papers use 1000)')
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(int(num_subsets)):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        values.append(polynomial_mmd2_unbiased(x, y, degree, gamma, coef0))
    return float(np.mean(values)), float(np.std(values))


@METRICS.register_module()
class KID(GatherMetric):
    """Kernel Inception Distance (keys ``KID``, ``KID_std``), real features from ``ref`` (a file with
    ``features``, e.g. ``tools/fid_ref.py --features``, or ``arr_0`` images) or ``real`` images.

    Args:
        num_subsets (int): Number of random subsets (100).
        subset_size (int): Samples per subset (1000); more than the available samples is an error.
        degree, gamma, coef0: Polynomial kernel ``(gamma xᵀy + coef0)^degree``; ``gamma=None`` is 1/D.
        kid_seed (int): Seed of the subset draws.
        **kwargs: see :class:`~kdm.evaluation.base.DetectorMetric`.
    """

    features = ('pool',)

    def __init__(self, num_subsets: int = 100, subset_size: int = 1000, degree: int = 3,
                 gamma: Optional[float] = None, coef0: float = 1.0, kid_seed: int = 2020, **kwargs):
        super().__init__(**kwargs)
        self.num_subsets, self.subset_size, self.kid_seed = int(num_subsets), int(subset_size), int(kid_seed)
        self.degree, self.gamma, self.coef0 = int(degree), gamma, float(coef0)

    def prepare_real(self):
        return self.real_features(self.features)

    def compute_from_features(self, fake: Dict[str, np.ndarray], real) -> dict:
        mean, std = compute_kid(real['pool'], fake['pool'], self.num_subsets, self.subset_size, self.degree,
                                self.gamma, self.coef0, self.kid_seed)
        self.protocol = dict(self._base_protocol(len(fake['pool'])), feature='pool', subsets=self.num_subsets,
                             subset_size=self.subset_size, kernel=f'(x.y/D + {self.coef0})^{self.degree}')
        return dict(KID=mean, KID_std=std)
